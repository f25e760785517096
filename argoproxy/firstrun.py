"""First run and start-up checks for `./run_app.sh [config]` (the script only makes the virtual environment
and then runs `python -m argoproxy.firstrun [CONFIG]` in the directory it was started in), and for `cot-proxy`
(`python cot_proxy.py`, `python app.py`) started in a terminal with nothing configured (argoproxy/cli.py hands
over to set_up_and_serve, which asks the same questions and then starts that same command again).

1. When the config file is missing (CONFIG, default ./config.yaml) and, without an explicit CONFIG, neither
   the loader's search path nor the environment (or .env) names the upstream: in a terminal, ask the questions
   below, write the config and show it for review. Without a terminal, say which keys the chosen backend
   (BACKEND, else the default) needs, and exit 2.
2. Load the settings with the one loader every entry point uses; a missing or refused setting its provider
   has a question for (the ARGO username) is asked for (in a terminal) and saved; any other bad setting stops
   here with one line naming it.
3. A port already in use is replaced for this run (in a terminal) or stops start-up.
4. Check that the upstream answers (the provider's own checks: ARGO's chat and embed endpoints with real
   payloads; else its URL's /models), through the same proxies as the proxy itself; COT_PROXY_SKIP_CHECKS=1
   skips this.
5. Serve under Gunicorn: `python -m argoproxy.cli [CONFIG]`, as `python cot_proxy.py [CONFIG]` does (from
   cot-proxy: the command it was started with). Once it listens, the last lines printed are a request to paste
   (curl, with `export COT_PROXY_KEY=...` before it when clients need the key file's key) and the line that
   starts a coding agent through this proxy (`./run_app.sh run -- claude`, `cot-proxy run -- claude`).
Ctrl+C or the end of input during a question stops quietly.

The first-run questions, in this order (the documentation copies this list; keep the two in step):
   1. "config.yaml not found." then "Would you like to create it now? [Y/n]"
   2. "Which backend should cot_proxy serve?" (1 an OpenAI-compatible server, the default; 2 ARGO; 3 DashScope)
   3. the backend's own: its base URL (OpenAI-compatible: "Base URL of the OpenAI-compatible server", after a
      line naming `./run_app.sh demo` for those with no server yet), your ANL username
      (ARGO: "Enter your username"), none for DashScope (its key goes in the environment)
   4. "Enter port [5000]:" (5000 unless it is taken: then it says so and offers the next free port)
   5. "Enable verbose mode? [Y/n]"
   6. "Do other people log in to this machine ...? [y/N]" (yes: a key of your own, in a file only you read, and
      a line naming `signin setup`: sign-in is set up apart, argoproxy/signin/setup.py)
   7. "Review the config above. Press enter to continue or Ctrl+C to abort."
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NoReturn

from argoproxy.config.first_run import (  # noqa: F401  (the first run's own names, here as before)
    Abort, Check, FirstRun, ask, ask_base_url, ask_yes, interactive, no_questions, say, set_key, yaml_value)
from argoproxy.config.command_line import parse_flags
from argoproxy.config.listener import create_user_key
from argoproxy.redaction import mask_url
from argoproxy.serve.gunicorn_app import READY_LINES_ENV, plural, port_label, read_dotenv
from argoproxy.config.settings import BadValue, Settings, SettingsError, load, load_settings
from argoproxy.config.unconfigured import refusal
from argoproxy.launch.proxy import auth_header, key_lines
from argoproxy.stop_signals import STOP_SIGNALS, check_interrupt, release_stop_signals  # noqa: F401  (here as before)

BAR = "-" * 38
HERE = Path(__file__).resolve().parents[1]  # the checkout (config.sample.yaml, run_app.sh), or site-packages
CHECK_TIMEOUT = (3.0, 5.0)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


# The port the documentation's examples use (the PORT setting's default): offered first.
DEFAULT_PORT = 5000


def next_free_port(after: int) -> int:
    """The first free port above `after` (a near neighbour is easier to remember than a random one)."""
    for port in range(after + 1, min(after + 200, 65536)):
        if port_free(port):
            return port
    return random_port()


def offered_port() -> int:
    """DEFAULT_PORT when free, else (said so) the next free port."""
    if port_free(DEFAULT_PORT):
        return DEFAULT_PORT
    port = next_free_port(DEFAULT_PORT)
    say(f"Port {DEFAULT_PORT} is already in use (another server, or this proxy already running): offering {port}.")
    return port


def random_port() -> int:
    while True:
        port = random.randint(49152, 65535)
        if port_free(port):
            return port


def ask_port(default: int) -> int:
    while True:
        answer = ask(f"Enter port [{default}]: ") or str(default)
        if not answer.isdigit() or not 1024 <= int(answer) <= 65535:
            say("Error: the port must be a number from 1024 to 65535.")
        elif not port_free(int(answer)):
            say(f"Port {answer} is already in use.")
            default = next_free_port(int(answer))
        else:
            return int(answer)


@dataclass(frozen=True)
class BackendOption:
    """One answer to "which backend?": a registered provider and its first-run part."""

    name: str
    run: FirstRun


def backends() -> tuple[BackendOption, ...]:
    """Every registered provider, the default first; one without a FirstRun of its own gets a plain one."""
    from argoproxy.config import provider_registry as providers
    from argoproxy.config.backend_choice import DEFAULT_BACKEND
    chosen = sorted(providers.all_providers(), key=lambda p: p.name != DEFAULT_BACKEND)
    return tuple(BackendOption(p.name, _first_run(p)) for p in chosen)


def _first_run(provider: Any) -> FirstRun:
    if provider.first_run:
        import importlib
        module, _, name = provider.first_run.partition(":")
        found: FirstRun = getattr(importlib.import_module(module), name)
        return found
    return FirstRun(provider.summary or provider.name, needs=f"backend: {provider.name}")


def backend_named(name: str) -> BackendOption:
    choices = backends()
    return next((b for b in choices if b.name == name), choices[0])


def ask_backend() -> BackendOption:
    choices = backends()
    say("Which backend should cot_proxy serve?")
    for number, backend in enumerate(choices, 1):
        say(f"  {number}) {backend.run.title}")
    while True:
        answer = ask(f"Choose 1-{len(choices)} [1]: ") or "1"
        if answer.isdigit() and 1 <= int(answer) <= len(choices):
            return choices[int(answer) - 1]
        names = {b.name: b for b in choices}
        if answer.lower() in names:
            return names[answer.lower()]
        say(f"Error: answer a number from 1 to {len(choices)}.")


# ---- the config file -------------------------------------------------------------------------------------

COMMENTS = {
    "port": "Port the proxy listens on. [PORT]",
    "verbose": "One log line per request plus upstream details (secrets redacted). [VERBOSE]",
    "enable_auth": "Clients must send a key (this machine is shared). [ENABLE_AUTH]",
    "api_key_file": "Your key, one a line, readable by you only. [API_KEY_FILE]",
}


def config_text(values: dict[str, Any], comments: Mapping[str, str] | None = None) -> str:
    """The config file; `comments`: the chosen provider's, for the keys its questions set."""
    lines = ["# cot_proxy configuration, written by its first-time setup.",
             "# Every other setting (defaults shown): config.sample.yaml and docs/reference/settings.md.",
             "# Precedence: defaults < this file < .env < environment < command-line flags.", ""]
    for key, value in values.items():
        lines += [f"# {_comment(key, comments or {})}", f"{key}: {yaml_value(value)}", ""]
    return "\n".join(lines)


