#!/usr/bin/env bash
# Installs the real OpenID provider (npm's oidc-provider, pinned in oidc_provider.txt) that tests/oidc/provider.mjs
# runs for the sign-in tests, into ~/.cache/cot_proxy/oidc (tools/install_pinned.sh: once per pin).
# Usage: tools/build_oidc_provider.sh
exec "$(dirname "$0")/install_pinned.sh" oidc_provider.txt oidc "the sign-in tests skip (outside CI)" "$@"
