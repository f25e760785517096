"""`cot-proxy run -- AGENT ...` (here `python cot_proxy.py run -- ...`) with each real agent against the scripted
model (tests/agents/scripted.py): with no proxy listening on the configured port, run starts one, points the
agent at it (the product's set-up, argoproxy/launch/agents.py), and the agent completes a tool round trip;
when the agent exits, the proxy is gone. With a proxy already listening, run uses it and leaves it running.
The agent gets nothing but the test's quiet options and a user's own config in its HOME (tests/agents/agents.py)."""

from __future__ import annotations

import csv
import io
import os
import socket
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from tests.agents.agents import AGENTS, KEY, _bounded, _isolated, installed, quiet_run, secure_scratch, \
    write_own_config
from tests.agents.scripted import QUOTE, ScriptedUpstream, tool_results, user_texts
from tests.agents.test_scripted import PENDING
from tests.keys_cli import run_keys
from tests.proxy_process import ROOT, free_port, running_proxy

from argoproxy.launch.agents import AGENTS as LAUNCHED  # the agents `run` knows (the matrix has variants too)

TIMEOUT = 240
pytestmark = pytest.mark.timeout(TIMEOUT + 60)


def _run_command(agent_name: str, prompt: str, home: Path, workdir: Path, proxy_settings: dict[str, str],
                 model: str | None = None):
    program = installed(agent_name, agent_name)
    test = quiet_run(agent_name, prompt)
    write_own_config(home, test)
    env = _isolated(home, {**test.env, **proxy_settings, "XDG_RUNTIME_DIR": str(secure_scratch())})
    env["PATH"] = f"{program.parent}{os.pathsep}{env['PATH']}"
    if os.environ.get("FAST_PATH"):
        env["FAST_PATH"] = os.environ["FAST_PATH"]
    ours = ["--model", model] if model else []
    argv = [sys.executable, str(ROOT / "cot_proxy.py"), "run", *ours, "--", agent_name, *test.args]
    return _bounded(argv, env, workdir, TIMEOUT)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _check_round_trip(agent_name, result, upstream, token, log=""):
    report = (f"cot-proxy run -- {agent_name}: exit {result.returncode} after {result.seconds:.1f} s\n"
              f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}\n{log}")
    assert result.returncode == 0, report
    assert QUOTE.format(token=token) in result.stdout, report
    results = tool_results if AGENTS[agent_name].tool_result_role == "tool" else user_texts
    assert any(token in text for body in upstream.bodies() for text in results(body)), report
    assert KEY not in result.stderr
    return report


@pytest.mark.parametrize("agent_name", list(LAUNCHED))
def test_run_starts_the_proxy_and_the_agent_round_trips(agent_name, project, tmp_path):
    if agent_name in PENDING:
        pytest.skip(PENDING[agent_name])
    workdir, token = project
    port = free_port()
    with ScriptedUpstream() as upstream:
        settings = {"BACKEND": "openai", "TARGET_BASE_URL": upstream.base_url, "PORT": str(port),
                    "HOST": "127.0.0.1", "WORKERS": "1"}
        result = _run_command(agent_name, f"Read the file {workdir / 'note.txt'} and tell me what it says.",
                              tmp_path / "home", workdir, settings)
        report = _check_round_trip(agent_name, result, upstream, token)
        assert f"starting the proxy on http://127.0.0.1:{port}" in result.stderr, report
        # The model the backend lists, whatever the agent's own default would have been.
        assert {b.get("model") for b in upstream.bodies()} == {"fake-model"}, report
        assert not _listening(port), "the proxy run started outlived the agent"
    # The user's own config holds nothing of the proxy's (Gemini CLI re-indents its settings file itself).
    for relative in quiet_run(agent_name, "").own_config:
        text = (tmp_path / "home" / relative).read_text()
        assert "cot_proxy" not in text and "127.0.0.1" not in text and "selectedType" not in text, text


