#!/usr/bin/env bash
# Installs what tests/real needs, from the local wheel cache only (never the network), when the cache is
# there: the real clients into the test venv, and each real server into a venv of its own in the cache,
# ~/.cache/cot_proxy/venvs/<name>-<hash of its requirements file and build stamp> (their pins clash with the product's; made
# once and shared by every clone, so CI does not reinstall them). Without the cache it does nothing and
# tests/real skip, naming tools/build_real_servers.sh. A failed install is reported and skipped, never fatal.
# Usage: tools/install_real_servers.sh [test venv]   (run_tests.sh calls it)
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${COT_PROXY_VENV:-.venv}}"
cache="${COT_PROXY_CACHE:-$HOME/.cache/cot_proxy}"
[ -d "$cache/wheels" ] || exit 0

pip_install() {  # pip_install <venv> <requirements file>
  "$1/bin/pip" install --quiet --disable-pip-version-check --no-index --no-deps --find-links "$cache/wheels" -r "$2"
}
warn() {
  echo "warning: $1 is not complete in $cache/wheels (run tools/build_real_servers.sh); tests/real skip it" >&2
}

# The clients, into the test venv: once per content of the file.
req=requirements-real.txt
stamp="$venv/.$req.sha"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing $req from $cache/wheels ..."
  if pip_install "$venv" "$req"; then echo "$want" > "$stamp"; else warn "$req"; fi
fi

# Each server, into its venv in the cache (tests/real/servers.py finds it by the same name).
mkdir -p "$cache/venvs"
for name in litellm llama; do
  req="requirements-real-$name.txt"
  # named after its requirements and how its wheels were built (tools/build_real_servers.sh: .llama-build)
  target="$cache/venvs/$name-$(cat "$req" "$cache/wheels/.$name-build" 2>/dev/null | sha256sum | cut -c1-12)"
  [ -f "$target/.complete" ] && continue
  (
    flock 9  # two clones installing at once make it once
    [ -f "$target/.complete" ] && exit 0
    rm -rf "$target"
    echo "Installing $req from $cache/wheels into $target ..."
    if python3 -m venv "$target" && pip_install "$target" "$req"; then
      touch "$target/.complete"
    else
      warn "$req"
      rm -rf "$target"
    fi
  ) 9>"$cache/venvs/.lock"
done
exit 0
