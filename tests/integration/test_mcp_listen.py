"""What the servers send unasked (list changes, resource updates, log messages) through the running app
(Gunicorn, two workers, auth on, the SQLite key store), in front of a stdio server and a remote one that send
them when a tool is called (tests/fakes/fake_mcp_notices.py: a plain stdio loop, and the official SDK's
MCPServer over Streamable HTTP), with the official Python SDK as the client: a 2025-11-25 session's GET stream
(its message_handler and logging_callback), 2026-07-28's subscriptions/listen (Client.listen); and the GET
stream's refusals: no session, another key's session, a wrong Accept, too many streams; a stream ended by a
second GET, by its session's DELETE and by its key's revocation."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.integration.test_team_keys import create, keys
from tests.polling import poll
from tests.proxy_process import free_port, running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")
httpx2 = pytest.importorskip("httpx2")

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore:The logging capability is deprecated")]

FAKE = str(Path(__file__).resolve().parents[1] / "fakes" / "fake_mcp_notices.py")
ADMIN = "admin-key-for-mcp-listen-tests"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MAX_PER_KEY = 16  # argoproxy/mcp/notices.py's MAX_PER_OWNER


@pytest.fixture(scope="module")
def remote_fake():
    port = free_port()
    process = subprocess.Popen([sys.executable, FAKE, str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        assert poll(lambda: reachable(port), timeout=30), "the remote fake did not start"
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


def reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def proxy(module_fake, remote_fake, tmp_path_factory):
    db = tmp_path_factory.mktemp("mcp_listen") / "keys.db"
    servers = {"notes": {"command": sys.executable, "args": [FAKE]}, "remote": {"url": remote_fake}}
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=json.dumps(servers)) as p:
        assert poll(lambda: p.read_log().count(": ready") >= 2, timeout=30), p.read_log()[-2000:]
        yield p, db


def headers(key, sid=None, accept="application/json, text/event-stream"):
    return {"Content-Type": "application/json", "Accept": accept, "Authorization": f"Bearer {key}",
            **({"Mcp-Session-Id": sid} if sid else {})}


def opened(p, key, path="/mcp"):
    r = requests.post(p.url + path, json=INIT, headers=headers(key), timeout=10)
    assert r.status_code == 200, r.text
    return r.headers["Mcp-Session-Id"]


def post(p, key, sid, method, params, path="/mcp", id=2):
    r = requests.post(p.url + path, json={"jsonrpc": "2.0", "id": id, "method": method, "params": params},
                      headers=headers(key, sid), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


class Stream:
    """A GET stream read on a thread: its messages, and when it ended."""

    def __init__(self, p, key, sid, path="/mcp"):
        self.messages: list[dict] = []
        self.ended: float | None = None
        self.broken: Exception | None = None  # it ended abruptly (no chunked stream's end)
        self.response = requests.get(p.url + path, headers={**headers(key, sid, "text/event-stream"),
                                                            "Connection": "close"}, stream=True, timeout=(10, 30))
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        try:
            for line in self.response.iter_lines(chunk_size=None):
                if line.startswith(b"data: "):
                    self.messages.append(json.loads(line[6:]))
        except Exception as exc:  # noqa: BLE001 - however it ends (the test closing it too), it ended
            self.broken = exc
        finally:
            self.ended = time.monotonic()

    def close(self):
        try:
            self.response.raw.shutdown()  # the reader's read ends now
        except (RuntimeError, ValueError):  # it ended already
            pass


def sdk(url, key, work, **options):
    async def run():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            from mcp.client.streamable_http import streamable_http_client
            async with mcp.Client(streamable_http_client(url, http_client=http), **options) as client:
                return await work(client)
    return asyncio.run(run())


async def until(check, call, timeout=20.0):
    """Call `call` (a tool that sends a notification) until `check` holds: the client's GET stream may open after
    its first calls (a notification sent before it has no one to reach)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await call()
        for _ in range(20):
            if check():
                break
            await asyncio.sleep(0.025)
    return True


