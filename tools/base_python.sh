# Sourced by run_app.sh and run_tests.sh: base_python prints a Python 3.11+ to make a virtual environment with,
# or says in one line that there is none and exits 1. pyenv's shims answer for every python3.X and print
# their own errors for absent versions: those go to /dev/null.
base_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
      printf '%s\n' "$candidate"
      return
    fi
  done
  printf '%s\n' "Error: cot_proxy needs Python 3.11 or newer (python3.11, python3.12, ... on PATH)." >&2
  exit 1
}