def _comment(key: str, comments: Mapping[str, str]) -> str:
    if key == "backend":
        names = [b.name for b in backends()]
        return f"Wire protocol of the upstream: {', '.join(names[:-1])} or {names[-1]}. [BACKEND]"
    if key in COMMENTS or key in comments:
        return COMMENTS.get(key) or comments[key]
    from argoproxy.config.settings import SETTING_FIELDS  # a provider's key without a comment of its own: its help
    meta = SETTING_FIELDS[key].metadata
    help_text: str = meta["help"]
    return help_text + (f" [{meta['env'][0]}]" if meta["env"] else "")


def show(config: Path) -> None:
    say(BAR)
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            say(line)
    say(BAR)


def ask_shared_machine() -> dict[str, Any]:
    """On a shared machine every user can reach 127.0.0.1: offer a key of the owner's own (mode 0600)."""
    if not ask_yes("Do other people log in to this machine (a login node, a shared workstation)? "
                   "Then clients will need a key of your own.", False):
        return {}
    path, created = create_user_key()
    say(f"{'Created' if created else 'Using'} your key file {path} (only you can read it). Clients send that key: "
        f"export COT_PROXY_KEY=$(cat {path}) in the clients' shell (`run` reads it from there too)")
    say("People to sign in with your organization's identity provider? Any time: `./run_app.sh signin setup` "
        "(or `cot-proxy signin setup`).")
    return {"enable_auth": True, "api_key_file": str(path)}


