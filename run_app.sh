#!/usr/bin/env bash
# Install (when needed), set up (the first time) and run cot_proxy:   ./run_app.sh [config_path]
#
#   1. Uses the virtual environment .venv next to this script, creating it and installing requirements.txt
#      when missing (COT_PROXY_VENV=/path/to/venv uses an existing environment as it is, no install).
#   2. When the config (default: config.yaml next to this script) is missing, offers to create it from
#      config.sample.yaml: a random free port, your ARGO username, verbose mode; shows it for review.
#      Without a terminal to ask in, it says how to create the config and exits with code 2.
#   3. Checks the config (a bad key or value stops here with one line naming it), asks for a username
#      when the ARGO backend has none, and checks the upstream URLs answer (chat and embed with real
#      payloads for ARGO; the base URL for the openai backend). COT_PROXY_SKIP_CHECKS=1 skips the checks.
#   4. Starts the proxy under Gunicorn: python cot_proxy.py <config> (workers, timeout, port from the config).
# A config without a `backend:` key (an argo-openai-proxy config.yaml) runs the argo backend.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="${1:-$here/config.yaml}"
case "$config" in /*) ;; *) config="$PWD/$config" ;; esac
cd "$here"

venv="${COT_PROXY_VENV:-$here/.venv}"
py="$venv/bin/python"
bar="--------------------------------------"

say() { printf '%s\n' "$*"; }
fail() { local code=$1; shift; printf '%s\n' "$*" >&2; exit "$code"; }
interactive() { [ -t 0 ]; }

# ask VAR PROMPT: read one line from the terminal into VAR; end of input stops the script.
ask() {
  local reply
  if ! IFS= read -r -p "$2" reply; then
    printf '\n' >&2
    fail 2 "Aborting: no answer (end of input)."
  fi
  printf -v "$1" '%s' "$reply"
}

sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi | cut -d' ' -f1; }

# ---- 1. virtual environment ------------------------------------------------------------------------

ensure_venv() {
  if [ -n "${COT_PROXY_VENV:-}" ] && [ -x "$py" ]; then
    return  # the caller's environment, used as it is
  fi
  if [ ! -x "$py" ]; then
    local base="" candidate
    for candidate in python3.13 python3.12 python3.11 python3; do
      if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        base="$candidate"
        break
      fi
    done
    [ -n "$base" ] || fail 1 "Error: cot_proxy needs Python 3.11 or newer (python3.11, python3.12, ... on PATH)."
    say "Creating virtual environment in $venv ..."
    "$base" -m venv "$venv"
  fi
  # requirements.txt is installed once per version of it; run_tests.sh's install (a superset) counts too.
  local want dev_want
  want="$(sha256 < requirements.txt)"
  dev_want="$(cat requirements.txt requirements-dev.txt 2>/dev/null | sha256)"
  if [ "$(cat "$venv/.requirements.sha" 2>/dev/null)" != "$want" ] &&
     [ "$(cat "$venv/.requirements-dev.sha" 2>/dev/null)" != "$dev_want" ]; then
    say "Installing requirements into $venv (takes a minute) ..."
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
    printf '%s\n' "$want" > "$venv/.requirements.sha"
  fi
}

# ---- helpers that need the environment's Python ----------------------------------------------------

port_free() {
  "$py" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

random_port() {
  local port
  while :; do
    port=$((49152 + RANDOM % 16383))
    if port_free "$port"; then printf '%s\n' "$port"; return; fi
  done
}

# set_key KEY VALUE: replace the `KEY: ...` line of the config (appended when absent), comments kept.
set_key() {
  "$py" - "$config" "$1" "$2" <<'PY'
import re, sys
path, key, value = sys.argv[1:]
text = open(path, encoding="utf-8").read()
line = f"{key}: {value}"
text, found = re.subn(rf"(?m)^{re.escape(key)}:.*$", lambda _: line, text, count=1)
if not found:
    text = text.rstrip("\n") + "\n" + line + "\n"
open(path, "w", encoding="utf-8").write(text)
PY
}

show_config() {
  say "$bar"
  grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$config" || true
  say "$bar"
}

# load_settings: the resolved settings (config < environment), validated by cot_proxy itself; sets cfg_*.
# A bad setting sets cfg_error to cot_proxy's one-line message naming it (cfg_error_key: the setting).
load_settings() {
  local out
  out="$("$py" - "$config" <<'PY'
import os, shlex, sys
import yaml
from argoproxy.settings import SettingsError, load_settings

def emit(name, value):
    print(f"cfg_{name}={shlex.quote(str(value))}")

flags = {"config_path": sys.argv[1]}
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        in_file = yaml.safe_load(f)
except (OSError, yaml.YAMLError):
    in_file = None  # load_settings says what is wrong with it
if isinstance(in_file, dict) and "backend" not in in_file and "BACKEND" not in os.environ:
    flags["backend"] = "argo"  # an argo-openai-proxy config.yaml: it predates the backend key
    emit("backend_flag", "argo")
try:
    settings = load_settings(flags)
except SettingsError as exc:
    emit("error", exc)
    emit("error_key", str(exc).split(":", 1)[0])
    sys.exit()
for name in ("backend", "port", "workers", "timeout", "user", "argo_url", "argo_embedding_url",
             "use_native_openai", "native_openai_base_url", "target_base_url"):
    emit(name, getattr(settings, name))
PY
)"
  cfg_backend_flag="" cfg_error="" cfg_error_key=""
  eval "$out"
}

# ---- 2. first-time setup ---------------------------------------------------------------------------

ask_port() {  # ask_port DEFAULT: sets chosen_port to a free port from 1024 to 65535
  local default=$1 answer
  while :; do
    ask answer "Enter port [$default]: "
    answer="${answer:-$default}"
    if ! [[ "$answer" =~ ^[0-9]+$ ]] || [ $((10#$answer)) -lt 1024 ] || [ $((10#$answer)) -gt 65535 ]; then
      say "Error: the port must be a number from 1024 to 65535."
    elif ! port_free "$((10#$answer))"; then
      default="$(random_port)"
      say "Port $answer is already in use."
    else
      chosen_port=$((10#$answer))
      return
    fi
  done
}

ask_username() {  # sets chosen_user
  local name lower
  while :; do
    ask name "Enter your username: "
    lower="$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]')"
    if [ -z "$name" ]; then
      say "Error: Username cannot be empty"
    elif [[ "$name" =~ [[:space:]] ]]; then
      say "Error: Username cannot contain spaces"
    elif [ "$lower" = "cels" ]; then
      say "Error: 'cels' is not allowed as a username"
    elif ! [[ "$name" =~ ^[A-Za-z0-9._@-]+$ ]]; then
      say "Error: Username may contain only letters, digits, '.', '_', '@' and '-'"
    else
      chosen_user="$name"
      return
    fi
  done
}

create_config() {
  local answer
  say "$config not found."
  ask answer "Would you like to create it from config.sample.yaml? [Y/n] "
  case "$answer" in [nN]*) fail 1 "Aborting: config file required." ;; esac
  mkdir -p "$(dirname "$config")"
  cp config.sample.yaml "$config"

  ask_port "$(random_port)"
  set_key port "$chosen_port"
  if grep -q '^backend:[[:space:]]*argo' "$config"; then
    ask_username
    set_key user "\"$chosen_user\""
  fi
  ask answer "Enable verbose mode? [Y/n] "
  case "$answer" in [nN]*) set_key verbose false ;; *) set_key verbose true ;; esac

  say "Created $config with your settings:"
  show_config
  ask answer "Review the config above. Press enter to continue or Ctrl+C to abort."
}

# ---- 3. checks ---------------------------------------------------------------------------------------

# check_url LABEL EXPECT METHOD URL [JSON]: EXPECT is 2xx (success needed) or any (any HTTP answer).
check_url() {
  local label=$1 expect=$2 method=$3 url=$4 data=${5:-} code
  printf 'Validating %s connectivity: %s ... ' "$label" "$url"
  if command -v curl >/dev/null; then
    local args=(-sS -o /dev/null -w '%{http_code}' --connect-timeout 3 --max-time 5 -X "$method")
    if [ -n "$data" ]; then args+=(-H 'Content-Type: application/json' --data "$data"); fi
    code="$(curl "${args[@]}" "$url" 2>/dev/null)" || true
  else
    code="$("$py" - "$method" "$url" "$data" <<'PY'
import sys, urllib.error, urllib.request
method, url, data = sys.argv[1:]
headers = {"Content-Type": "application/json"} if data else {}
request = urllib.request.Request(url, data=data.encode() or None, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        print(response.status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except Exception:
    print("000")
PY
)" || true
  fi
  code="${code:-000}"
  if [ "$code" = "000" ]; then
    say "failed (no connection)"
  elif [ "$expect" = "2xx" ] && [ "${code#2}" = "$code" ]; then
    say "failed (HTTP $code)"
  else
    say "ok"
    return 0
  fi
  unreachable+=("$label: $url")
  return 1
}

check_connectivity() {
  unreachable=()
  if [ "${COT_PROXY_SKIP_CHECKS:-0}" = "1" ]; then return; fi
  if [ "$cfg_backend" = "argo" ] && [ "$cfg_use_native_openai" = "True" ]; then
    check_url "ARGO OpenAI API" any GET "${cfg_native_openai_base_url}models" || true
  elif [ "$cfg_backend" = "argo" ]; then
    local user="${cfg_user//\\/\\\\}"
    user="${user//\"/\\\"}"
    check_url "chat API" 2xx POST "$cfg_argo_url" \
      "{\"user\":\"$user\",\"model\":\"gpt4o\",\"messages\":[{\"role\":\"user\",\"content\":\"What are you?\"}]}" || true
    check_url "embedding API" 2xx POST "$cfg_argo_embedding_url" \
      "{\"user\":\"$user\",\"model\":\"v3small\",\"prompt\":[\"hello\"]}" || true
  else
    check_url "$cfg_backend API" any GET "${cfg_target_base_url}models" || true
  fi
  if [ "${#unreachable[@]}" -gt 0 ]; then
    local item answer
    for item in "${unreachable[@]}"; do say "Warning: Could not connect to $item"; done
    if [ "$cfg_backend" = "argo" ]; then
      say "ARGO answers only inside Argonne's network (on site, VPN or an SSH tunnel); an unregistered"
      say "username is refused: ask the CELS Helpdesk for access."
    fi
    if interactive; then
      ask answer "Continue anyway? [y/N] "
      case "$answer" in [yY]*) ;; *) fail 1 "Aborting." ;; esac
    else
      say "Continuing anyway (no terminal to ask)."
    fi
  fi
}

# ---- main ----------------------------------------------------------------------------------------------

ensure_venv

if [ ! -f "$config" ]; then
  if ! interactive; then
    fail 2 "Error: config file $config not found, and there is no terminal to ask the first-time setup
questions in. Run ./run_app.sh in a terminal, or create the config yourself:
    cp $here/config.sample.yaml $config    # then set user: (your ANL username) and port: in it"
  fi
  create_config
fi

load_settings
if [ "$cfg_error_key" = "user" ] && interactive; then
  # No username yet (a config written by hand from the sample) or a refused one: ask, save, check again.
  say "$cfg_error"
  ask_username
  set_key user "\"$chosen_user\""
  say "Saved user: \"$chosen_user\" in $config."
  load_settings
fi
if [ -n "$cfg_error" ]; then
  fail 2 "cot_proxy: bad setting $cfg_error"
fi
extra=()
if [ -n "$cfg_backend_flag" ]; then extra+=(--backend "$cfg_backend_flag"); fi

if ! port_free "$cfg_port"; then
  if ! interactive; then
    fail 1 "Error: port $cfg_port (from $config) is already in use: set another port: in it (or PORT=...)."
  fi
  say "Port $cfg_port is already in use."
  ask_port "$(random_port)"
  extra+=(--port "$chosen_port")
  cfg_port="$chosen_port"
  say "Using port $cfg_port for this run (the config still says another)."
fi

check_connectivity

say "Starting cot_proxy ($cfg_backend backend) on port $cfg_port: $cfg_workers workers, upstream timeout ${cfg_timeout}s, config $config"
exec "$py" cot_proxy.py "$config" ${extra[@]+"${extra[@]}"}
