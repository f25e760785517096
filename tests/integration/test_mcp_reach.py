"""Who hears what through the MCP gateway, through the running app (Gunicorn, two workers, auth on, team keys):

- a server's requests of its client (sampling) made while it runs a client's prompts/get or resources/read reach
  that client, as during a tool call: at 2025-11-25 on the answer's SSE stream (the official Python SDK's
  client, given its sampling callback), at 2026-07-28 as an input_required answer the client calls again with;
- logging/setLevel reaches a `per_session` server's own process (tests/fakes/fake_mcp_notices.py says the level
  it was set to on stderr), and a 2026-07-28 request's log level (`_meta`) brings the server's log messages
  during its call on the call's SSE stream;
- a key whose tool globs allow none of a server's tools hears nothing of that server on its streams;
- the stream bounds are settings (MCP_STREAMS, MCP_STREAMS_PER_KEY)."""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.integration.test_mcp_client_requests import ASKING, CALLBACKS, raw_session
from tests.integration.test_team_keys import create
from tests.polling import poll
from tests.proxy_process import running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")
httpx2 = pytest.importorskip("httpx2")
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore:The logging capability is deprecated")]

ADMIN = "admin-key-for-mcp-reach-tests"
NOTICES = str(Path(__file__).resolve().parents[1] / "fakes" / "fake_mcp_notices.py")
NEW = "2026-07-28"
PER_KEY = 3  # MCP_STREAMS_PER_KEY here
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture(scope="module")
def proxy(module_fake, tmp_path_factory):
    db = tmp_path_factory.mktemp("mcp_reach") / "keys.db"
    bot = create(db, "bot")
    narrow = create(db, "narrow", "--tools", "asking__*,loud__*")  # may see none of the notes server's tools
    servers = {"asking": {"command": sys.executable, "args": [ASKING], "timeout": 30},
               "notes": {"command": sys.executable, "args": [NOTICES]},
               "loud": {"command": sys.executable, "args": [NOTICES]},
               "mine": {"command": sys.executable, "args": [NOTICES], "per_session": True}}
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=json.dumps(servers), MCP_STREAMS_PER_KEY=str(PER_KEY),
                       MCP_STREAMS="40") as p:
        assert poll(lambda: p.read_log().count(": ready") >= 3, timeout=60), p.read_log()[-2000:]
        p.db = db
        yield p, bot, narrow


def sdk(url, key, work, mode="legacy", **options):
    async def run():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            async with mcp.Client(streamable_http_client(url, http_client=http), mode=mode, **options) as c:
                return await work(c)
    return asyncio.run(run())


def headers(key, session=None, accept="application/json, text/event-stream"):
    return {"Authorization": f"Bearer {key}", "Accept": accept, "Content-Type": "application/json",
            **({"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"} if session else {})}


# ------------------------------------------------------------ a server's requests during prompts and reads
def test_a_prompt_or_reads_server_asking_its_client_reaches_the_sdks_client(proxy):
    p, bot, _ = proxy

    async def work(client):
        prompt = await client.get_prompt("asking__verse", {"topic": "rain"})
        read = await client.read_resource("mcp-proxy://asking/asking://sampled/snow")
        return prompt.messages[0].content.text, read.contents[0].text, str(read.contents[0].uri)

    for mode in ("legacy", "auto"):  # 2025-11-25 (an SSE answer), 2026-07-28 (input_required)
        prompt, read, uri = sdk(p.url + "/mcp", bot, work, mode=mode, **CALLBACKS)
        assert prompt == "verse: the client's rain", mode
        assert read == "read: the client's snow" and uri == "mcp-proxy://asking/asking://sampled/snow", mode