def create_config(config: Path) -> None:
    say(f"{config} not found.")
    if not ask_yes("Would you like to create it now?", True):
        raise Abort("Aborting: config file required.")
    backend = ask_backend()
    values: dict[str, Any] = {"backend": backend.name, **backend.run.ask()}
    values["port"] = ask_port(offered_port())
    values["verbose"] = ask_yes("Enable verbose mode?", True)
    values.update(ask_shared_machine())
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text(values, backend.run.comments), encoding="utf-8")
    say(f"Created {config} with your settings:")
    show(config)
    ask("Review the config above. Press enter to continue or Ctrl+C to abort.")


def no_terminal_message(config: Path) -> str:
    chosen = os.environ.get("BACKEND", "").strip().lower()
    backend = backend_named(chosen)
    which = f"the {backend.name} backend (BACKEND)" if chosen == backend.name else f"the default {backend.name} backend"
    others = ", ".join(b.name for b in backends() if b.name != backend.name)
    by_environment = (f"or set {backend.run.env_keys[0]} in the environment or in .env (then no config file is "
                      f"needed)\n") if backend.run.env_keys else ""
    return (f"Error: config file {config} not found, and there is no terminal to ask the first-time setup questions "
            f"in. Run ./run_app.sh in a terminal, or create the config yourself:\n"
            f"    cp {HERE / 'config.sample.yaml'} {config}\n"
            f"and set the keys {which} needs:\n    {backend.run.needs}\n{by_environment}"
            f"(other backends: {others}; see config.sample.yaml)")


# ---- settings, port and connectivity ----------------------------------------------------------------------

def settings_for(config: Path, flags: dict[str, Any]) -> Settings:
    """The settings from the one loader; a missing or refused setting a provider has a question for (the ARGO
    username) is asked for (in a terminal) and saved."""
    try:
        return load_settings({**flags, "config_path": str(config)})
    except SettingsError as exc:
        key = str(exc).partition(":")[0]
        question = next((b.run.asks_again[key] for b in backends() if key in b.run.asks_again), None)
        if question is None or not interactive():
            raise Abort(f"cot_proxy: bad setting {exc}", 2) from None
        say(str(exc))
    value = question()
    set_key(config, key, value)
    say(f'Saved {key}: "{value}" in {config}.')
    try:
        return load_settings({**flags, "config_path": str(config)})
    except SettingsError as exc:
        raise Abort(f"cot_proxy: bad setting {exc}", 2) from None


def settings_found_elsewhere(given: dict[str, Any]) -> tuple[Settings, str] | None:
    """Without the config file: the settings every other entry point would serve (the loader's search path,
    or an environment that names the chosen backend's upstream), and where they came from; else None."""
    try:
        settings = load_settings(given)
    except BadValue as exc:  # a value the user gave is wrong: no question fixes that, say it now
        raise Abort(f"cot_proxy: bad setting {exc}", 2) from None
    except SettingsError:
        return None  # something missing: the questions (or the no-terminal message) come next
    if settings.config_path:
        return settings, f"config {settings.config_path}"
    named = [key for key in backend_named(settings.backend).run.env_keys if os.environ.get(key)]
    if not named:
        return None
    return settings, f"no config file: settings from the environment ({', '.join(named)})"


