"""The coding agents of tests/agents: where tools/build_agents.sh installed each one (agents.txt), how its users
point it at the proxy (the settings the README's "AI coding tools" section shows), and one bounded,
isolated, non-interactive run.

Isolation: each run gets its own HOME (and XDG directories under it) holding only the configuration written
here, an environment built from nothing but PATH, and every proxy variable aimed at a closed loopback port
(loopback itself excepted), so whatever an agent tries beyond the proxy (updates, telemetry, model lists)
fails at once and no run reaches the internet.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from argoproxy.launch import agents as launch
from tests.proxy_process import ROOT

CACHE = Path(os.environ.get("COT_PROXY_CACHE") or Path.home() / ".cache" / "cot_proxy") / "agents"
HOW_TO_INSTALL = "run tools/build_agents.sh once (installs the agents of agents.txt into ~/.cache/cot_proxy/agents)"
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once
KEY = "sk-agents-test"


def pins() -> dict[str, tuple[str, str]]:
    """name -> (package, version), from agents.txt."""
    out = {}
    for line in (ROOT / "agents.txt").read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            out[fields[0]] = (fields[1], fields[2])
    return out


def installed(name: str, program: str) -> Path:
    """The agent's program in the cache, or skip the test saying how to install it."""
    package, version = pins()[name]
    home = CACHE / f"{name}-{version}"
    if not (home / ".complete").exists():
        pytest.skip(f"{package} {version} not installed ({home} missing): {HOW_TO_INSTALL}")
    return home / "bin" / program


@dataclass
class Run:
    """What one agent run needs to know: the proxy, the model, a prompt, and its own directories."""
    proxy_url: str  # http://127.0.0.1:PORT, no /v1
    model: str
    prompt: str
    home: Path  # the agent's HOME: its configuration goes here
    workdir: Path  # the directory it works in


@dataclass
class Result:
    returncode: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class Agent:
    name: str
    front: str  # the proxy's door it speaks: chat, responses, messages, google, ollama
    tool_result_role: str  # where the tool's output comes back: in a "tool" result, or in a "user" message (Aider)
    setup: Callable[[Run], tuple[list[str], dict[str, str]]]  # writes its config; returns (argv, environment)

    def run(self, run: Run, timeout: float) -> Result:
        argv, env = self.setup(run)
        return _bounded(argv, _isolated(run.home, env), run.workdir, timeout)


def _isolated(home: Path, env: dict[str, str]) -> dict[str, str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
            "TERM": "dumb", "NO_COLOR": "1", "TMPDIR": str(home / "tmp"),
            "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"), "XDG_STATE_HOME": str(home / ".local" / "state")}
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        base[name] = base[name.upper()] = NOWHERE
    base["no_proxy"] = base["NO_PROXY"] = "127.0.0.1,localhost"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return {**base, **env}


def _bounded(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Result:
    """Run to the end or to the time limit, then kill the whole process group (agents start shells)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:  # what the agent left running in its group (a shell it started) goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return Result(code, out, err, time.monotonic() - start)


# --------------------------------------------------------------------------- each agent, as `cot-proxy run` sets it up
# The set-up that points an agent at the proxy is the product's (argoproxy/launch/agents.py). A test run adds
# only what keeps it non-interactive, isolated and quiet (no telemetry, update checks or catalogue downloads):
# the agent's arguments, a few variables, and a user's own configuration written in the run's HOME, which the
# product's set-up must leave alone and override where it points elsewhere.


@dataclass(frozen=True)
class QuietRun:
    args: list[str]  # after the agent's name
    env: dict[str, str]
    own_config: dict[str, str]  # path under HOME -> text


def quiet_run(name: str, prompt: str) -> QuietRun:
    if name == "claude":
        return QuietRun(["-p", prompt], {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
                                        "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"}, {})
    if name == "codex":
        return QuietRun(["exec", "--skip-git-repo-check", prompt], {},
                       {".codex/config.toml": 'check_for_update_on_startup = false\n\n[analytics]\nenabled = false\n'})
    if name == "opencode":
        own = json.dumps({"$schema": "https://opencode.ai/config.json", "autoupdate": False, "share": "disabled"})
        return QuietRun(["run", prompt], {"OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1",
                                         "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
                                         "OPENCODE_DISABLE_SHARE": "1", "OPENCODE_DISABLE_CLAUDE_CODE": "1"},
                       {".config/opencode/opencode.json": own})
    if name == "aider":
        return QuietRun(["--message", prompt, "--yes-always", "--no-check-update", "--no-show-release-notes",
                        "--analytics-disable", "--no-auto-commits", "--no-pretty", "--no-fancy-input"],
                       {"LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm fetches a price list from GitHub otherwise
                        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
                        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}, {})
    assert name == "gemini", name
    own = json.dumps({"privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False},
                      "general": {"disableAutoUpdate": True, "disableUpdateNag": True}})
    return QuietRun(["-p", prompt], {"GEMINI_CLI_TRUST_WORKSPACE": "true"}, {".gemini/settings.json": own})


def write_own_config(home: Path, test: QuietRun) -> None:
    for relative, text in test.own_config.items():
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text(text)


def secure_scratch() -> Path:
    """A directory for the product's temporary configs, as `cot-proxy run` makes one: private, below no directory
    others can write to (Gemini CLI ignores a settings file under /tmp, where pytest's directories are)."""
    base = CACHE.parent / "test-runs"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    made = Path(tempfile.mkdtemp(dir=base))
    atexit.register(shutil.rmtree, made, True)
    return made


def product_setup(name: str, extra: tuple[str, ...] = ()) -> Callable[[Run], tuple[list[str], dict[str, str]]]:
    """The product's set-up of agent `name` plus the test run's additions, and `extra` arguments after them:
    (argv, environment)."""
    def setup(run: Run) -> tuple[list[str], dict[str, str]]:
        test = quiet_run(name, run.prompt)
        test = QuietRun([*test.args, *extra], test.env, test.own_config)
        write_own_config(run.home, test)
        made = launch.AGENTS[name].setup(launch.AgentTarget(run.proxy_url, KEY, run.model), test.args, secure_scratch(),
                                         str(installed(name, name)))
        for path, text in made.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return made.argv, {**made.env, **test.env}
    return setup


def aider_ollama_setup(run: Run) -> tuple[list[str], dict[str, str]]:
    """Aider as an Ollama user points it at an Ollama server (the proxy's Ollama door): `--model ollama_chat/<name>`
    and OLLAMA_API_BASE (litellm's Ollama chat client: /api/show, then /api/chat, NDJSON), the key as OLLAMA_API_KEY
    (litellm sends it as a Bearer token)."""
    test = quiet_run("aider", run.prompt)
    write_own_config(run.home, test)
    argv = [str(installed("aider", "aider")), "--model", f"ollama_chat/{run.model}", "--no-show-model-warnings",
            *test.args]
    return argv, {"OLLAMA_API_BASE": run.proxy_url, "OLLAMA_API_KEY": KEY, **test.env}


AGENTS = {a.name: a for a in (
    Agent("claude", "messages", "tool", product_setup("claude")),
    Agent("codex", "responses", "tool", product_setup("codex")),
    Agent("opencode", "chat", "tool", product_setup("opencode")),
    Agent("aider", "chat", "user", product_setup("aider")),
    Agent("aider-ollama", "ollama", "user", aider_ollama_setup),
    Agent("gemini", "google", "tool", product_setup("gemini")),
)}
