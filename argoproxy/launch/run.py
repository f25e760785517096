"""`cot-proxy run [config] [flags] [--model NAME] [--env-file FILE] -- AGENT [ARGS]` and `cot-proxy agents [...]`.

run reads the proxy's settings from the user's environment and command line, and from files only when the user
named them or trusted the directory (argoproxy/launch/sources.py). The proxy of those settings is used when
something listens on its address and proves it is the user's own; otherwise one is started in the run's private
directory and stopped when the agent exits (argoproxy/launch/proxy.py). The agent gets the set-up
argoproxy/launch/agents.py gives it, a key of the run's own (argoproxy/launch/run_key.py: revoked when the agent
exits, however it exits) and the user's environment without the proxy's keys (argoproxy/launch/environments.py).
It runs in the foreground with the terminal, and its exit status is run's.

The key run itself asks the proxy with (for its models, and to make the run's key): COT_PROXY_KEY when set, else
the first of the proxy's own keys this user can read (API_KEY_SECRET, API_KEY_FILE); a proxy started here with
auth on and no key configured gets a fresh one. It goes only to a listener that proved itself.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

from argoproxy.config.listener import generate_key
from argoproxy.config.settings import Settings, SettingsError, find_config, load
from argoproxy.launch.agents import AGENTS, MCP_SERVER, Agent, AgentTarget, Setup, model_for, models_named
from argoproxy.launch.environments import USER_KEY_ENV, agent_environment, direct_to, proxy_environment
from argoproxy.launch.mcp_gateway import serves_mcp
from argoproxy.launch.proxy import (Refused, StartedProxy, accepts, address, base_url, listening, path_flags, prove,
                                    served_models)
from argoproxy.launch.run_key import NO_KEY, admin_keys, for_run, open_store
from argoproxy.launch.run_session import new_session, run_cost, settled
from argoproxy.launch.websocket_probe import WEBSOCKET_DOOR, serves_websocket
from argoproxy.pipeline.model_context import context_length
from argoproxy.launch.sources import ask_on_terminal, choose, env_file_values, without_code_loaders


def usage(prog: str) -> str:
    return (f"usage: {prog} run [config.yaml] [flags] [--model NAME] -- AGENT [ARGS...]\n"
            f"       {prog} agents [config.yaml] [flags]\n"
            f"AGENT: {', '.join(AGENTS)}")


# The command line's own parser (argoproxy.cli.parse_flags), handed in by the entry point: the proxy's flags
# are read exactly as when it serves.
FlagParser = Callable[[list[str]], tuple[dict[str, Any], Any]]


HELP = """