@pytest.mark.parametrize("tool", ["notes__announce", "remote__announce"])
def test_the_sdk_hears_a_servers_list_change_and_log_message_on_its_get_stream(proxy, tool):
    p, _ = proxy
    changes, logs = [], []

    async def handler(message):
        if isinstance(message, mcp.types.ToolListChangedNotification):
            changes.append(message)

    async def logged(params):
        logs.append(params)

    async def work(client):
        await client.set_logging_level("info")
        heard = await until(lambda: changes and logs,
                            lambda: client.call_tool(tool, {"text": "hello from " + tool}))
        return heard
    assert sdk(p.url + "/mcp", ADMIN, work, mode="legacy", message_handler=handler, logging_callback=logged)
    server = tool.split("__")[0]
    assert logs[0].data == "hello from " + tool and logs[0].logger == f"{server}/fake", logs
    assert logs[0].level == "info"


def test_a_session_at_one_server_hears_only_that_servers_notifications(proxy):
    p, _ = proxy
    sid = opened(p, ADMIN, "/mcp/notes")
    assert post(p, ADMIN, sid, "logging/setLevel", {"level": "info"}, "/mcp/notes")["result"] == {}
    stream = Stream(p, ADMIN, sid, "/mcp/notes")
    other = opened(p, ADMIN)
    post(p, ADMIN, other, "tools/call", {"name": "remote__announce", "arguments": {"text": "remote's"}})

    def heard():
        post(p, ADMIN, other, "tools/call", {"name": "notes__announce", "arguments": {"text": "notes'"}})
        return poll(lambda: stream.messages, timeout=0.5)
    assert poll(heard, timeout=20)
    first = stream.messages[0]
    assert first["method"] == "notifications/message" and first["params"]["data"] == "notes'", stream.messages
    assert first["params"]["logger"] == "fake"  # at /mcp/notes names are the server's own
    assert all(m["params"]["data"] != "remote's" for m in stream.messages if m["method"] == "notifications/message")


def test_a_resource_update_reaches_the_session_that_subscribed_it_under_the_proxys_uri(proxy):
    p, _ = proxy
    sid, bystander = opened(p, ADMIN), opened(p, ADMIN)
    uri = "mcp-proxy://notes/notes://today"
    assert post(p, ADMIN, sid, "resources/subscribe", {"uri": uri})["result"] == {}
    assert poll(lambda: "fake_mcp_notices: subscribe notes://today" in p.read_log())  # asked of the server
    stream, other = Stream(p, ADMIN, sid), Stream(p, ADMIN, bystander)

    def heard():
        post(p, ADMIN, bystander, "tools/call", {"name": "notes__touch", "arguments": {"uri": "notes://today"}})
        return poll(lambda: [m for m in stream.messages if m["method"] == "notifications/resources/updated"],
                    timeout=0.5)
    updates = poll(heard, timeout=20)
    assert updates and updates[0]["params"]["uri"] == uri
    assert not [m for m in other.messages if m["method"] == "notifications/resources/updated"]  # not subscribed
    assert post(p, ADMIN, sid, "resources/unsubscribe", {"uri": uri})["result"] == {}
    assert poll(lambda: "fake_mcp_notices: unsubscribe notes://today" in p.read_log())  # its last holder left
    unknown = post(p, ADMIN, sid, "resources/subscribe", {"uri": "mcp-proxy://nowhere/x"})
    assert unknown["error"]["code"] == -32602


def test_subscriptions_listen_at_2026_07_28_relays_list_changes_and_resource_updates(proxy):
    p, _ = proxy
    uri = "mcp-proxy://notes/notes://today"

    async def work(client):
        async with client.listen(tools_list_changed=True, resource_subscriptions=[uri, "elsewhere://x"]) as sub:
            assert sub.honored.tools_list_changed and sub.honored.resource_subscriptions == [uri]
            await client.call_tool("notes__touch", {"uri": "notes://today"})
            updated = await asyncio.wait_for(sub.__anext__(), 20)
            seen = set()

            async def changed():
                await client.call_tool("remote__announce", {"text": "x"})
            events = []

            async def next_event():
                try:
                    events.append(await asyncio.wait_for(sub.__anext__(), 0.5))
                except asyncio.TimeoutError:
                    pass
            assert await until(lambda: events, lambda: asyncio.gather(changed(), next_event()))
            seen.add(type(events[0]).__name__)
            return client.protocol_version, updated, seen
    version, updated, seen = sdk(p.url + "/mcp", ADMIN, work)
    assert version == "2026-07-28"
    assert updated == mcp.client.subscriptions.ResourceUpdated(uri=uri)
    assert seen == {"ToolsListChanged"}


