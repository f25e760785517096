#!/usr/bin/env bash
# Installs what tests/real needs, from the local wheel cache only (never the network), when the cache is
# there: the real clients into the test venv, and each real server into a venv of its own under
# <test venv>/servers/ (their pins clash with the product's). Without the cache it does nothing and
# tests/real skip, naming tools/build_real_servers.sh. A failed install is reported and skipped, never fatal.
# Usage: tools/install_real_servers.sh [test venv]   (run_tests.sh calls it)
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${COT_PROXY_VENV:-.venv}}"
cache="${COT_PROXY_CACHE:-$HOME/.cache/cot_proxy}"
[ -d "$cache/wheels" ] || exit 0

install() {  # install <venv> <requirements file>: once per content of the file
  local target="$1" req="$2" stamp="$1/.$(basename "$2").sha"
  local want
  [ -f "$req" ] || return 0
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  [ -x "$target/bin/python" ] || python3 -m venv "$target" || return 1
  echo "Installing $req from $cache/wheels ..."
  if "$target/bin/pip" install --quiet --disable-pip-version-check --no-index --no-deps \
       --find-links "$cache/wheels" -r "$req"; then
    echo "$want" > "$stamp"
  else
    echo "warning: $req is not complete in $cache/wheels (run tools/build_real_servers.sh); tests/real skip it" >&2
    [ "$target" = "$venv" ] || rm -rf "$target"  # a half-made server venv would fail its tests instead
  fi
}

install "$venv" requirements-real.txt
install "$venv/servers/litellm" requirements-real-litellm.txt
install "$venv/servers/llama" requirements-real-llama.txt
exit 0