run: start AGENT pointed at this proxy (the proxy is started first when nothing listens on its address, and
stopped when the agent exits); the agent's exit status is run's. agents: print the set-up run would give each
agent found on PATH, and how to install the others.

  config.yaml, flags  the proxy's settings, as when it serves (cot-proxy --help lists the flags)
  --env-file FILE     variables for the proxy, as in a .env file
  --model NAME        the model the agent asks for (default: the first the proxy lists that names the
                      agent's family, such as claude for Claude Code, else the first listed)
  ARGS                the agent's own arguments, passed as given

A .env, config.yaml, keys.db or responses.db in the working directory is read only once you trusted the
directory (asked once, on a terminal). The agent never gets the proxy's admin key or its upstream keys: it gets
a key made for the run, revoked when it exits. When the proxy serves MCP servers (/mcp), the agent is given them
too, with that key, as one more MCP server named cot_proxy beside its own (all but aider).

examples:
  {prog} run -- claude -p "Summarise README.md"
  {prog} run --model gpt-4o -- codex exec "fix the failing test"
  {prog} agents"""


def main(command: str, argv: list[str], prog: str, parse_flags: FlagParser) -> int:
    if asks_help(argv):
        print(usage(prog) + HELP.format(prog=prog))
        return 0
    def say(line: str) -> None:
        print(f"{prog} {command}: {line}", file=sys.stderr, flush=True)
    try:
        with ended_by_signals():
            if command == "agents":
                return show_agents(argv, prog, parse_flags, say)
            return run(argv, prog, parse_flags, say)
    except Refused as exc:
        say(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130


# ---- the command line ---------------------------------------------------------------------------------------

def asks_help(argv: list[str]) -> bool:
    """-h or --help among run's own words (after `--` they are the agent's)."""
    ours = argv[:argv.index("--")] if "--" in argv else argv
    return any(a in ("-h", "--help") for a in ours[:agent_at(ours)])  # `run claude --help`: the agent's


def split(argv: list[str], prog: str) -> tuple[list[str], str | None, str, list[str]]:
    """(the proxy's flags, --model, the agent, its arguments)."""
    if "--" in argv:
        at = argv.index("--")
        ours, theirs = argv[:at], argv[at + 1:]
    else:  # `run claude -p ...`: the first word that names an agent starts the agent's part
        at = agent_at(argv)
        ours, theirs = argv[:at], argv[at:]
    model, ours = take_option(ours, "--model")
    if not theirs:
        raise Refused(f"which agent?\n{usage(prog)}")
    return ours, model, theirs[0], theirs[1:]


def agent_at(words: list[str]) -> int:
    """Where the agent's part starts when no `--` says so: the first word naming an agent that is not the value of
    --model or --env-file (`run --model claude codex`: codex); len(words) when none does."""
    for i, word in enumerate(words):
        if word in AGENTS and not (i and words[i - 1] in ("--model", "--env-file")):
            return i
    return len(words)


def take_option(args: list[str], name: str) -> tuple[str | None, list[str]]:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1], args[:i] + args[i + 2:]
        if arg.startswith(name + "="):
            return arg.partition("=")[2], args[:i] + args[i + 1:]
    return None, args


def agent_named(name: str) -> Agent:
    agent = AGENTS.get(Path(name).name)
    if agent is None:
        raise Refused(f"no set-up for {name!r}: the agents are {', '.join(AGENTS)}")
    return agent


def typed(prog: str) -> str:
    """The command as its user types it again: `./run_app.sh`, `cot-proxy`, `python cot_proxy.py`. A hint naming
    `cot-proxy` sent users of run_app.sh, who have no such command, to one they could not run."""
    return f"python {prog}" if prog.endswith(".py") else prog


def program_for(agent: Agent, prog: str) -> str:
    """The agent's program on PATH. Relative entries of PATH (an empty one is the working directory) are passed
    by: a repository's own `./claude` is not the agent."""
    found = find_program(agent.name)
    if found is None:
        raise Refused(f"{agent.name} is not on PATH: install it with `{agent.install}` (`{typed(prog)} agents` "
                      "lists the agents found)")
    return found


def find_program(name: str) -> str | None:
    folders = [d for d in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(d)]
    return shutil.which(name, path=os.pathsep.join(folders)) if folders else None


# ---- the settings ----------------------------------------------------------------------------------------------

def prepare(proxy_args: list[str], env_file: str | None, parse_flags: FlagParser,
            say: Callable[[str], None]) -> tuple[Settings, dict[str, str]]:
    """(the settings, the env file's variables for the proxy): from what the user named or trusted only."""
    flags, _ = parse_flags(proxy_args)
    named = flags.get("config_path") or os.environ.get("CONFIG_PATH")
    sources = choose(Path.cwd(), named, env_file, ask_on_terminal, say)
    from_file: dict[str, str] = {}
    try:
        if sources.env_file is not None:
            from_file, dropped = without_code_loaders(env_file_values(sources.env_file))
            if dropped:
                say(f"not taking {', '.join(dropped)} from {sources.env_file}: a file never sets what loads code "
                    "(only your own environment does)")
        environ = {**from_file, **os.environ}
        if sources.data_dir is not None and not _data_named(flags, environ, sources.search):
            flags["keys_db"] = str(sources.data_dir / "keys.db")  # responses.db goes beside it
        return load(flags, environ, sources.search).settings, from_file
    except SettingsError as exc:
        raise Refused(f"bad setting {exc}") from None


