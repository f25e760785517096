"""Each real coding agent that speaks MCP, started by `cot-proxy run` (here `python cot_proxy.py run -- AGENT`),
calls an MCP tool through the proxy: the proxy run starts serves the fake stdio MCP server
(tests/fakes/fake_mcp_server.py) at /mcp, run gives the agent that endpoint with the run's key (the server
`cot_proxy`, argoproxy/launch/agents.py), and the scripted model asks for the fake's echo tool with a word of
its own; the agent calls it through the proxy, sends the result back, and the model quotes it. The user's own
configuration is untouched."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.agents.agents import _bounded, _isolated, installed, quiet_run, secure_scratch, write_own_config
from tests.agents.scripted import Plan, ScriptedUpstream, chat_answer, declared_tools, messages_answer, tool_results
from tests.agents.test_run import TIMEOUT
from tests.proxy_process import ROOT, free_port

pytestmark = pytest.mark.timeout(TIMEOUT + 60)

FAKE = str(Path(__file__).resolve().parents[1] / "fakes" / "fake_mcp_server.py")
SAID = "The tool said {word}."


class EchoThroughMcp(ScriptedUpstream):
    """A model that calls the MCP echo tool the agent declares (Claude Code: mcp__cot_proxy__fake__echo) with a
    word only it knows, then quotes what came back in the tool result."""

    def __init__(self) -> None:
        super().__init__()
        self.word = f"echo-{secrets.token_hex(16)}"

    def decide(self, body: dict[str, Any]) -> Plan:
        if any(self.word in result for result in tool_results(body)):
            return SAID.format(word=self.word), None
        echo = [name for name, _ in declared_tools(body) if name.endswith("fake__echo")]
        return (None, (echo[0], {"text": self.word})) if echo else ("Nothing to do here.", None)

    def default_answer(self, method: str, path: str, body: bytes):  # type: ignore[no-untyped-def]
        if method == "POST" and path.endswith("/chat/completions"):
            return chat_answer(json.loads(body or b"{}"), self.decide)
        if method == "POST" and path.endswith("/messages"):
            return messages_answer(json.loads(body or b"{}"), self.decide)
        return super().default_answer(method, path, body)


# What each agent needs to run an MCP tool without asking (non-interactive runs have no one to ask).
UNASKED = {"claude": ["--allowedTools", "mcp__cot_proxy"], "codex": ["--dangerously-bypass-approvals-and-sandbox"],
           "gemini": ["--yolo"], "opencode": []}


@pytest.mark.parametrize("agent_name", list(UNASKED))
def test_an_agent_started_by_run_calls_a_tool_through_the_proxys_mcp(agent_name, project, tmp_path):
    workdir, _ = project
    port = free_port()
    with EchoThroughMcp() as upstream:
        settings = {"BACKEND": "openai", "TARGET_BASE_URL": upstream.base_url, "PORT": str(port),
                    "HOST": "127.0.0.1", "WORKERS": "1",
                    "MCP_SERVERS": json.dumps({"fake": {"command": sys.executable, "args": [FAKE]}})}
        result = run_agent(agent_name, "Use the echo tool, then tell me what it said.", tmp_path / "home", workdir,
                           settings)
        report = (f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n"
                  f"{result.stderr[-3000:]}\n--- tools declared\n"
            f"{[[name for name, _ in declared_tools(body)] for body in upstream.bodies()]}")
        assert result.returncode == 0, report
        assert f"MCP servers: http://127.0.0.1:{port}/mcp as cot_proxy" in result.stderr, report
        assert SAID.format(word=upstream.word) in result.stdout, report
        # The word came back inside the agent's tool result: the call went through the proxy to the fake server.
        assert any(upstream.word in text for body in upstream.bodies() for text in tool_results(body)), report
    # The user's own configuration (and Claude Code's state file) holds nothing of run's server.
    for relative in [*quiet_run(agent_name, "").own_config, ".claude.json"]:
        own = tmp_path / "home" / relative
        assert not own.exists() or "cot_proxy" not in own.read_text(), relative


def run_agent(name: str, prompt: str, home: Path, workdir: Path, proxy_settings: dict[str, str]):
    """`cot-proxy run -- AGENT` as tests/agents/test_run.py runs it, the MCP server's tools allowed."""
    program = installed(name, name)
    test = quiet_run(name, prompt)
    write_own_config(home, test)
    # ENABLE_TOOL_SEARCH=false: Claude Code declares the MCP tools themselves, not a search tool that finds them
    env = _isolated(home, {**test.env, **proxy_settings, "XDG_RUNTIME_DIR": str(secure_scratch()),
                           "ENABLE_TOOL_SEARCH": "false"})
    env["PATH"] = f"{program.parent}{os.pathsep}{env['PATH']}"
    argv = [sys.executable, str(ROOT / "cot_proxy.py"), "run", "--", name, *UNASKED[name], *test.args]
    return _bounded(argv, env, workdir, TIMEOUT)