def free_port_for_run(settings: Settings, given: dict[str, Any], flags: dict[str, Any]) -> int:
    if port_free(settings.port):
        return settings.port
    label = port_label(settings, given)
    if not interactive():
        raise Abort(f"cot_proxy: bad setting {label}: port {settings.port} is already in use (another server, or "
                    f"this proxy started twice): stop it or set another {label.split(' ')[0]}", 2)
    say(f"Port {settings.port} is already in use.")
    port = ask_port(next_free_port(settings.port))
    flags["port"] = port
    say(f"Using port {port} for this run (the {label} setting still says {settings.port}: clients and `run` "
        f"need --port {port}).")
    return port


def checks(settings: Settings) -> list[Check]:
    """(label, method, URL, JSON body, success needed) for each upstream endpoint to try."""
    own = backend_named(settings.backend).run.checks
    if own is not None:
        return own(settings)
    from argoproxy.config import provider_registry as providers
    return [(f"{settings.backend} API", "GET", providers.get(settings.backend).url(settings) + "models", None, False)]


def upstream_key(settings: Settings) -> tuple[str, str]:
    """(the key the proxy sends its upstream, the variable that sets it): the provider's key setting."""
    from argoproxy.config import provider_registry as providers
    from argoproxy.config.settings import SETTING_FIELDS
    name = providers.get(settings.backend).key_setting
    field = SETTING_FIELDS.get(name)
    variable = field.metadata["env"][0] if field is not None and field.metadata["env"] else name.upper()
    return str(getattr(settings, name, "") or ""), variable


def check_one(method: str, url: str, body: dict[str, Any] | None, need_success: bool,
              key: tuple[str, str] = ("", "")) -> str:
    """"ok", or why not, worded as the proxy's own errors are (a failing corporate proxy named as such). `key`:
    (the proxy's upstream key, its variable), sent as the proxy sends it: a model list that refuses it (401, 403)
    or is not there (404) is said, whatever the check needs."""
    import requests  # reads the proxy environment as the proxy does

    from argoproxy.upstream.proxy_env import proxy_for
    from argoproxy.upstream.client import transport_error
    from argoproxy.upstream.stock import failure_from_requests
    proxy = proxy_for(url)
    headers = {"Authorization": f"Bearer {key[0]}"} if key[0] else {}
    try:
        response = requests.request(method, url, json=body, headers=headers, timeout=CHECK_TIMEOUT,
                                    allow_redirects=False)
    except requests.RequestException as exc:
        return f"failed: {transport_error(failure_from_requests(exc, url), url, CHECK_TIMEOUT, proxy).message}"
    response.close()
    if response.status_code == 407 and proxy.url:  # the proxy's answer for a plain-http upstream
        return f"failed: The proxy {proxy.shown} refused the request: 407 Proxy Authentication Required."
    if key[1] and response.status_code in (401, 403):
        return (f"failed: the upstream refused the proxy's key {key[1]} (HTTP {response.status_code}): set "
                f"{key[1]} to a key of this server" if key[0] else
                f"failed: the upstream wants a key (HTTP {response.status_code}) and {key[1]} is not set: set it in "
                "the environment or in .env")
    if key[1] and response.status_code == 404 and url.endswith("/models"):
        return (f"failed: nothing at {mask_url(url)} (HTTP 404): is the base URL's path right? (vLLM, llama.cpp, "
                "Ollama and OpenAI serve their API under /v1)")
    return "ok" if not need_success or response.ok else f"failed (HTTP {response.status_code})"


