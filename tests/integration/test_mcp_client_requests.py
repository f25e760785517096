"""Requests a server makes of its client during a client's call (sampling, elicitation, roots), through the running
app (Gunicorn, two workers, auth on) in front of a stdio server built with the official SDK
(tests/fakes/asking_mcp_server.py) and the strict fake remote server (its `ask` tool asks on the call's own stream):

- at 2025-11-25 the official Python SDK's client, given callbacks, is asked on its call's SSE stream and its
  answers reach the server; a client that declared nothing is not asked; a stdio server's request made while
  several calls are in flight on its process is refused, and a `per_session` server's never is;
- a response POSTed by another session, another key, to a guessed id, twice, or after the call ended is refused
  and never reaches the server; a client that never answers ends with its call's deadline;
- at 2026-07-28 the SDK's client is answered `input_required` and its next request carries the responses; a
  requestState is good once, for its key and tool."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path

import httpx2
import pytest
import requests

from tests.fakes.fake_mcp_http import FakeRemote
from tests.integration.test_team_keys import create
from tests.polling import poll
from tests.proxy_process import running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp_types import CreateMessageResult, ElicitResult, ListRootsResult, Root, TextContent  # noqa: E402

ADMIN = "admin-key-for-client-request-tests"
ASKING = str(Path(__file__).resolve().parents[1] / "fakes" / "asking_mcp_server.py")
DEADLINE = 30  # seconds: a call's deadline, but the hasty server's
HASTY = 2
NEW = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": NEW,
            "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}


@pytest.fixture(scope="module")
def remote():
    with FakeRemote() as docs:
        yield docs


@pytest.fixture(scope="module")
def proxy(module_fake, remote, tmp_path_factory):
    db = tmp_path_factory.mktemp("mcp_client_requests") / "keys.db"
    bot, other = create(db, "bot"), create(db, "other")
    servers = {"asking": {"command": sys.executable, "args": [ASKING], "timeout": DEADLINE},
               "hasty": {"command": sys.executable, "args": [ASKING], "timeout": HASTY},
               "own": {"command": sys.executable, "args": [ASKING], "per_session": True, "timeout": DEADLINE},
               "docs": {"url": remote.url, "timeout": DEADLINE}}
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=json.dumps(servers)) as p:
        session = raw_session(p, bot)  # the servers started (a call waits for its server no longer than its deadline)
        assert poll(lambda: plain(p, bot, session, "asking__plain") == "ready", timeout=60)
        assert poll(lambda: plain(p, bot, session, "hasty__plain") == "ready", timeout=60)
        yield p, bot, other


def sdk(url, key, work, mode="legacy", **callbacks):
    async def run():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            async with mcp.Client(streamable_http_client(url, http_client=http), mode=mode, **callbacks) as c:
                return await work(c)
    return asyncio.run(run())


async def sampled(context, params):
    asked = params.messages[0].content.text if params.messages else "nothing"
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text=f"the client's {asked}"),
                               model="client-model")


async def elicited(context, params):
    return ElicitResult(action="accept", content={"ok": True})


async def rooted(context):
    return ListRootsResult(roots=[Root(uri="file:///srv/project")])


CALLBACKS = {"sampling_callback": sampled, "elicitation_callback": elicited, "list_roots_callback": rooted}


def said(result):
    return result.content[0].text


def test_sampling_elicitation_and_roots_reach_the_calling_client(proxy):
    p, bot, _ = proxy

    async def work(client):
        return [said(await client.call_tool("asking__sample", {"prompt": "haiku"})),
                said(await client.call_tool("asking__confirm", {})),
                said(await client.call_tool("asking__roots", {})),
                said(await client.call_tool("docs__ask", {}))]

    sample, confirm, roots, remote = sdk(p.url + "/mcp", bot, work, **CALLBACKS)
    assert sample == "sampled: the client's haiku"
    assert json.loads(confirm) == {"action": "accept", "data": {"ok": True}}
    assert roots == "file:///srv/project" and remote == "a result"

    async def alone(client):  # a remote server's request, on its call's own stream
        return said(await client.call_tool("ask", {}))

    assert sdk(p.url + "/mcp/docs", bot, alone, **CALLBACKS) == "a result"


def test_a_client_that_declared_nothing_is_not_asked(proxy):
    p, bot, _ = proxy

    async def work(client):
        return said(await client.call_tool("asking__sample", {"prompt": "x"}))

    refused = sdk(p.url + "/mcp", bot, work)
    assert refused.startswith("refused: -32601") and "did not declare the sampling capability" in refused


def raw_session(p, key, capabilities=None):
    r = requests.post(p.url + "/mcp", json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities if capabilities is not None else {"sampling": {}},
        "clientInfo": {"name": "raw", "version": "1"}}}, headers=headers(key), timeout=30)
    assert r.status_code == 200, r.text
    session = r.headers["Mcp-Session-Id"]
    requests.post(p.url + "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                  headers=headers(key, session), timeout=30)
    return session


def headers(key, session=None):
    return {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json", **({"Mcp-Session-Id": session} if session else {}),
            **({"MCP-Protocol-Version": "2025-11-25"} if session else {})}


class Call:
    """A raw tool call whose SSE answer is read on a thread: the server's requests, then its answer."""

    def __init__(self, p, key, session, name, arguments, id=1):
        self.events: list[dict] = []
        self.asked = threading.Event()
        self.done = threading.Event()
        self.resp = requests.post(p.url + "/mcp", json={"jsonrpc": "2.0", "id": id, "method": "tools/call",
                                                         "params": {"name": name, "arguments": arguments}},
                                  headers=headers(key, session), stream=True, timeout=30)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        try:
            assert self.resp.headers["Content-Type"].startswith("text/event-stream"), self.resp.text
            for line in self.resp.iter_lines():
                if line.startswith(b"data: "):
                    self.events.append(json.loads(line[6:]))
                    if "method" in self.events[-1]:
                        self.asked.set()
        finally:
            self.done.set()

    def request(self):
        assert self.asked.wait(20), self.events
        return next(e for e in self.events if "method" in e)

    def answer(self):
        assert self.done.wait(20), self.events
        return self.events[-1]


