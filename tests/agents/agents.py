"""The coding agents of tests/agents: where tools/build_agents.sh installed each one (agents.txt), how its users
point it at the proxy (the settings the README's "AI coding tools" section shows), and one bounded,
isolated, non-interactive run.

Isolation: each run gets its own HOME (and XDG directories under it) holding only the configuration written
here, an environment built from nothing but PATH, and every proxy variable aimed at a closed loopback port
(loopback itself excepted), so whatever an agent tries beyond the proxy (updates, telemetry, model lists)
fails at once and no run reaches the internet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

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
    front: str  # the proxy's door it speaks: chat, responses, messages, google
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


# --------------------------------------------------------------------------- each agent, as its users set it up


def claude(run: Run) -> tuple[list[str], dict[str, str]]:
    env = {"ANTHROPIC_BASE_URL": run.proxy_url, "ANTHROPIC_AUTH_TOKEN": KEY, "ANTHROPIC_MODEL": run.model,
           "ANTHROPIC_DEFAULT_HAIKU_MODEL": run.model,
           "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",  # a per-request first system line defeats prompt caching
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1"}
    return [str(installed("claude", "claude")), "-p", run.prompt], env


def codex(run: Run) -> tuple[list[str], dict[str, str]]:
    config = run.home / ".codex" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'''model = "{run.model}"
model_provider = "cot_proxy"
check_for_update_on_startup = false

[model_providers.cot_proxy]
name = "cot_proxy"
base_url = "{run.proxy_url}/v1"
env_key = "COT_PROXY_API_KEY"
wire_api = "responses"

[analytics]
enabled = false
''')
    argv = [str(installed("codex", "codex")), "exec", "--skip-git-repo-check", run.prompt]
    return argv, {"COT_PROXY_API_KEY": KEY}


def opencode(run: Run) -> tuple[list[str], dict[str, str]]:
    config = run.home / ".config" / "opencode" / "opencode.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({
        "$schema": "https://opencode.ai/config.json",
        "provider": {"cot_proxy": {
            "npm": "@ai-sdk/openai-compatible", "name": "cot_proxy",
            "options": {"baseURL": f"{run.proxy_url}/v1", "apiKey": "{env:COT_PROXY_API_KEY}"},
            "models": {run.model: {"name": run.model}}}},
        "model": f"cot_proxy/{run.model}", "small_model": f"cot_proxy/{run.model}",
        "autoupdate": False, "share": "disabled"}, indent=2))
    env = {"COT_PROXY_API_KEY": KEY, "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1",
           "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
           "OPENCODE_DISABLE_SHARE": "1", "OPENCODE_DISABLE_CLAUDE_CODE": "1"}
    return [str(installed("opencode", "opencode")), "run", run.prompt], env


def aider(run: Run) -> tuple[list[str], dict[str, str]]:
    env = {"OPENAI_API_BASE": f"{run.proxy_url}/v1", "OPENAI_API_KEY": KEY,
           "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm fetches a price list from GitHub otherwise
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}
    argv = [str(installed("aider", "aider")), "--model", f"openai/{run.model}", "--message", run.prompt,
            "--yes-always", "--no-check-update", "--no-show-release-notes", "--analytics-disable",
            "--no-show-model-warnings", "--no-auto-commits", "--no-pretty", "--no-fancy-input"]
    return argv, env


def gemini(run: Run) -> tuple[list[str], dict[str, str]]:
    settings = run.home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}},
                                    "privacy": {"usageStatisticsEnabled": False},
                                    "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
                                    "telemetry": {"enabled": False}}))
    env = {"GOOGLE_GEMINI_BASE_URL": run.proxy_url, "GEMINI_API_KEY": KEY, "GEMINI_CLI_TRUST_WORKSPACE": "true"}
    return [str(installed("gemini", "gemini")), "-m", run.model, "-p", run.prompt], env


AGENTS = {a.name: a for a in (
    Agent("claude", "messages", "tool", claude),
    Agent("codex", "responses", "tool", codex),
    Agent("opencode", "chat", "tool", opencode),
    Agent("aider", "chat", "user", aider),
    Agent("gemini", "google", "tool", gemini),
)}