def check_connectivity(settings: Settings, launcher: str = "./run_app.sh") -> None:
    unreachable, urls = [], []
    own = backend_named(settings.backend).run.checks is not None  # the provider's checks: as they are
    key = ("", "") if own else upstream_key(settings)
    for label, method, url, body, need_success in checks(settings):
        print(f"Validating {label} connectivity: {mask_url(url)} ... ", end="", flush=True)
        result = check_one(method, url, body, need_success, key)
        say(result)
        if result != "ok":
            unreachable.append(f"{label}: {mask_url(url)}")
            urls.append(url)
    if not unreachable:
        return
    for item in unreachable:
        say(f"Warning: Could not connect to {item}")
    for line in backend_named(settings.backend).run.unreachable:
        say(line)
    if interactive():
        if not ask_yes("Continue anyway?", False):
            raise Abort(f"Aborting. {where_urls_are(settings, urls, launcher)}")
    else:
        say("Continuing anyway (no terminal to ask).")


def where_urls_are(settings: Settings, urls: list[str], launcher: str) -> str:
    """Where the URLs that did not answer are set (the setting, and the file or the variable), and what to do:
    the next run asks the same question until the server answers or the URL is corrected."""
    from argoproxy.config.settings import SETTING_FIELDS
    named = []
    for url in urls:
        key = max((name for name, value in settings.public_items() if isinstance(value, str) and "://" in value
                   and url.startswith(getattr(settings, name))), key=lambda n: len(getattr(settings, n)), default=None)
        if key is None:
            continue
        env = [e for e in SETTING_FIELDS[key].metadata["env"] if os.environ.get(e)]
        value = mask_url(getattr(settings, key))
        named.append(f"{key}: {value} in {settings.config_path}" if settings.config_path and not env else
                     f"{env[0] if env else SETTING_FIELDS[key].metadata['env'][0]}={value} in the environment")
    if not named:
        return f"Start the upstream server, then run {launcher} again."
    return (f"The URL is set by {'; '.join(dict.fromkeys(named))}: start the server there, or correct it, then run "
            f"{launcher} again (the same question is asked until it answers).")


# ---- main -------------------------------------------------------------------------------------------------

def prepare(config: Path, explicit: bool = True, given: dict[str, Any] | None = None,
            launcher: str = "./run_app.sh") -> dict[str, Any]:
    """Everything before serving: the config (made when missing), the settings, a free port, the checks.
    `given`: the command line's settings, as every entry point takes them (they win over file and environment);
    `launcher`: the command the agent line names (`./run_app.sh`, `cot-proxy`)."""
    try:
        read_dotenv()
    except BadValue as exc:
        raise Abort(f"cot_proxy: bad setting {exc}", 2) from None
    given = given or {}
    found = None if config.is_file() or explicit else settings_found_elsewhere(given)
    made = False
    if found is not None:
        flags: dict[str, Any] = {}
        settings, where = found
    else:
        made = not config.is_file()
        if made:
            if not interactive():
                raise Abort(no_terminal_message(config), 2)
            create_config(config)
        flags = {"config_path": str(config)}
        settings, where = settings_for(config, {**given, **flags}), f"config {config}"
    refused = refusal(load({**given, **flags}))
    if refused:  # the server would refuse it: say so now, not after checking OpenAI's API and "Starting"
        raise Abort(f"cot_proxy: bad setting {refused}", 2)
    # on a Unix socket there is no port to check or name
    listening = f"on unix:{settings.socket}" if settings.socket else f"on port {free_port_for_run(settings, given, flags)}"
    if os.environ.get("COT_PROXY_SKIP_CHECKS", "0") != "1":
        check_connectivity(settings, launcher)
    if made or (found is None and not explicit):  # the ./config.yaml the first run writes
        remember_first_config(config, created=made)
    # printed by the server once it listens (argoproxy/serve/gunicorn_app.py), as the last lines of the start
    os.environ[READY_LINES_ENV] = "\n".join(first_request_lines(settings, flags.get("port", settings.port), launcher))
    say(f"Starting cot_proxy ({settings.backend} backend) {listening}: {plural(settings.workers, 'worker')}, "
        f"upstream timeout {settings.timeout:g}s, {where}")
    return flags


