"""`cot-proxy run [config] [flags] [--model NAME] -- AGENT [ARGS]` and `cot-proxy agents [config] [flags]`.

run: the proxy of these settings is used when something listens on its address; otherwise it is started (its
output goes to a log file, named when it fails) and stopped when the agent exits. The agent gets the set-up
argoproxy/launch/agents.py gives it (a model the proxy lists, the proxy's key), runs in the foreground with
the terminal, and its exit status is run's.

The key the agent sends: COT_PROXY_KEY when set, else the first of the proxy's own keys this user can read
(API_KEY_SECRET, API_KEY_FILE), else a placeholder (auth off). A proxy started here with auth on and no key
configured gets a fresh key, handed to the agent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

from argoproxy.config.listener import generate_key
from argoproxy.config.settings import Settings
from argoproxy.launch.agents import AGENTS, Agent, Setup, Target, model_for

START_TIMEOUT = 60.0  # seconds for a proxy started here to listen
STOP_TIMEOUT = 15.0
MODELS_TIMEOUT = 10.0
NO_KEY = "sk-cot-proxy-no-auth"  # what agents send when the proxy asks for no key (they all insist on one)


class Refused(Exception):
    """Stop with this one line (exit status 2)."""


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
agent found on PATH.

  config.yaml, flags  the proxy's settings, as when it serves (cot-proxy --help lists the flags)
  --model NAME        the model the agent asks for (default: the first the proxy lists that names the
                      agent's family, such as claude for Claude Code, else the first listed)
  ARGS                the agent's own arguments, passed as given

examples:
  {prog} run -- claude -p "Summarise README.md"
  {prog} run --model gpt-4o -- codex exec "fix the failing test"
  {prog} agents"""


def main(command: str, argv: list[str], prog: str, parse_flags: FlagParser) -> int:
    if asks_help(argv):
        print(usage(prog) + HELP.format(prog=prog))
        return 0
    try:
        if command == "agents":
            return show_agents(argv, parse_flags)
        return run(argv, prog, parse_flags)
    except Refused as exc:
        print(f"{prog} {command}: {exc}", file=sys.stderr)
        return 2


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
    model, ours = _take_option(ours, "--model")
    if not theirs:
        raise Refused(f"which agent?\n{usage(prog)}")
    return ours, model, theirs[0], theirs[1:]


def agent_at(words: list[str]) -> int:
    """Where the agent's part starts when no `--` says so: the first word naming an agent that is not --model's
    value (`run --model claude codex`: codex); len(words) when none does."""
    for i, word in enumerate(words):
        if word in AGENTS and not (i and words[i - 1] == "--model"):
            return i
    return len(words)


def _take_option(args: list[str], name: str) -> tuple[str | None, list[str]]:
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


