#!/usr/bin/env bash
# Install (when needed), set up (the first time) and run cot_proxy:   ./run_app.sh [config_path] [flags]
# (the flags are python cot_proxy.py's: ./run_app.sh --help lists them)
#
#   1. Uses the virtual environment .venv next to this script, creating it and installing requirements.txt
#      when missing (COT_PROXY_VENV=/path/to/venv uses an existing environment as it is, no install).
#   2. Hands over to `python -m argoproxy.firstrun [CONFIG]` in the directory it was started in (config.yaml
#      and .env are that directory's, as for every other way of starting), which asks the first-time setup
#      questions when the config is missing (which backend first, then that backend's questions) unless the
#      environment already names the upstream, checks the settings and the upstream, and serves under Gunicorn.
#      Without a terminal it never waits for an answer: it names the keys to set and exits with code 2.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

venv="${COT_PROXY_VENV:-$here/.venv}"
py="$venv/bin/python"

say() { printf '%s\n' "$*"; }
sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi | cut -d' ' -f1; }

# shellcheck source=tools/base_python.sh
. "$here/tools/base_python.sh"

ensure_venv() {
  if [ -n "${COT_PROXY_VENV:-}" ] && [ -x "$py" ]; then
    return  # the caller's environment, used as it is
  fi
  if [ ! -x "$py" ]; then
    local base
    base="$(base_python)"
    say "Creating virtual environment in $venv ..."
    "$base" -m venv "$venv"
  fi
  # requirements.txt is installed once per version of it; run_tests.sh's install (a superset) counts too.
  local want dev_want
  want="$(sha256 < "$here/requirements.txt")"
  dev_want="$(cat "$here/requirements.txt" "$here/requirements-dev.txt" 2>/dev/null | sha256)"
  if [ "$(cat "$venv/.requirements.sha" 2>/dev/null)" != "$want" ] &&
     [ "$(cat "$venv/.requirements-dev.sha" 2>/dev/null)" != "$dev_want" ]; then
    say "Installing requirements into $venv (takes a minute) ..."
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    printf '%s\n' "$want" > "$venv/.requirements.sha"
  fi
}

ensure_venv
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's package, from any directory
exec "$py" -m argoproxy.firstrun "$@"