@pytest.mark.parametrize("agent_name", ["claude", "codex"])
def test_run_with_auth_on_gives_the_agent_a_key_of_its_own(agent_name, project, tmp_path):
    """Auth on, the user's admin key and upstream key in their shell: the real agent completes its round trip
    with the key made for the run (never the admin key), the upstream gets the user's upstream key, and the
    run's key is revoked in the user's store, not written into the project."""
    workdir, token = project
    port = free_port()
    with ScriptedUpstream() as upstream:
        settings = {"BACKEND": "openai", "TARGET_BASE_URL": upstream.base_url, "PORT": str(port), "HOST": "127.0.0.1",
                    "WORKERS": "1", "ENABLE_AUTH": "true", "API_KEY_SECRET": "sk-proxy-admin-of-the-test-0123456789",
                    "OPENAI_API_KEY": "sk-upstream-of-the-test-0123456789"}
        result = _run_command(agent_name, f"Read the file {workdir / 'note.txt'} and tell me what it says.",
                              tmp_path / "home", workdir, settings)
        report = _check_round_trip(agent_name, result, upstream, token)
        sent = {r.headers.get("Authorization") for r in upstream.received if r.method == "POST"}
    assert sent == {"Bearer sk-upstream-of-the-test-0123456789"}, report
    assert "key: a key for this run (run-" in result.stderr, report
    assert not (workdir / "keys.db").exists()
    with sqlite3.connect(tmp_path / "home" / ".config" / "argoproxy" / "keys.db") as db:
        (models, revoked), = db.execute("SELECT models, revoked FROM keys").fetchall()
    assert models == "fake-model" and revoked > 0


def test_a_projects_env_does_not_send_aider_elsewhere(project, tmp_path):
    """Aider loads the project's .env over its environment, and litellm reads OPENAI_BASE_URL before
    OPENAI_API_BASE: a project whose .env names another server still has its Aider talk to the proxy (the env
    file run gives Aider is loaded last)."""
    installed("aider", "aider")
    workdir, token = project
    port = free_port()
    with ScriptedUpstream() as upstream, ScriptedUpstream() as elsewhere:
        (workdir / ".env").write_text(f"OPENAI_BASE_URL={elsewhere.base_url}\nOPENAI_API_BASE={elsewhere.base_url}\n"
                                      "OPENAI_API_KEY=sk-the-projects-own-key\n")
        settings = {"BACKEND": "openai", "TARGET_BASE_URL": upstream.base_url, "PORT": str(port), "HOST": "127.0.0.1",
                    "WORKERS": "1"}
        result = _run_command("aider", f"Read the file {workdir / 'note.txt'} and tell me what it says.",
                              tmp_path / "home", workdir, settings)
        assert elsewhere.received == [], "the project's .env sent Aider elsewhere"
        _check_round_trip("aider", result, upstream, token)


def test_run_uses_a_proxy_already_listening_and_leaves_it(openai_backend, project, tmp_path):
    installed("claude", "claude")
    workdir, token = project
    openai_backend.reset()
    port = openai_backend.proxy.port
    result = _run_command("claude", f"Read the file {workdir / 'note.txt'} and tell me what it says.",
                          tmp_path / "home", workdir,
                          {"BACKEND": "openai", "PORT": str(port), "HOST": "127.0.0.1",
                           "TARGET_BASE_URL": "http://127.0.0.1:9/v1"}, model="claude-sonnet-4-6")

    class Upstream:
        bodies = staticmethod(openai_backend.bodies)
    report = _check_round_trip("claude", result, Upstream, token, openai_backend.proxy.read_log()[-2000:])
    assert "starting the proxy" not in result.stderr, report
    assert _listening(port)