def test_a_get_stream_is_refused_without_its_own_session(proxy):
    p, db = proxy
    key = create(db, "listener-a")
    other = create(db, "listener-b")
    sid = opened(p, key)
    get = lambda k, s, accept="text/event-stream": requests.get(  # noqa: E731
        p.url + "/mcp", headers=headers(k, s, accept), timeout=10)
    assert get(key, None).status_code == 400  # no session
    stolen = get(other, sid)
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == -32600  # another key's session
    assert get(key, "no-such-session").status_code == 404
    assert get(key, sid, "application/json").status_code == 406
    assert requests.get(p.url + "/mcp", headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid},
                        timeout=10).status_code == 401
    assert key not in stolen.text and sid not in stolen.text


def test_a_keys_streams_are_bounded_and_a_second_get_replaces_the_first(proxy):
    p, db = proxy
    key, other = create(db, "many-streams"), create(db, "few-streams")
    sessions = [opened(p, key) for _ in range(MAX_PER_KEY)]
    streams = [Stream(p, key, sid) for sid in sessions]
    over = requests.get(p.url + "/mcp", headers=headers(key, opened(p, key), "text/event-stream"), timeout=10)
    assert over.status_code == 429 and over.json()["error"]["code"] == -32029, over.text
    Stream(p, other, opened(p, other))  # another key's is not refused
    again = Stream(p, key, sessions[0])  # the same session again: its first stream ends, the new one stands
    assert poll(lambda: streams[0].ended, timeout=10)
    assert again.ended is None and all(s.ended is None for s in streams[1:])
    for s in [*streams, again]:
        s.close()


def listening_socket(p, key, sid):
    """A client's connection holding a GET stream open (its head read), to be closed as a client leaves."""
    client = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    client.sendall(f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                   f"Authorization: Bearer {key}\r\nMcp-Session-Id: {sid}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += client.recv(4096) or b"(closed)"
        assert not head.endswith(b"(closed)"), head
    assert head.startswith(b"HTTP/1.1 200"), head
    return client


def test_streams_whose_clients_left_give_their_keys_slots_back_at_once(proxy):
    """A client that closed its GET stream held one of its key's MCP_STREAMS_PER_KEY slots until a write to it
    failed, about 25 s (the first write after a close still succeeds): a client that reconnects, as SDKs do, met
    429s meanwhile. The client's socket is watched now."""
    p, db = proxy
    key = create(db, "leaves-often")
    clients = [listening_socket(p, key, opened(p, key)) for _ in range(MAX_PER_KEY)]
    late = opened(p, key)
    assert requests.get(p.url + "/mcp", headers=headers(key, late, "text/event-stream"), timeout=10).status_code == 429
    for client in clients:
        client.close()

    def let_in():
        r = requests.get(p.url + "/mcp", headers={**headers(key, late, "text/event-stream"), "Connection": "close"},
                         stream=True, timeout=10)
        r.close()
        return r.status_code == 200
    assert poll(let_in, timeout=5, interval=0.2), "the departed clients' streams still hold the key's slots"


def test_a_stream_ends_with_its_session_and_with_its_keys_revocation(proxy):
    p, db = proxy
    key = create(db, "soon-gone")
    first, second = opened(p, key), opened(p, key)
    ending, revoked = Stream(p, key, first), Stream(p, key, second)
    assert requests.delete(p.url + "/mcp", headers=headers(key, first), timeout=10).status_code == 204
    assert poll(lambda: ending.ended, timeout=10)
    assert revoked.ended is None and ending.broken is None
    assert keys(db, "revoke", "soon-gone").returncode == 0
    at = time.monotonic()
    assert poll(lambda: revoked.ended, timeout=10)
    assert revoked.ended - at < 2.0 and revoked.broken is None  # ended as a stream ends, not broken off
    assert poll(lambda: "key:soon-gone's key was refused while it listened" in p.read_log())


def test_a_held_stream_does_not_hold_the_proxys_stop(module_fake):
    """SIGTERM (a stop, or the workers of a reload) ends the streams at once, not at graceful_timeout (30 s)."""
    servers = json.dumps({"notes": {"command": sys.executable, "args": [FAKE]}})
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="1", MCP_SERVERS=servers) as p:
        r = requests.post(p.url + "/mcp", json=INIT, headers=headers("-"), timeout=10)
        stream = Stream(p, "-", r.headers["Mcp-Session-Id"])
        started = time.monotonic()
        p.stop(signal.SIGTERM, timeout=20)
        assert p.proc.returncode is not None and time.monotonic() - started < 10, p.log[-2000:]
        assert poll(lambda: stream.ended, timeout=5)