def respond(p, key, session, id, text):
    body = {"jsonrpc": "2.0", "id": id, "result": {"role": "assistant", "model": "m",
                                                    "content": {"type": "text", "text": text}}}
    return requests.post(p.url + "/mcp", json=body, headers=headers(key, session), timeout=30)


def test_only_the_calls_own_session_answers_once_and_nothing_else_reaches_the_server(proxy):
    p, bot, other = proxy
    mine, sibling, others = raw_session(p, bot), raw_session(p, bot), raw_session(p, other)
    call = Call(p, bot, mine, "asking__sample", {"prompt": "poem"})
    asked = call.request()
    assert asked["method"] == "sampling/createMessage" and asked["id"].startswith("cot_proxy-ask-")
    assert asked["params"]["messages"][0]["content"]["text"] == "poem"

    assert respond(p, bot, sibling, asked["id"], "from another session").status_code == 400
    assert respond(p, other, mine, asked["id"], "from another key").status_code == 404  # not its session
    assert respond(p, other, others, asked["id"], "from another key's session").status_code == 400
    assert respond(p, bot, mine, "cot_proxy-ask-guessed", "guessed").status_code == 400
    assert respond(p, bot, mine, 1, "the call's own id").status_code == 400
    assert respond(p, bot, mine, asked["id"], "the answer").status_code == 202
    assert respond(p, bot, mine, asked["id"], "a second answer").status_code == 400
    answer = call.answer()
    assert answer["id"] == 1 and answer["result"]["content"][0]["text"] == "sampled: the answer"
    assert respond(p, bot, mine, asked["id"], "late").status_code == 400


def test_a_client_that_never_answers_ends_with_its_calls_deadline(proxy):
    p, bot, _ = proxy
    session = raw_session(p, bot)
    call = Call(p, bot, session, "hasty__sample", {"prompt": "ignored"})
    asked = call.request()
    answer = call.answer()  # the deadline passes: the call ends, the server hears no answer will come
    assert answer["error"]["code"] == -32003, answer
    assert respond(p, bot, session, asked["id"], "too late").status_code == 400
    assert plain(p, bot, session, "hasty__plain") == "ready"  # the server is not stuck