def test_agents_prints_the_set_up_of_each_agent_on_path(openai_backend, tmp_path):
    """`cot-proxy agents`: every agent found on PATH, with the exact set-up run would give it (the model the
    proxy lists, the temporary files), and never a key."""
    programs = {name: installed(name, name) for name in LAUNCHED}
    env = _isolated(tmp_path / "home", {"BACKEND": "openai", "HOST": "127.0.0.1",
                                        "PORT": str(openai_backend.proxy.port), "ENABLE_AUTH": "true",
                                        "API_KEY_SECRET": "sk-proxy-secret-of-the-test"})
    env["PATH"] = os.pathsep.join([str(programs["claude"].parent), str(programs["codex"].parent), env["PATH"]])
    result = _bounded([sys.executable, str(ROOT / "cot_proxy.py"), "agents"], env, tmp_path, 60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"proxy: {openai_backend.proxy.url} (listening)" in out
    assert f"claude: Claude Code ({programs['claude']}), speaks /v1/messages" in out
    assert f"ANTHROPIC_BASE_URL={openai_backend.proxy.url}\n" in out and "ANTHROPIC_MODEL=fake-model" in out
    assert f'base_url = "{openai_backend.proxy.url}/v1"' in out and "model=\"fake-model\"" in out
    found = out.split("\nnot on PATH")[0]  # the agents found; the others are only named with how to install them
    assert "gemini:" not in found and "opencode:" not in found and "aider:" not in found
    assert "sk-proxy-secret-of-the-test" not in out + result.stderr
    assert "KEY: a key made for each run, allowed its model, revoked when the agent exits" in out
    assert "\nnot on PATH (install, then `python cot_proxy.py run -- AGENT`):\n  gemini: npm install -g @google/gemini-cli\n" \
        "  opencode: npm install -g opencode-ai\n  aider: pip install aider-chat\n" in out


@pytest.mark.parametrize("agent_name", list(LAUNCHED))
def test_run_says_how_to_install_an_agent_not_on_path(agent_name, tmp_path):
    """An agent missing from PATH: run stops with one line naming the command that installs it."""
    env = _isolated(tmp_path / "home", {})
    result = _bounded([sys.executable, str(ROOT / "cot_proxy.py"), "run", "--", agent_name], env, tmp_path, 60)
    assert result.returncode == 2
    assert result.stderr == (f"cot_proxy.py run: {agent_name} is not on PATH: install it with "
                             f"`{LAUNCHED[agent_name].install}` (`python cot_proxy.py agents` lists the agents found)\n")


@pytest.mark.parametrize("command, typed", [(["cot_proxy.py"], "python cot_proxy.py"),
                                            (["run_app.sh"], str(ROOT / "run_app.sh"))])
def test_agents_says_how_to_install_those_not_on_path(tmp_path, command, typed):
    """The lines name the command as it can be typed again from here: run_app.sh's user has no `cot-proxy` (it
    said that), and started from another directory, `./run_app.sh` is not there."""
    env = _isolated(tmp_path / "home", {"PORT": str(free_port()), "COT_PROXY_VENV": sys.prefix})
    argv = [sys.executable, str(ROOT / command[0])] if command[0].endswith(".py") else [str(ROOT / command[0])]
    result = _bounded([*argv, "agents"], env, tmp_path, 60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"proxy: http://127.0.0.1:{env['PORT']} (not running: `{typed} run` starts it)")
    assert result.stdout.endswith(f"\nnot on PATH (install, then `{typed} run -- AGENT`):\n" + "".join(
        f"  {name}: {agent.install}\n" for name, agent in LAUNCHED.items())), result.stdout


def test_a_claude_code_run_is_one_session_with_its_cost_in_keys_usage_and_the_admin_api(project, tmp_path):
    """Claude Code through `cot-proxy run` (auth on, a proxy already serving the user's store): the run is one
    agent session whose requests, tokens and cost are its usage rows' sums, in `keys usage --sessions` and in
    /admin/v1/usage."""
    workdir, token = project
    db, admin = tmp_path / "keys.db", "sk-proxy-admin-of-the-test-0123456789"
    prices = '{"models": {"fake-model": {"input_mtok": 3, "output_mtok": 15}}}'
    common = {"BACKEND": "openai", "ENABLE_AUTH": "true", "API_KEY_SECRET": admin, "KEYS_DB": str(db),
              "PRICES": prices}
    with ScriptedUpstream() as upstream, running_proxy(TARGET_BASE_URL=upstream.base_url, WORKERS="1",
                                                       **common) as proxy:
        result = _run_command("claude", f"Read the file {workdir / 'note.txt'} and tell me what it says.",
                              tmp_path / "home", workdir, {**common, "PORT": str(proxy.port), "HOST": "127.0.0.1",
                                                           "TARGET_BASE_URL": upstream.base_url})
        report = _check_round_trip("claude", result, upstream, token, proxy.read_log()[-2000:])
        sessions = [row for row in csv.DictReader(io.StringIO(run_keys("usage", "--sessions", "--csv",
                                                                       keys_db=db).stdout))]
        assert len(sessions) == 1 and sessions[0]["key"].startswith("run-claude-"), (sessions, report)
        run = sessions[0]
        rows = [r for r in csv.DictReader(io.StringIO(run_keys("usage", "--csv", keys_db=db).stdout))
                if r["key"] == run["key"]]
        summed = {column: sum(int(r[column]) for r in rows) for column in ("requests", "input_tokens", "output_tokens")}
        assert summed["requests"] >= 2 and {c: int(run[c]) for c in summed} == summed, (sessions, rows)
        cost = sum(Decimal(r["cost_usd"]) for r in rows)
        assert cost > 0 and Decimal(run["cost_usd"]) == cost
        assert f"session {run['session']})" in result.stderr, report  # the run said its own session
        answer = requests.get(f"{proxy.url}/admin/v1/usage?group=session",
                              headers={"Authorization": f"Bearer {admin}"}, timeout=10).json()["data"]
        assert [u["session"] for u in answer] == [run["session"]], answer
        assert [(u["requests"], u["input_tokens"], u["output_tokens"], Decimal(str(u["cost_usd"]))) for u in answer] \
            == [(summed["requests"], summed["input_tokens"], summed["output_tokens"], cost)]
