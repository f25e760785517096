"""A real Codex (from npm, agents.txt's pin) over the Responses API's WebSocket, set up as `cot-proxy run` sets it
up when the proxy serves WebSockets (`supports_websockets` on its provider): the scripted model's tool round trip
completes over one connection, which the proxy's log shows carried every response and Codex's warm-up
(`generate: false`, which reaches no upstream)."""

from __future__ import annotations

import re

import pytest

from argoproxy.launch import agents as launch
from argoproxy.launch.websocket_probe import serves_websocket
from tests.agents.agents import KEY, Run, installed, quiet_run, secure_scratch, write_own_config, _bounded, _isolated
from tests.agents.scripted import QUOTE, ScriptedUpstream, tool_results
from tests.polling import poll
from tests.proxy_process import running_proxy

TIMEOUT = 240
pytestmark = pytest.mark.timeout(TIMEOUT + 60)


def test_codex_completes_a_tool_round_trip_over_the_websocket(project, tmp_path):
    program = installed("codex", "codex")
    workdir, token = project
    with ScriptedUpstream() as up, running_proxy(BACKEND="openai", TARGET_BASE_URL=up.base_url, DEBUG="true") as proxy:
        assert serves_websocket(proxy.url, KEY)  # what `cot-proxy run` asks before it tells Codex
        run = Run(proxy.url, "gpt-5", f"Read the file {workdir / 'note.txt'} and tell me what it says.",
                  tmp_path / "home", workdir)
        test = quiet_run("codex", run.prompt)
        write_own_config(run.home, test)
        made = launch.AGENTS["codex"].setup(launch.AgentTarget(run.proxy_url, KEY, run.model, websocket=True), test.args,
                                            secure_scratch(), str(program))
        result = _bounded(made.argv, _isolated(run.home, {**made.env, **test.env}), workdir, TIMEOUT)
        log = proxy.read_log()
        report = f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{log[-3000:]}"
        assert result.returncode == 0 and QUOTE.format(token=token) in result.stdout, report
        assert any(token in text for body in up.bodies() for text in tool_results(body)), report
        # the probe's connection (no response), then Codex's, which carried every response (it leaves without a close)
        held = lambda: re.findall(r"Responses WebSocket closed: \d+ after (\d+) responses", proxy.read_log())  # noqa
        assert poll(lambda: len(held()) == 2, timeout=10), report
        probe, codex = held()
        assert probe == "0" and int(codex) > len(up.bodies()) >= 2, f"{held()}, {len(up.bodies())} upstream calls"
