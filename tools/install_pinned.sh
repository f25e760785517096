#!/usr/bin/env bash
# Installs the pinned packages of one list (agents.txt, mcp_servers.txt: name, package, version, registry per
# line) the way their users install them: npm ones with `npm install -g` under a prefix of their own, PyPI ones
# with pip into a venv of their own. Each goes to ~/.cache/cot_proxy/<kind>/<name>-<version> (COT_PROXY_CACHE
# moves the cache), shared by every clone and CI run on the machine; one already installed is not installed
# again, and a new pin installs next to the old one. Needs the npm registry and PyPI, Node.js 20+, Python 3.10+.
# Usage: tools/install_pinned.sh LIST KIND WHAT-SKIPS [name ...]   (the build_*.sh scripts call it)
set -euo pipefail
cd "$(dirname "$0")/.."
list="$1" kind="$2" skips="$3"
shift 3
cache="${COT_PROXY_CACHE:-$HOME/.cache/cot_proxy}/$kind"
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
    echo "error: $name $version did not install; $skips" >&2
    rm -rf "$dir"
    status=1
  fi
done < "$list"
echo "$kind in $cache"
exit "$status"
