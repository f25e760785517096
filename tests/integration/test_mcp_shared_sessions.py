"""2025-11-25 sessions with REDIS_URL (argoproxy/mcp/sessions.py): opened on one replica, used and ended on
another, kept across a restart, each key's own and bounded; Redis away is a 503 in JSON-RPC's shape. Through
the running app (two replicas under Gunicorn sharing a real Redis), the strict stdio fake as the server."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_mcp_gateway import INIT, JSON_HEADERS, SERVERS
from tests.proxy_process import running_proxy
from tests.redis_server import RedisServer

VERSION = {"MCP-Protocol-Version": "2025-11-25"}


@pytest.fixture()
def redis_url():
    server = RedisServer().start()
    yield server.url
    server.close()


def opened(proxy) -> str:
    r = requests.post(proxy.url + "/mcp", json=INIT, headers=JSON_HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["Mcp-Session-Id"]


def add(proxy, session: str) -> requests.Response:
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "fake__add", "arguments": {"a": 2, "b": 3}}}
    return requests.post(proxy.url + "/mcp", json=body, timeout=30,
                         headers={**JSON_HEADERS, **VERSION, "Mcp-Session-Id": session})


def test_a_session_opened_on_one_replica_is_used_and_ended_on_another_and_outlives_a_restart(redis_url):
    settings = {"REDIS_URL": redis_url, "MCP_SERVERS": SERVERS}
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, **settings) as one:
            kept, ended = opened(one), opened(one)
            with running_proxy(TARGET_BASE_URL=fake.base_url, **settings) as two:
                r = add(two, kept)
                assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "5", r.text
                gone = requests.delete(two.url + "/mcp", headers={**VERSION, "Mcp-Session-Id": ended}, timeout=30)
                assert gone.status_code == 204
                assert add(one, ended).status_code == 404  # ended on the other replica
        with running_proxy(TARGET_BASE_URL=fake.base_url, **settings) as again:  # both replicas restarted
            assert add(again, kept).json()["result"]["content"][0]["text"] == "5"
            assert add(again, "made-up").status_code == 404


def test_redis_away_is_a_503_in_json_rpcs_shape(redis_url):
    server_url = redis_url
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, REDIS_URL=server_url,
                                             REDIS_OUTAGE="local", MCP_SERVERS=SERVERS) as proxy:
        session = opened(proxy)
        port = int(server_url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:  # Redis stops
            conn.sendall(b"SHUTDOWN NOSAVE\r\n")
            conn.recv(64)
        r = add(proxy, session)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == -32001 and "Redis" in r.json()["error"]["message"]
        assert server_url not in r.text and server_url not in proxy.read_log()
        assert "Traceback" not in proxy.read_log()


def test_the_shared_store_keeps_each_keys_sessions_apart_and_bounded(redis_url, monkeypatch):
    from argoproxy.mcp import sessions
    from argoproxy.teamkeys.redis_store import connect
    monkeypatch.setattr(sessions, "MAX_PER_OWNER", 3)
    store = sessions.SharedSessions(connect(redis_url))
    mine = [store.new("key:alice", "2025-11-25") for _ in range(3)]
    assert store.version(mine[0], "key:alice") == "2025-11-25"
    assert store.version(mine[0], "key:bob") is None and not store.end(mine[0], "key:bob")
    store.version(mine[0], "key:alice")  # used last: its least recently used sibling goes first
    newest = store.new("key:alice", "2025-06-18")
    assert store.version(mine[1], "key:alice") is None  # the oldest by use made room
    assert [store.version(s, "key:alice") for s in (mine[0], mine[2], newest)] == ["2025-11-25", "2025-11-25",
                                                                                 "2025-06-18"]
    assert store.end(newest, "key:alice") and store.version(newest, "key:alice") is None
    assert json.loads(connect(redis_url).get(sessions.PREFIX + mine[0]))["owner"] == "key:alice"


def test_a_get_stream_ends_once_its_session_is_gone_from_redis(redis_url):
    """A session that expires in Redis, or is pushed out by its key's newer ones, ends its GET stream (the
    supervisor, which ends the streams of the sessions it drops, knows nothing of Redis's)."""
    from argoproxy.mcp.sessions import PREFIX
    from argoproxy.teamkeys.redis_store import connect
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, REDIS_URL=redis_url,
                                             MCP_SERVERS=SERVERS) as proxy:
        gone, kept = opened(proxy), opened(proxy)
        streams = [requests.get(proxy.url + "/mcp", stream=True, timeout=30,
                                headers={"Accept": "text/event-stream", **VERSION, "Mcp-Session-Id": s})
                   for s in (gone, kept)]
        assert [r.status_code for r in streams] == [200, 200]
        chunks = [r.raw.stream(64, decode_content=False) for r in streams]
        assert [next(c) for c in chunks] == [b": keep-alive\n\n"] * 2  # both open
        connect(redis_url).delete(PREFIX + gone)  # as Redis expires it
        assert ended_within(chunks[0], 25)  # the next keep-alive's check ends it (10 s at most)
        assert next(chunks[1]) == b": keep-alive\n\n"  # the other session's stream goes on
        for r in streams:
            r.close()
        assert "is gone from the shared store: its stream ended" in proxy.read_log()


def ended_within(chunks, seconds: float) -> bool:
    """Does the stream end before a chunk arrives past `seconds`? (Keep-alives come every 10 s.)"""
    deadline = time.monotonic() + seconds
    return all(time.monotonic() < deadline for _ in chunks)