def remember_first_config(config: Path, created: bool) -> None:
    """The config the first run wrote, recorded for `run` in any other directory (argoproxy/launch/sources.py)
    once it passed the review and the checks: a set-up aborted there sent later runs to its dead upstream. A
    config made by a run aborted before is recorded by the first run that gets this far with it."""
    from argoproxy.launch.sources import record_config, recorded_config
    if created or not recorded_config():
        record_config(config)


def first_request_lines(settings: Settings, port: int, launcher: str) -> list[str]:
    """A request to paste that works as printed (curl, with the key when clients need one: COT_PROXY_KEY, set
    from the key file first when there is one), and the line that starts a coding agent through this proxy."""
    body = json.dumps({"model": example_model(settings), "messages": [{"role": "user", "content": "Say hello."}]})
    lines = ["Try it (in another terminal):", *key_lines(settings)]
    if settings.socket:
        return [*lines, f"  curl --unix-socket {settings.socket} http://localhost/v1/chat/completions "
                        f"-H 'Content-Type: application/json'{auth_header(settings)} -d '{body}'"]
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(settings.host, settings.host)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    config = Path(settings.config_path).absolute() if settings.config_path else None
    named = f" {os.path.relpath(config)}" if config and config != Path("config.yaml").absolute() else ""
    named += f" --port {port}" if port != settings.port else ""  # moved for this run: `run` reads the setting
    from argoproxy.launch.agents import AGENTS
    import shutil
    agent = next((name for name in AGENTS if shutil.which(name)), "claude")
    return [*lines,
            f"  curl http://{host}:{port}/v1/chat/completions -H 'Content-Type: application/json'"
            f"{auth_header(settings)} -d '{body}'",
            f"  {launcher} run{named} -- {agent}    # a coding agent through this proxy ({', '.join(AGENTS)})"]


def run_app_launcher(here: Path) -> str:
    """./run_app.sh as the user would type it from the working directory."""
    script = os.path.relpath(here / "run_app.sh")
    script = script if not script.startswith("..") else str(here / "run_app.sh")
    return script if "/" in script else f"./{script}"


def example_model(settings: Settings) -> str:
    """A model this proxy serves: routing's first plain name, the backend's example, else the first its upstream
    lists (the chosen backend's /models), else gpt-4o (what servers that take any name are sent)."""
    plain = [e.name for e in settings.models if not any(c in e.name for c in "*?[")]
    if settings.models:
        return plain[0] if plain else "gpt-4o"
    chosen = backend_named(settings.backend).run
    if chosen.example_model:
        return chosen.example_model
    import requests
    from argoproxy.config import provider_registry as providers
    try:
        answer = requests.get(providers.get(settings.backend).url(settings) + "models", timeout=CHECK_TIMEOUT)
        listed = [m.get("id") for m in answer.json().get("data") or [] if isinstance(m, dict)]
    except (requests.RequestException, ValueError, AttributeError):
        listed = []
    return next((m for m in listed if isinstance(m, str) and m), "gpt-4o")