def test_a_reads_request_goes_on_its_own_stream_and_a_client_that_declared_nothing_is_not_asked(proxy):
    p, bot, _ = proxy
    session = raw_session(p, bot)
    body = {"jsonrpc": "2.0", "id": 4, "method": "resources/read",
            "params": {"uri": "asking://sampled/hail"}}
    r = requests.post(p.url + "/mcp/asking", json=body, headers=headers(bot, session), stream=True, timeout=30)
    assert r.headers["Content-Type"].startswith("text/event-stream"), r.text
    events = (json.loads(line[6:]) for line in r.iter_lines() if line.startswith(b"data: "))
    asked = next(events)
    assert asked["method"] == "sampling/createMessage" and asked["id"].startswith("cot_proxy-ask-")
    reply = {"jsonrpc": "2.0", "id": asked["id"], "result": {"role": "assistant", "model": "m",
                                                            "content": {"type": "text", "text": "sleet"}}}
    assert requests.post(p.url + "/mcp/asking", json=reply, headers=headers(bot, session),
                         timeout=30).status_code == 202
    answer = next(events)
    assert answer["id"] == 4 and answer["result"]["contents"][0]["text"] == "read: sleet", answer
    assert answer["result"]["contents"][0]["uri"] == "asking://sampled/hail"  # at /mcp/NAME: its own URI

    silent = raw_session(p, bot, capabilities={})
    r = requests.post(p.url + "/mcp", json={"jsonrpc": "2.0", "id": 5, "method": "prompts/get",
                                            "params": {"name": "asking__verse", "arguments": {"topic": "x"}}},
                      headers=headers(bot, silent), timeout=30)
    text = r.json()["result"]["messages"][0]["content"]["text"]
    assert r.headers["Content-Type"].startswith("application/json") and "did not declare the sampling" in text


# ------------------------------------------------------------ log levels
def post(p, key, session, method, params, path="/mcp"):
    r = requests.post(p.url + path, json={"jsonrpc": "2.0", "id": 2, "method": method, "params": params},
                      headers=headers(key, session), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_set_level_reaches_a_per_session_servers_own_process(proxy):
    p, bot, _ = proxy
    session = post_init(p, bot, "/mcp/mine")
    assert post(p, bot, session, "logging/setLevel", {"level": "critical"}, "/mcp/mine")["result"] == {}
    announced = post(p, bot, session, "tools/call", {"name": "announce", "arguments": {"text": "x"}}, "/mcp/mine")
    assert announced["result"]["content"][0]["text"] == "announced"
    assert "fake_mcp_notices: level critical" in p.read_log()  # told before its first call
    assert post(p, bot, session, "logging/setLevel", {"level": "alert"}, "/mcp/mine")["result"] == {}
    assert "fake_mcp_notices: level alert" in p.read_log()  # its running process told at once
    assert requests.delete(p.url + "/mcp/mine", headers=headers(bot, session), timeout=30).status_code == 204


def post_init(p, key, path="/mcp"):
    r = requests.post(p.url + path, json=INIT, headers=headers(key), timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["Mcp-Session-Id"]


# ------------------------------------------------------------ a session the proxy drops ends its stream
class Stream:
    """A GET stream read on a thread: its messages, and when it ended."""

    def __init__(self, p, key, session, path="/mcp"):
        self.messages: list[dict] = []
        self.ended = threading.Event()
        self.response = requests.get(p.url + path, headers={**headers(key, session, "text/event-stream"),
                                                            "Connection": "close"}, stream=True, timeout=(10, 60))
        assert self.response.status_code == 200, self.response.text
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        try:
            for line in self.response.iter_lines(chunk_size=None):
                if line.startswith(b"data: "):
                    self.messages.append(json.loads(line[6:]))
        except Exception:  # noqa: BLE001 - however it ends (the test closing it too), it ended
            pass
        finally:
            self.ended.set()

    def close(self):
        try:
            self.response.raw.shutdown()
        except (RuntimeError, ValueError):
            pass


def test_a_session_the_proxy_drops_ends_its_get_stream(proxy):
    """A key opening more than its 1000 sessions has its least recently used dropped, as an idle one is: its GET
    stream ends as a DELETE ends it."""
    p, _, _ = proxy
    key = create(p.db, "many-sessions")
    oldest = post_init(p, key)
    stream = Stream(p, key, oldest)
    body, sent = json.dumps(INIT), headers(key)

    def opened(count):  # plain keep-alive connections, a few at once: the proxy's two workers kept busy
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=30)
        for _ in range(count):
            conn.request("POST", "/mcp", body, sent)
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200
        conn.close()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(opened, [250] * 4))
    assert stream.ended.wait(10), "the dropped session's stream ran on"
    assert requests.post(p.url + "/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
                         headers=headers(key, oldest), timeout=30).status_code == 404


def stateless(p, key, method, params, level=None, name=None):
    meta = {"io.modelcontextprotocol/protocolVersion": NEW, "io.modelcontextprotocol/clientCapabilities": {},
            **({"io.modelcontextprotocol/logLevel": level} if level else {})}
    return requests.post(p.url + "/mcp", json={"jsonrpc": "2.0", "id": 7, "method": method,
                                               "params": {**params, "_meta": meta}}, stream=True, timeout=30,
                         headers={**headers(key), "MCP-Protocol-Version": NEW, "Mcp-Method": method,
                                  **({"Mcp-Name": name} if name else {})})