def program_for(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Refused(f"{name} is not on PATH (install it first; `cot-proxy agents` lists the agents found)")
    return found


def settings_of(proxy_args: list[str], parse_flags: FlagParser) -> tuple[Settings, dict[str, Any]]:
    from argoproxy.serve.gunicorn_app import loaded_or_exit
    flags, _ = parse_flags(proxy_args)
    return loaded_or_exit(flags).settings, flags


# ---- the proxy -----------------------------------------------------------------------------------------------

def address(settings: Settings) -> tuple[str, int]:
    """Where a client on this machine reaches the proxy (every-interface binds through loopback)."""
    if settings.socket:
        raise Refused(f"the agents speak TCP, and SOCKET={settings.socket} makes the proxy listen on a Unix socket "
                      "only: unset SOCKET for this run (or give the agent a TCP front)")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(settings.host, settings.host)
    return host.strip("[]"), settings.port


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def own_key(settings: Settings) -> str | None:
    """The key this user would give a client of this proxy (see the module's docstring)."""
    if os.environ.get("COT_PROXY_KEY"):
        return os.environ["COT_PROXY_KEY"]
    if not settings.enable_auth:
        return NO_KEY
    if settings.api_key_secret:
        return settings.api_key_secret[0]
    if settings.api_key_file:
        try:
            lines = Path(settings.api_key_file).expanduser().read_text().split()
        except OSError:
            lines = []
        if lines:
            return lines[0]
    return None


class StartedProxy:
    """The proxy run started: in a session of its own (the terminal's Ctrl+C is the agent's), output to a log."""

    def __init__(self, proxy_args: list[str], env: dict[str, str], log: Path, host: str, port: int) -> None:
        self.log = log
        # The agent's directory stays the working directory (config.yaml and .env are looked up there, as for
        # run itself); the package is found where this one was loaded from.
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)}
        with log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "argoproxy.cli", *proxy_args], env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not listening(host, port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                self.stop()
                raise Refused("the proxy did not start:\n  " + "\n  ".join(tail or ["(no output)"]))
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Gunicorn's quick exit: the agent is gone, nothing to finish
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def served_models(url: str, key: str) -> list[str]:
    request = urllib.request.Request(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=MODELS_TIMEOUT) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise Refused(f"the proxy at {url} refused the key ({exc.code}): set COT_PROXY_KEY to a key it "
                          "accepts") from None
        return []
    except (OSError, ValueError):
        return []
    data = body.get("data") if isinstance(body, dict) else None
    return [m["id"] for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]


def chosen_model(agent: Agent, asked: str | None, url: str, key: str) -> str:
    if asked:
        return asked
    model = model_for(agent, served_models(url, key))
    if model is None:
        raise Refused(f"the proxy at {url} lists no model: name one with --model")
    return model


# ---- running the agent ----

def scratch_base() -> Path:
    """Where a run's temporary configs go: the user's runtime directory, else ~/.cache/cot_proxy/run. Not /tmp:
    Gemini CLI ignores a settings file in a directory others can write to, or below one."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir() and Path(runtime).stat().st_uid == os.getuid():
        return Path(runtime)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cot_proxy" / "run"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base

def agent_environment(setup: Setup, base: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in setup.unset}
    env.update(setup.env)
    return env


def write_files(setup: Setup) -> None:
    for path, text in setup.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)


def run(argv: list[str], prog: str, parse_flags: FlagParser) -> int:
    proxy_args, asked_model, name, agent_args = split(argv, prog)
    agent = agent_named(name)
    program = program_for(name)
    settings, _ = settings_of(proxy_args, parse_flags)
    host, port = address(settings)
    url = base_url(host, port)
    key = own_key(settings)
    with tempfile.TemporaryDirectory(prefix="cot-proxy-run-", dir=scratch_base()) as scratch:
        started = None
        if not listening(host, port):
            env = dict(os.environ)
            if key is None:  # auth on and no key of ours configured: the proxy started here takes a fresh one
                key = env["API_KEY_SECRET"] = generate_key()
            print(f"{prog} run: starting the proxy on {url} (log: {Path(scratch) / 'proxy.log'})", file=sys.stderr)
            started = StartedProxy(proxy_args, env, Path(scratch) / "proxy.log", host, port)
        elif key is None:
            raise Refused(f"the proxy at {url} asks for a key and none of its keys is readable here: set "
                          "COT_PROXY_KEY")
        try:
            target = Target(url, key, chosen_model(agent, asked_model, url, key))
            setup = agent.setup(target, agent_args, Path(scratch), program)
            write_files(setup)
            print(f"{prog} run: {agent.title} -> {url} ({agent.door}), model {target.model}", file=sys.stderr)
            return run_in_foreground(setup.argv, agent_environment(setup, dict(os.environ)))
        finally:
            if started is not None:
                started.stop()


def run_in_foreground(argv: list[str], env: dict[str, str]) -> int:
    """The agent owns the terminal: Ctrl+C reaches it (same process group) and we wait for it to end."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = subprocess.Popen(argv, env=env)
        code = proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - code if code < 0 else code


# ---- cot-proxy agents -------------------------------------------------------------------------------------------

def show_agents(argv: list[str], parse_flags: FlagParser) -> int:
    settings, _ = settings_of(argv, parse_flags)
    host, port = address(settings)
    url = base_url(host, port)
    key = own_key(settings)
    up = listening(host, port)
    served = served_models(url, key) if up and key else []
    print(f"proxy: {url} ({'listening' if up else 'not running: `cot-proxy run` starts it'})")
    found = 0
    for agent in AGENTS.values():
        program = shutil.which(agent.name)
        if program is None:
            continue
        found += 1
        model = model_for(agent, served) or "MODEL"
        scratch = scratch_base() / "cot-proxy-run-XXXX"
        setup = agent.setup(Target(url, "KEY", model), [], scratch, program)
        print(f"\n{agent.name}: {agent.title} ({program}), speaks {agent.door}")
        for line in describe(setup, key, model):
            print(f"  {line}")
    if not found:
        print(f"\nnone of {', '.join(AGENTS)} is on PATH")
    return 0


def describe(setup: Setup, key: str | None, model: str) -> Iterator[str]:
    """The set-up as lines; the key is never printed (KEY: where it comes from)."""
    where = ("$COT_PROXY_KEY" if os.environ.get("COT_PROXY_KEY") else
             "any text (auth is off)" if key == NO_KEY else
             "the proxy's key (API_KEY_SECRET / API_KEY_FILE)" if key else "a fresh key, when run starts the proxy")
    yield f"command: {' '.join(_quoted(a) for a in setup.argv)}"
    for name, value in setup.env.items():
        yield f"set   {name}={value}"
    for name in setup.unset:
        yield f"unset {name}"
    for path, text in setup.files.items():
        yield f"file  {path} (temporary):"
        yield from (f"      {line}" for line in text.splitlines())
    yield f"KEY: {where}"
    if model == "MODEL":
        yield "MODEL: the first model the proxy lists that names the agent's family, else its first (or --model)"


def _quoted(arg: str) -> str:
    import shlex
    return shlex.quote(arg)