def main(argv: list[str] | None = None) -> None:
    """`./run_app.sh [config.yaml] [flags]`: the flags are python cot_proxy.py's (--help lists them)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:  # ./run_app.sh keys ...: no set-up, no server
        from argoproxy.serve.gunicorn_app import loaded_or_exit
        from argoproxy.teamkeys.cli import main as keys_main
        raise SystemExit(keys_main(argv[1:], lambda flags: loaded_or_exit(flags).settings, prog="run_app.sh"))
    if argv[:1] == ["teams"]:  # ./run_app.sh teams ...: as `keys`
        from argoproxy.serve.gunicorn_app import loaded_or_exit
        from argoproxy.teamkeys.teams_cli import main as teams_main
        raise SystemExit(teams_main(argv[1:], lambda flags: loaded_or_exit(flags).settings, prog="run_app.sh"))
    if argv[:1] == ["people"]:  # ./run_app.sh people ...: as `keys`
        from argoproxy.serve.gunicorn_app import loaded_or_exit
        from argoproxy.teamkeys.people_cli import main as people_main
        raise SystemExit(people_main(argv[1:], lambda flags: loaded_or_exit(flags).settings, prog="run_app.sh"))
    if argv[:1] == ["signin"]:  # ./run_app.sh signin setup: sign-in's questions, written into the config
        from argoproxy.signin.setup import main as signin_main
        raise SystemExit(signin_main(argv[1:], run_app_launcher(HERE)))
    if argv[:1] == ["prices"]:  # ./run_app.sh prices refresh|show: as `keys`, no set-up, no server
        from argoproxy.serve.gunicorn_app import loaded_or_exit
        from argoproxy.spend import prices_main
        raise SystemExit(prices_main(argv[1:], "run_app.sh", lambda flags: loaded_or_exit(flags).settings))
    if argv[:1] == ["demo"]:  # ./run_app.sh demo: the proxy in front of its demo model, no set-up questions
        from argoproxy.launch.demo import main as demo_main
        raise SystemExit(demo_main(argv[1:], run_app_launcher(HERE), parse_flags))
    if argv[:1] == ["mcp"]:  # ./run_app.sh mcp list: the running proxy's MCP servers, as `cot-proxy mcp list`
        from argoproxy.launch.mcp_list import main as mcp_main
        raise SystemExit(mcp_main(argv[1:], run_app_launcher(HERE), parse_flags))
    if argv[:1] in (["run"], ["agents"]):  # ./run_app.sh run -- claude: no set-up questions, the same settings
        from argoproxy.launch.run import main as launch_main
        raise SystemExit(launch_main(argv[0], argv[1:], run_app_launcher(HERE), parse_flags))
    sys.argv[0] = "run_app.sh"  # argparse names the program in --help and usage lines from it
    given, parsed = parse_flags(argv)  # a bad or unknown flag ends here, with argparse's usage line
    if parsed.show:
        serve(argv, {})  # nothing to set up: print the settings as every entry point resolves them
    named = given.pop("config_path", None)
    set_up_and_serve(argv, given, named, run_app_launcher(HERE))


def set_up_and_serve(argv: list[str], given: dict[str, Any], named: str | None, launcher: str,
                     command: list[str] | None = None) -> NoReturn:
    """The first run (questions when the config is missing, the checks), then the server: `command` (python -m
    argoproxy.cli) with `argv`. `named`: the config file the command line gave, else ./config.yaml."""
    config = Path(named or "config.yaml").expanduser().absolute()
    try:
        flags = prepare(config, explicit=bool(named), given=given, launcher=launcher)
    except Abort as exc:
        print(exc, file=sys.stderr, flush=True)
        raise SystemExit(exc.code) from None
    except KeyboardInterrupt:
        say()
        raise SystemExit(130) from None
    serve(argv, flags, command)


def serve(argv: list[str], flags: dict[str, Any], command: list[str] | None = None) -> NoReturn:
    """`python -m argoproxy.cli [CONFIG] [flags]` (or `command`) in a fresh process: the checks imported
    requests and ssl here, which gevent's workers must patch before anything imports them. The config this run
    settled on and a port chosen at a question come after the user's own flags, so they win."""
    args = [*(command or [sys.executable, "-m", "argoproxy.cli"]), *argv]
    if "config_path" in flags:
        args += ["--config", flags["config_path"]]
    if "port" in flags:
        args += ["--port", str(flags["port"])]
    sys.stdout.flush()
    hold_stop_signals()
    os.execv(sys.executable, args)


# Held blocked by the first-run process across its exec into the server (serve), released by the server first
# thing (argoproxy/stop_signals.py's release_stop_signals, from argoproxy.cli.main).
def hold_stop_signals() -> None:
    """Block SIGINT and SIGTERM for the exec: a signal this interpreter caught just before it would be lost with
    it (Python's handler only flags it for the next Python call), and the server would start and run on (seen in
    CI: Ctrl+C right after "Starting cot_proxy"). Blocked, a signal stays pending across the exec and the new
    process unblocks it first thing (release_stop_signals). One flagged before the block is raised here."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        check_interrupt()
    except KeyboardInterrupt:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        say()
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