def _data_named(flags: dict[str, Any], environ: dict[str, str], search: tuple[str, ...]) -> bool:
    """Whether something says where keys.db and responses.db are: their settings, or a config (beside which they
    are by default). Otherwise the proxy would put them in the working directory."""
    if {"KEYS_DB", "RESPONSES_DB"} & set(environ) or {"keys_db", "responses_db"} & set(flags):
        return True
    return find_config(flags.get("config_path") or environ.get("CONFIG_PATH", ""), search=search) is not None


def own_key(settings: Settings) -> str | None:
    """The key this user would give a client of this proxy (see the module's docstring)."""
    if os.environ.get(USER_KEY_ENV):
        return os.environ[USER_KEY_ENV]
    if not settings.enable_auth:
        return NO_KEY
    keys = admin_keys(settings)
    return keys[0] if keys else None


# ---- running the agent ----

def refusal(url: str, key: str, settings: Settings) -> str:
    """Why the proxy refused the agent's key, and what to do: the cause depends on where the key came from."""
    if key == NO_KEY:
        return (f"the proxy at {url} asks for a key, but auth is off in this shell's settings (no ENABLE_AUTH), so "
                f"run has none to give: set {USER_KEY_ENV} to your key (`cot-proxy keys create NAME` makes one)")
    if key == os.environ.get(USER_KEY_ENV):
        return f"the proxy at {url} refused your key ({USER_KEY_ENV}): is it a key of this proxy's?"
    return (f"the proxy at {url} refused the run's key: does it read the key store of these settings "
            "(KEYS_DB, REDIS_URL)?")


def scratch_base() -> Path:
    """Where a run's temporary configs go: the user's runtime directory, else ~/.cache/cot_proxy/run. Not /tmp:
    Gemini CLI ignores a settings file in a directory others can write to, or below one."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir() and Path(runtime).stat().st_uid == os.getuid():
        return Path(runtime)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cot_proxy" / "run"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def write_files(setup: Setup) -> None:
    for path, text in setup.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)


def run(argv: list[str], prog: str, parse_flags: FlagParser, say: Callable[[str], None]) -> int:
    proxy_args, asked_model, name, agent_args = split(argv, prog)
    env_file, proxy_args = take_option(proxy_args, "--env-file")
    agent = agent_named(name)
    program = program_for(agent, prog)
    settings, from_file = prepare(proxy_args, env_file, parse_flags, say)
    host, port = address(settings)
    url = base_url(host, port)
    key = own_key(settings)
    admin = set(admin_keys(settings))
    session, began, code = new_session(), time.time(), None
    with tempfile.TemporaryDirectory(prefix="cot-proxy-run-", dir=scratch_base()) as made:
        scratch, started, run_key = Path(made), None, None
        try:
            if not listening(host, port):
                extra = {}
                if key is None:  # auth on and no key of ours configured: the proxy started here takes a fresh one
                    key = extra["API_KEY_SECRET"] = generate_key()
                    admin.add(key)
                log = scratch_base() / f"cot-proxy-{port}.log"  # kept after the run, which may end on what it says
                say(f"starting the proxy on {url} (log: {log})")
                started = StartedProxy([*proxy_args, *path_flags(settings)],
                                       proxy_environment(os.environ, from_file, extra), scratch, host, port, log)
            elif key is None:
                raise Refused(f"the proxy at {url} asks for a key and none of its keys is readable here: set "
                              f"{USER_KEY_ENV}")
            prove(host, port, scratch)
            model, window = chosen_model(agent, asked_model, url, key, settings, started)
            models = list(dict.fromkeys([model, *models_named(agent, agent_args)]))
            run_key = for_run(settings, key, key in admin, models, agent.name)
            if not accepts(url, run_key.key):
                raise Refused(refusal(url, run_key.key, settings))
            target = AgentTarget(url, run_key.key, model, window, session=session)
            if agent.door == WEBSOCKET_DOOR:  # Codex's WebSocket mode, when the proxy serves it
                target = replace(target, websocket=serves_websocket(url, run_key.key))
            if agent.speaks_mcp:  # the proxy's MCP servers, when it serves them at /mcp
                target = replace(target, mcp=serves_mcp(url, run_key.key))
            setup = agent.setup(target, agent_args, scratch, program)
            write_files(setup)
            say(f"{agent.title} -> {url} ({agent.door}), model {model} ({window_said(target)}), key: {run_key.where}"
                + (f", MCP servers: {target.mcp_url} as {MCP_SERVER}" if target.mcp else ""))
            env = direct_to(agent_environment(setup, os.environ, settings, [key, *admin]), host)
            code = run_in_foreground(setup.argv, env)
            return code
        finally:
            if run_key is not None:
                run_key.revoke()
            if started is not None:
                started.stop()
            if code is not None and settings.enable_auth:
                say_cost(settings, session, run_key.name if run_key is not None else None, began, started is not None,
                         say)


def say_cost(settings: Settings, session: str, key_name: str | None, began: float, started_here: bool,
             say: Callable[[str], None]) -> None:
    """The run's cost in one line, when the key store has it (launch/run_session.py); a store that cannot say
    is passed over in silence: the agent's work is done."""
    try:
        settled(started_here)
        line = run_cost(open_store(settings), session, key_name, began)
    except Exception:  # noqa: BLE001 - a store away or locked: nothing to say
        return
    if line:
        say(line)


