#!/usr/bin/env bash
# Installs the real MCP servers that tests/integration/test_mcp_servers.py puts behind the proxy's /mcp, pinned
# below, the way their users install them: the PyPI ones with pip into a venv of their own, the npm one with
# `npm install -g` under a prefix of its own. Everything goes to the cache outside the clone,
# ~/.cache/cot_proxy/mcp/<name>-<version> (COT_PROXY_CACHE moves it), shared by every clone and CI run on this
# machine; a server already installed is not installed again. Needs PyPI and the npm registry; Node.js 20+.
# Usage: tools/build_mcp_servers.sh [name ...]   (default: every server below)
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${COT_PROXY_CACHE:-$HOME/.cache/cot_proxy}/mcp"
python="${PYTHON:-python3}"
mkdir -p "$cache"
want=" $* "
status=0

install_npm() {  # install_npm <dir> <package> <version>
  npm install -g --prefix "$1" --no-audit --no-fund --loglevel=error "$2@$3"
}
install_pypi() {  # install_pypi <dir> <package> <version>
  "$python" -m venv "$1"
  "$1/bin/pip" install --quiet --disable-pip-version-check "$2==$3" 2>&1 | grep -v "is ignored: it is neither"
  return "${PIPESTATUS[0]}"
}

# name  package  version  registry  (the command each installs: bin/<name>)
while read -r name package version registry; do
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
    echo "error: $name $version did not install; its tests skip" >&2
    rm -rf "$dir"
    status=1
  fi
done <<'LIST'
mcp-server-time mcp-server-time 2026.10.19 pypi
mcp-server-git mcp-server-git 2026.10.19 pypi
mcp-server-everything @modelcontextprotocol/server-everything 2026.8.31 npm
LIST
echo "MCP servers in $cache"
exit "$status"
