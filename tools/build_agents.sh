#!/usr/bin/env bash
# Installs the coding agents that tests/agents runs through the proxy, pinned in agents.txt, into
# ~/.cache/cot_proxy/agents (tools/install_pinned.sh: as their users install them, once per pin).
# Usage: tools/build_agents.sh [name ...]   (default: every agent in agents.txt)
exec "$(dirname "$0")/install_pinned.sh" agents.txt agents "tests/agents skip it" "$@"
