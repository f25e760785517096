"""The Responses API over a WebSocket through the real app under Gunicorn: the official `openai` SDK's
`responses.connect()` runs a three-turn session chained by previous_response_id (gevent worker, FAST_PATH on and
off); 426 at once under the sync worker; the gthread worker's cap; the close codes (idle and lifetime limits:
1000, the worker restarting: 1001, a revoked key: 1008)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from argoproxy.launch.agents import AGENTS, AgentTarget
from argoproxy.launch.websocket_probe import serves_websocket
from tests.fakes.fake_openai import FakeOpenAI, Stream, chat_chunks
from tests.integration.test_scale_out import running_nginx
from tests.polling import poll
from tests.proxy_process import ROOT, clean_environ, running_proxy

CREATE = {"type": "response.create", "model": "gpt-4o", "input": "hi", "store": False}


def ws_url(proxy) -> str:
    return f"ws://127.0.0.1:{proxy.port}/v1/responses"


def until_last(ws) -> list[dict]:
    """The events of one response, to its last one."""
    got = []
    while True:
        event = json.loads(ws.recv(timeout=20))
        got.append(event)
        if event["type"] in ("response.completed", "response.failed", "response.incomplete", "error"):
            return got


def chat_calls(fake) -> list[dict]:
    return [r.json() for r in fake.received if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_the_sdk_runs_three_turns_over_one_websocket(fast_path):
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, FAST_PATH=fast_path) as proxy:
        for text in ("One.", "Two.", "Three."):
            fake.add(Stream(chat_chunks([text])))
        client = openai.OpenAI(base_url=proxy.base_url, api_key="sk-client", max_retries=0)
        previous, said = None, []
        with client.responses.connect() as conn:
            for turn in ("first", "second", "third"):
                conn.response.create(model="gpt-4o", input=turn, store=False, previous_response_id=previous)
                deltas = []
                for event in conn:
                    if event.type == "response.output_text.delta":
                        deltas.append(event.delta)
                    if event.type in ("response.completed", "error"):
                        break
                assert event.type == "response.completed", event
                said.append("".join(deltas))
                previous = event.response.id
        assert said == ["One.", "Two.", "Three."]
        assert serves_websocket(proxy.url, "sk-client")  # so `cot-proxy run -- codex` turns Codex's WebSocket on
        calls = chat_calls(fake)
        assert len(calls) == 3 and all(call["stream"] for call in calls)
        assert [(m["role"], m["content"]) for m in calls[2]["messages"]] == [
            ("user", "first"), ("assistant", "One."), ("user", "second"), ("assistant", "Two."), ("user", "third")]


def test_the_shipped_nginx_file_passes_the_upgrade():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as proxy, \
            running_nginx([proxy.port]) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="sk-client", max_retries=0)
        with client.responses.connect() as conn:
            conn.response.create(model="gpt-4o", input="hi", store=False)
            for event in conn:
                if event.type in ("response.completed", "error"):
                    break
        assert event.type == "response.completed" and len(chat_calls(fake)) == 1


def raw_upgrade(port: int, headers: str = "") -> bytes:
    """The head of the proxy's answer to a WebSocket handshake on /v1/responses."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                  headers.encode() + b"\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            more = s.recv(4096)
            if not more:
                break
            data += more
        return data


def test_the_sync_worker_answers_the_upgrade_426_at_once():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, WORKER_CLASS="sync") as proxy:
        start = time.monotonic()
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(proxy), open_timeout=10)
        assert time.monotonic() - start < 5
        answer = refused.value.response
        assert answer.status_code == 426
        assert json.loads(answer.body)["error"]["code"] == "websocket_not_served"
        assert fake.received == []
        assert not serves_websocket(proxy.url, "sk-client")  # Codex is told to speak HTTP here