def chosen_model(agent: Agent, asked: str | None, url: str, key: str, settings: Settings,
                 started: StartedProxy | None) -> tuple[str, int | None]:
    """(the model the agent asks for, its window as the proxy lists it: None when it lists none)."""
    listed = served_models(url, key)
    model = asked or model_for(agent, [m["id"] for m in listed])
    if model is None:
        raise Refused(f"the proxy at {url} lists no model: {no_models_why(settings, started)}")
    return model, window_of(model, listed)


def no_models_why(settings: Settings, started: StartedProxy | None) -> str:
    """Most often the upstream is not running (a set-up whose check failed, a server stopped since): name it,
    and the log of a proxy started here."""
    from argoproxy.config import provider_registry
    from argoproxy.redaction import mask_url
    upstream = mask_url(provider_registry.get(settings.backend).url(settings))
    log = f" (the proxy's log: {started.log})" if started is not None else ""
    return (f"is its upstream {upstream} running and serving models?{log} Start it, or name a model with --model "
            "if it lists none")


def window_of(model: str, listed: list[dict[str, Any]]) -> int | None:
    """The model's context window, read from the proxy's list as the proxy reads it for reservations."""
    entry = next((m for m in listed if m["id"] == model), None)
    return context_length(entry) if entry is not None else None


