#!/usr/bin/env bash
# Installs the coding agents that tests/agents runs through the proxy, pinned in agents.txt, the way their users
# install them: the npm ones with `npm install -g` (under a prefix of their own) and Aider with pip into a venv
# of its own. Everything goes to the cache outside the clone, ~/.cache/cot_proxy/agents/<name>-<version>
# (COT_PROXY_CACHE moves it), shared by every clone and CI run on this machine; an agent already installed is
# not installed again. Needs the npm registry and PyPI; Node.js 20+ (apt: nodejs npm) and Python 3.10-3.12.
# Usage: tools/build_agents.sh [name ...]   (default: every agent in agents.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${COT_PROXY_CACHE:-$HOME/.cache/cot_proxy}/agents"
python="${PYTHON:-python3}"
mkdir -p "$cache"
want=" $* "
status=0

install_npm() {  # install_npm <dir> <package> <version>
  npm install -g --prefix "$1" --no-audit --no-fund --loglevel=error "$2@$3"
}
install_pypi() {  # install_pypi <dir> <package> <version>
  "$python" -m venv "$1"
  # (pip's warnings about this machine's extra local indexes are noise here)
  "$1/bin/pip" install --quiet --disable-pip-version-check "$2==$3" 2>&1 | grep -v "is ignored: it is neither"
  return "${PIPESTATUS[0]}"
}

while read -r name package version registry; do
  case "$name" in ''|'#'*) continue ;; esac
  [ -z "${*:-}" ] || [[ "$want" == *" $name "* ]] || continue
  dir="$cache/$name-$version"
  if [ -f "$dir/.complete" ]; then echo "== $name $version: installed"; continue; fi
  echo "== $name: $package $version from $registry -> $dir"
  rm -rf "$dir"
  start=$SECONDS
  if "install_$registry" "$dir" "$package" "$version"; then
    touch "$dir/.complete"
    echo "   done in $((SECONDS - start)) s"
  else
    echo "error: $name $version did not install; tests/agents skip it" >&2
    rm -rf "$dir"
    status=1
  fi
done < agents.txt
echo "agents in $cache"
exit "$status"