def test_a_revoked_keys_subscription_ends_with_the_keys_error(proxy):
    """2026-07-28: the listen stream of a key revoked meanwhile ends with the call's JSON-RPC error (-32041)."""
    p, db = proxy
    key = create(db, "listening-2026")
    body = {"jsonrpc": "2.0", "id": "l1", "method": "subscriptions/listen",
            "params": {"notifications": {"toolsListChanged": True, "promptsListChanged": False},
                       "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    sent = {**headers(key), "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen",
            "Connection": "close"}
    response = requests.post(p.url + "/mcp", json=body, headers=sent, stream=True, timeout=(10, 30))
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    assert "Mcp-Session-Id" not in response.headers
    lines = response.iter_lines(chunk_size=None)
    first = json.loads(next(line for line in lines if line.startswith(b"data: "))[6:])
    assert first["method"] == "notifications/subscriptions/acknowledged"
    assert first["params"] == {"notifications": {"toolsListChanged": True},
                               "_meta": {"io.modelcontextprotocol/subscriptionId": "l1"}}
    assert keys(db, "revoke", "listening-2026").returncode == 0
    last = json.loads([line for line in lines if line.startswith(b"data: ")][-1][6:])
    assert last["id"] == "l1" and last["error"]["code"] == -32041 and "revoked" in last["error"]["message"]


def test_a_per_session_servers_notifications_reach_only_their_own_sessions_stream(module_fake, tmp_path):
    """Two keys' sessions of a `per_session` server, each listening: what one session's process sends unasked
    reaches that session's stream, never the other's."""
    db = tmp_path / "keys.db"
    alice, bob = create(db, "alice"), create(db, "bob")
    servers = {"mine": {"command": sys.executable, "args": [FAKE], "per_session": True}}
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=json.dumps(servers)) as p:
        streams = {}
        for key in (alice, bob):
            sid = opened(p, key, "/mcp/mine")
            assert post(p, key, sid, "logging/setLevel", {"level": "info"}, "/mcp/mine")["result"] == {}
            streams[key] = (sid, Stream(p, key, sid, "/mcp/mine"))
        try:
            for key, name in ((alice, "alice's"), (bob, "bob's")):
                sid, stream = streams[key]
                assert post(p, key, sid, "tools/call", {"name": "announce", "arguments": {"text": name}},
                            "/mcp/mine")["result"]["content"][0]["text"] == "announced"
                assert poll(lambda: len(stream.messages) >= 2, timeout=20), stream.messages
            for key, name in ((alice, "alice's"), (bob, "bob's")):
                heard = streams[key][1].messages
                assert [m["method"] for m in heard] == ["notifications/message", "notifications/tools/list_changed"]
                assert heard[0]["params"]["data"] == name, heard
        finally:
            for _, stream in streams.values():
                stream.close()