def test_codex_is_told_of_the_websocket_only_where_it_is_served(tmp_path):
    codex = AGENTS["codex"]
    told = codex.setup(AgentTarget("http://127.0.0.1:5000", "k", "gpt-5", websocket=True), [], tmp_path).argv
    untold = codex.setup(AgentTarget("http://127.0.0.1:5000", "k", "gpt-5"), [], tmp_path).argv
    assert any("supports_websockets = true" in arg for arg in told)
    assert not any("supports_websockets" in arg for arg in untold)


def test_a_gthread_worker_holds_its_stated_number_of_websockets():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, WORKER_CLASS="gthread", THREADS="4",
                                             WEBSOCKET_THREADS="1") as proxy:
        with connect(ws_url(proxy), open_timeout=10) as ws:
            ws.send(json.dumps(CREATE))
            assert until_last(ws)[-1]["type"] == "response.completed"
            with pytest.raises(InvalidStatus) as refused:
                connect(ws_url(proxy), open_timeout=10)
            assert refused.value.response.status_code == 426
            assert b"WEBSOCKET_THREADS" in refused.value.response.body
        # its place given back once it closed
        assert poll(lambda: b" 101 " in raw_upgrade(proxy.port).split(b"\r\n")[0], timeout=10)


def drained(ws) -> tuple[list[dict], int]:
    """What the server still sends, to its close, and the close code it sent."""
    said = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            said.append(json.loads(ws.recv(timeout=20)))
    return said, closed.value.rcvd.code if closed.value.rcvd is not None else 1006


def close_code(ws) -> int:
    return drained(ws)[1]


def test_the_idle_and_lifetime_limits_close_normally_and_a_restart_with_1001():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, WEBSOCKET_IDLE="1",
                                             WEBSOCKET_LIFETIME="3") as proxy:
        with connect(ws_url(proxy), open_timeout=10) as ws:  # idle: closed, nothing said
            assert close_code(ws) == 1000
        with connect(ws_url(proxy), open_timeout=10) as ws:  # busy, but not for longer than its lifetime
            deadline, said = time.monotonic() + 20, []
            try:
                while time.monotonic() < deadline:
                    ws.send(json.dumps(CREATE))
                    said += until_last(ws)
            except ConnectionClosed:  # (the limit's error may come before the next send, or answer it)
                pass
            rest, code = drained(ws)
            said += rest
            assert said[-1]["error"]["code"] == "websocket_connection_limit_reached" and code == 1000
        with connect(ws_url(proxy), open_timeout=10) as ws:
            ws.send(json.dumps(CREATE))
            assert until_last(ws)[-1]["type"] == "response.completed"
            os.kill(proxy.proc.pid, signal.SIGHUP)  # the workers are replaced: clients reconnect
            assert close_code(ws) == 1001


def keys(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "keys", "--keys-db", str(db), *args],
                          env=clean_environ(), capture_output=True, text=True, timeout=60)


def test_a_key_revoked_mid_session_closes_it_with_1008(tmp_path):
    db = tmp_path / "keys.db"
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET="admin-key", KEYS_DB=str(db)) as proxy:
        with pytest.raises(InvalidStatus) as refused:  # no key: the door's 401, no upgrade
            connect(ws_url(proxy), open_timeout=10)
        assert refused.value.response.status_code == 401
        made = keys(db, "create", "alice")
        key = made.stdout.strip()
        assert made.returncode == 0 and key.startswith("sk-proxy-"), made.stderr
        with connect(ws_url(proxy), open_timeout=10, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            ws.send(json.dumps(CREATE))
            assert until_last(ws)[-1]["type"] == "response.completed"
            assert keys(db, "revoke", "alice").returncode == 0

            def refused_now() -> dict | None:
                ws.send(json.dumps(CREATE))
                last = until_last(ws)[-1]
                return last if last["type"] == "error" else None
            error = poll(refused_now, timeout=10)
            assert error is not None and error["status"] == 401
            assert close_code(ws) == 1008
        assert "sk-proxy-" not in proxy.read_log()