def test_a_2026_requests_log_level_brings_its_calls_log_messages_on_its_stream(proxy):
    p, bot, _ = proxy
    announce = {"name": "notes__announce", "arguments": {"text": "said during the call"}}
    r = stateless(p, bot, "tools/call", announce, "info", "notes__announce")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream"), r.text
    events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith(b"data: ")]
    assert [e.get("method") for e in events] == ["notifications/message", None], events
    assert events[0]["params"]["data"] == "said during the call" and events[0]["params"]["level"] == "info"
    assert events[-1]["result"]["content"][0]["text"] == "announced" and events[-1]["id"] == 7
    assert "fake_mcp_notices: level info" in p.read_log()  # the server was set to the request's level

    above = stateless(p, bot, "tools/call", announce, "error", "notes__announce")
    events = [json.loads(line[6:]) for line in above.iter_lines() if line.startswith(b"data: ")]
    assert [e.get("method") for e in events] == [None], events  # an info message is below the level asked
    none = stateless(p, bot, "tools/call", announce, None, "notes__announce")
    assert none.headers["Content-Type"].startswith("application/json")  # no level: no log message, as before
    bad = stateless(p, bot, "tools/call", announce, "loud", "notes__announce")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, -32602)


# ------------------------------------------------------------ a key's tool globs narrow what its streams hear
def test_a_key_hears_only_the_servers_whose_tools_its_globs_allow(proxy):
    p, bot, narrow = proxy
    streams = {}
    for key in (bot, narrow):
        session = post_init(p, key)
        assert post(p, key, session, "logging/setLevel", {"level": "info"})["result"] == {}
        streams[key] = (session, Stream(p, key, session))
    (mine, everything), narrowed = streams[bot], streams[narrow][1]
    try:
        said = post(p, bot, mine, "tools/call", {"name": "notes__announce", "arguments": {"text": "notes'"}})
        assert said["result"]["content"][0]["text"] == "announced"
        assert poll(lambda: len(everything.messages) >= 2, timeout=20), everything.messages  # its log, its change
        post(p, bot, mine, "tools/call", {"name": "loud__announce", "arguments": {"text": "loud's"}})
        assert poll(lambda: len(narrowed.messages) >= 2, timeout=20), narrowed.messages
        assert poll(lambda: len(everything.messages) >= 4, timeout=20), everything.messages
        assert [m["method"] for m in narrowed.messages] == ["notifications/message",
                                                            "notifications/tools/list_changed"], narrowed.messages
        assert narrowed.messages[0]["params"]["logger"] == "loud/fake"  # never the notes server's
    finally:
        everything.close()
        narrowed.close()

    listen = {"jsonrpc": "2.0", "id": "l", "method": "subscriptions/listen", "params": {
        "notifications": {"resourceSubscriptions": ["mcp-proxy://notes/notes://today", "mcp-proxy://loud/notes://today"]},
        "_meta": {"io.modelcontextprotocol/protocolVersion": NEW, "io.modelcontextprotocol/clientCapabilities": {}}}}
    r = requests.post(p.url + "/mcp", json=listen, stream=True, timeout=(10, 30), headers={
        **headers(narrow), "MCP-Protocol-Version": NEW, "Mcp-Method": "subscriptions/listen", "Connection": "close"})
    first = json.loads(next(line for line in r.iter_lines(chunk_size=None) if line.startswith(b"data: "))[6:])
    assert first["params"]["notifications"] == {"resourceSubscriptions": ["mcp-proxy://loud/notes://today"]}
    r.close()


# ------------------------------------------------------------ the stream bounds are settings
def test_a_keys_streams_are_bounded_by_its_setting(proxy):
    p, _, _ = proxy
    key = create(p.db, "few-streams")
    streams = [Stream(p, key, post_init(p, key)) for _ in range(PER_KEY)]
    try:
        over = requests.get(p.url + "/mcp", headers=headers(key, post_init(p, key), "text/event-stream"), timeout=10)
        assert over.status_code == 429 and over.json()["error"]["code"] == -32029, over.text
        assert "MCP_STREAMS_PER_KEY" in over.json()["error"]["message"]
    finally:
        for stream in streams:
            stream.close()