def window_said(target: AgentTarget) -> str:
    if target.window is None:
        return "window not known: the agent keeps its own default"
    return f"window {target.window:,} tokens, output limit {target.output:,}"


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def ended_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end run through its `finally` blocks (the run's key revoked, the proxy stopped), where
    Python's default would end it on the spot."""
    def end(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)
    previous = {sig: signal.signal(sig, end) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_in_foreground(argv: list[str], env: dict[str, str]) -> int:
    """The agent owns the terminal: Ctrl+C reaches it (same process group) and we wait for it to end; a SIGTERM
    or SIGHUP sent to run is passed on to it."""
    proc = subprocess.Popen(argv, env=env)
    previous = {sig: signal.signal(sig, lambda signum, frame: proc.send_signal(signum)) for sig in STOP_SIGNALS}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


# ---- cot-proxy agents -------------------------------------------------------------------------------------------

def show_agents(argv: list[str], prog: str, parse_flags: FlagParser, say: Callable[[str], None]) -> int:
    env_file, argv = take_option(argv, "--env-file")
    settings, _ = prepare(argv, env_file, parse_flags, say)
    host, port = address(settings)
    url = base_url(host, port)
    key = own_key(settings)
    state, listed = f"not running: `{typed(prog)} run` starts it", list[dict[str, Any]]()
    if listening(host, port):
        state, listed = proven_models(host, port, url, key)
    served = [m["id"] for m in listed]
    asked = bool(listed) and key is not None  # a proven proxy's doors, asked with the key run would use
    mcp = asked and serves_mcp(url, str(key))
    websocket = asked and serves_websocket(url, str(key))  # what run tells Codex (supports_websockets)
    print(f"proxy: {url} ({state}{', MCP servers at /mcp' if mcp else ''})")
    missing = []
    for agent in AGENTS.values():
        program = find_program(agent.name)
        if program is None:
            missing.append(agent)
            continue
        model = model_for(agent, served) or "MODEL"
        scratch = scratch_base() / "cot-proxy-run-XXXX"
        target = AgentTarget(url, "KEY", model, window_of(model, listed),
                             websocket=websocket and agent.door == WEBSOCKET_DOOR, mcp=mcp and agent.speaks_mcp)
        setup = agent.setup(target, [], scratch, program)
        print(f"\n{agent.name}: {agent.title} ({program}), speaks {agent.door}")
        for line in describe(setup, settings, key, target, bool(listed)):
            print(f"  {line}")
    if missing:
        print(f"\nnot on PATH (install, then `{typed(prog)} run -- AGENT`):")
        for agent in missing:
            print(f"  {agent.name}: {agent.install}")
    return 0


def proven_models(host: str, port: int, url: str, key: str | None) -> tuple[str, list[dict[str, Any]]]:
    """(what listens there, the models it lists): asked only of the user's own proxy."""
    with tempfile.TemporaryDirectory(prefix="cot-proxy-agents-", dir=scratch_base()) as made:
        try:
            prove(host, port, Path(made))
        except Refused:
            return "something listens there that did not prove it is your proxy: not asked", []
    return "listening", served_models(url, key) if key else []


def describe(setup: Setup, settings: Settings, key: str | None, target: AgentTarget, asked: bool) -> Iterator[str]:
    """The set-up as lines; the key is never printed (KEY: where it comes from). `asked`: the proxy listed its
    models (else the window could not be known)."""
    model = target.model
    admin = key is None or key in admin_keys(settings)
    where = ("any text (auth is off)" if not settings.enable_auth else
             "a key made for each run, allowed its model, revoked when the agent exits" if admin else
             f"${USER_KEY_ENV} (a team key of yours: a key made for each run within its limits)")
    yield f"command: {' '.join(shlex.quote(a) for a in setup.argv)}"
    for name, value in setup.env.items():
        yield f"set   {name}={value}"
    for name in setup.unset:
        yield f"unset {name}"
    yield "unset the proxy's keys (API_KEY_SECRET, OPENAI_API_KEY, ..., COT_PROXY_KEY)"
    for path, text in setup.files.items():
        yield f"file  {path} (temporary):"
        yield from (f"      {line}" for line in text.splitlines())
    yield f"KEY: {where}"
    if model == "MODEL":
        yield "MODEL: the first model the proxy lists that names the agent's family, else its first (or --model)"
    if target.window is not None:
        yield f"window: {target.window:,} tokens, output limit {target.output:,} (the proxy's model list)"
    elif asked:
        yield (f"window: not known: the proxy's model list gives none for {model} (OpenAI, ARGO and DashScope "
               "publish none), so none is set and the agent keeps its own default")
    else:
        yield "window: read from the proxy's model list when it runs (none set when it lists none)"