def test_a_stdio_servers_request_with_several_calls_in_flight_is_refused(proxy):
    """A stdio server's pipe does not say whose its request is: with a call of one session waiting for its client,
    another session's call's request could be either's, and is refused."""
    p, bot, _ = proxy
    first, second = raw_session(p, bot), raw_session(p, bot)
    waiting = Call(p, bot, first, "asking__sample", {"prompt": "first"})
    asked = waiting.request()
    r = requests.post(p.url + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "asking__sample", "arguments": {"prompt": "second"}}}, headers=headers(bot, second), timeout=30)
    refused = r.json()["result"]["content"][0]["text"]
    assert refused.startswith("refused: -32601") and "several calls are in flight" in refused
    assert respond(p, bot, first, asked["id"], "one").status_code == 202
    assert waiting.answer()["result"]["content"][0]["text"] == "sampled: one"


def plain(p, key, session, name):
    r = requests.post(p.url + "/mcp", json={"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": name, "arguments": {"text": "ready"}}}, headers=headers(key, session), timeout=30)
    result = r.json().get("result") or {}
    return result.get("content", [{}])[0].get("text")


def test_a_per_session_servers_requests_are_its_sessions_calls_whatever_else_is_in_flight(proxy):
    p, bot, _ = proxy
    first, second = raw_session(p, bot), raw_session(p, bot)
    for session in (first, second):  # each session's process started (it may take longer than a call's deadline)
        assert poll(lambda: plain(p, bot, session, "own__plain") == "ready", timeout=60)
    calls = [Call(p, bot, session, "own__sample", {"prompt": "mine"}) for session in (first, second)]
    asked = [call.request() for call in calls]  # both asked at once: each session's process is its own
    assert respond(p, bot, first, asked[1]["id"], "crossed").status_code == 400
    for session, request, text in ((second, asked[1], "two"), (first, asked[0], "one")):
        assert respond(p, bot, session, request["id"], text).status_code == 202
    assert [c.answer()["result"]["content"][0]["text"] for c in calls] == ["sampled: one", "sampled: two"]


def stateless(p, key, name, arguments, **params):
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": name, "arguments": arguments, "_meta": ENVELOPE, **params}}
    return requests.post(p.url + "/mcp", json=body, timeout=30, headers={
        "Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json", "MCP-Protocol-Version": NEW, "Mcp-Method": "tools/call",
        "Mcp-Name": name})


def test_at_2026_07_28_the_sdks_client_is_asked_for_input_and_calls_again(proxy):
    p, bot, _ = proxy

    async def work(client):
        return client.protocol_version, [said(await client.call_tool("asking__sample", {"prompt": "limerick"})),
                                         said(await client.call_tool("asking__roots", {}))]

    version, (sample, roots) = sdk(p.url + "/mcp", bot, work, mode="auto", **CALLBACKS)
    assert version == NEW and sample == "sampled: the client's limerick" and roots == "file:///srv/project"


def test_at_2026_07_28_a_request_state_is_good_once_for_its_key_and_tool(proxy):
    p, bot, other = proxy
    first = stateless(p, bot, "asking__sample", {"prompt": "sonnet"})
    assert first.status_code == 200, first.text
    result = first.json()["result"]
    assert result["resultType"] == "input_required" and "Mcp-Session-Id" not in first.headers
    (key, asked), = result["inputRequests"].items()
    assert asked["method"] == "sampling/createMessage"
    assert asked["params"]["messages"][0]["content"]["text"] == "sonnet"
    state = result["requestState"]
    reply = {key: {"role": "assistant", "model": "m", "content": {"type": "text", "text": "verse"}}}
    for who, name in ((other, "asking__sample"), (bot, "asking__confirm")):  # another key; another tool
        refused = stateless(p, who, name, {}, inputResponses=reply, requestState=state)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, -32602), refused.text
    done = stateless(p, bot, "asking__sample", {"prompt": "sonnet"}, inputResponses=reply, requestState=state)
    assert done.status_code == 200, done.text
    assert done.json()["result"]["content"][0]["text"] == "sampled: verse"
    assert done.json()["result"]["resultType"] == "complete"
    again = stateless(p, bot, "asking__sample", {"prompt": "sonnet"}, inputResponses=reply, requestState=state)
    assert (again.status_code, again.json()["error"]["code"]) == (400, -32602)
