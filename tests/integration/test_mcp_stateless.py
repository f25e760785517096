"""Revision 2026-07-28 at `/mcp` and `/mcp/<server>` through the running app (Gunicorn, two workers, auth on)
in front of the strict fake stdio server: the official Python SDK's client in its default mode now speaks
2026-07-28 to the proxy (server/discover answered, no initialize, no Mcp-Session-Id) and lists and calls tools,
prompts and resources; a team key's tool globs, the journal line and /metrics hold as at 2025-11-25; the
`_meta` envelope and the MCP-Protocol-Version, Mcp-Method and Mcp-Name headers are checked as the specification
says, and what the proxy does not serve at this revision is refused with its error."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import tempfile

import httpx2
import pytest
import requests

from tests.integration.test_mcp_gateway import SERVERS
from tests.integration.test_team_keys import create
from tests.polling import poll
from tests.proxy_process import running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

ADMIN = "admin-key-for-stateless-mcp-tests"
VERSION = "2026-07-28"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": VERSION, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"}}


@pytest.fixture(scope="module")
def proxy(module_fake, tmp_path_factory):
    home = tmp_path_factory.mktemp("mcp_stateless")
    db, logs = home / "keys.db", home / "logs"
    bot = create(db, "bot", "--tools", "fake__echo,other__*")
    metrics = tempfile.mkdtemp(prefix="cot_proxy_test_metrics_")
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=SERVERS, LOG_DIR=str(logs),
                       PROMETHEUS_MULTIPROC_DIR=metrics) as p:
        yield p, bot, logs


def post(p, body, headers=None, path="/mcp", key=ADMIN, envelope=True):
    """One raw POST of this revision: the envelope in `_meta` and the headers a client sends, unless told."""
    if envelope and isinstance(body, dict) and "method" in body:
        params = body.setdefault("params", {})
        params["_meta"] = {**ENVELOPE, **params.get("_meta", {})}
    named = (body.get("params") or {}).get("uri" if body.get("method") == "resources/read" else "name") \
        if isinstance(body, dict) else None
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {key}", "MCP-Protocol-Version": VERSION, "Connection": "close",
            **({"Mcp-Method": body["method"]} if isinstance(body, dict) and "method" in body else {}),
            **({"Mcp-Name": named} if isinstance(named, str) else {})}
    sent = {k: v for k, v in {**sent, **(headers or {})}.items() if v is not None}
    return requests.post(p.url + path, json=body, headers=sent, timeout=30)


def sdk(url, key, work):
    """The official SDK's client in its default mode (`auto`), and every exchange it had over HTTP."""
    seen: list[tuple[dict, dict, dict]] = []

    async def hook(response):
        body = json.loads(response.request.content or b"{}")
        seen.append((dict(response.request.headers), dict(response.headers), body))

    async def run():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30,
                                      event_hooks={"response": [hook]}) as http:
            async with mcp.Client(streamable_http_client(url, http_client=http)) as c:
                return c.protocol_version, await work(c)
    version, done = asyncio.run(run())
    return version, done, seen


def test_the_sdks_default_mode_speaks_2026_07_28_and_calls_tools(proxy):
    p, _, _ = proxy

    async def work(client):
        names = [t.name for t in (await client.list_tools()).tools]
        return names, (await client.call_tool("other__add", {"a": 2, "b": 40})).content[0].text

    version, (names, added), seen = sdk(p.url + "/mcp", ADMIN, work)
    assert version == VERSION
    assert {"fake__echo", "other__add", "fake__whoami"} <= set(names) and added == "42"
    methods = [body.get("method") for _, _, body in seen]
    assert methods[0] == "server/discover" and "initialize" not in methods and "tools/call" in methods
    assert all(sent.get("mcp-protocol-version") == VERSION and sent.get("mcp-method") == body.get("method")
               for sent, _, body in seen)
    assert not any("mcp-session-id" in {k.lower() for k in answered} for _, answered, _ in seen)

    async def legacy():  # the handshake revision on the same path, beside it
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as http:
            async with mcp.Client(streamable_http_client(p.url + "/mcp", http_client=http), mode="legacy") as c:
                return c.protocol_version, (await c.call_tool("fake__echo", {"text": "old"})).content[0].text

    assert asyncio.run(legacy()) == ("2025-11-25", "old")


def test_one_server_alone_prompts_and_resources_at_2026_07_28(proxy):
    p, _, _ = proxy

    async def alone(client):
        names = [t.name for t in (await client.list_tools()).tools]
        return names, (await client.call_tool("echo", {"text": "alone"})).content[0].text

    version, (names, said), _ = sdk(p.url + "/mcp/fake", ADMIN, alone)
    assert version == VERSION and "echo" in names and said == "alone"

    async def rest(client):
        prompts = [x.name for x in (await client.list_prompts()).prompts]
        greeting = (await client.get_prompt("fake__greet", {"name": "Ada"})).messages[0].content.text
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        read = (await client.read_resource("mcp-proxy://other/fake://readme")).contents[0]
        return prompts, greeting, resources, read.text

    version, (prompts, greeting, resources, read), _ = sdk(p.url + "/mcp", ADMIN, rest)
    assert version == VERSION and "fake__greet" in prompts and greeting == "Hello, Ada!"
    assert "mcp-proxy://other/fake://readme" in resources and read == "read fake://readme"


def test_a_keys_tool_globs_journal_and_metrics_hold_at_2026_07_28(proxy):
    p, bot, logs = proxy

    async def work(client):
        names = [t.name for t in (await client.list_tools()).tools]
        said = (await client.call_tool("fake__echo", {"text": "stateless"})).content[0].text
        with pytest.raises(MCPError) as refused:
            await client.call_tool("fake__whoami", {})
        return names, said, refused.value.error.code

    version, (names, said, code), _ = sdk(p.url + "/mcp", bot, work)
    assert version == VERSION and said == "stateless" and code == -32602
    assert "fake__echo" in names and "fake__whoami" not in names and "other__add" in names

    def journaled():
        path = logs / "client_interaction.jsonl"
        lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        calls = [x for x in lines if x.get("kind") == "tool_call" and x.get("key") == "bot"]
        return calls if len(calls) >= 2 else None

    calls = poll(journaled, timeout=10)
    assert {(c["tool"], c["outcome"]) for c in calls} >= {("fake__echo", "ok"), ("fake__whoami", "error")}
    metrics = requests.get(p.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30).text
    assert 'cot_proxy_tool_calls_total{outcome="ok",server="fake",tool="fake__echo"}' in metrics


def test_server_discover_answers_the_proxy_and_its_revisions(proxy):
    p, _, _ = proxy
    r = post(p, {"jsonrpc": "2.0", "id": 1, "method": "server/discover"})
    assert r.status_code == 200 and "Mcp-Session-Id" not in r.headers, r.text
    result = r.json()["result"]
    assert {"2025-11-25", VERSION} <= set(result["supportedVersions"])
    assert {"tools", "prompts", "resources"} <= set(result["capabilities"])
    assert result["resultType"] == "complete" and result["cacheScope"] == "private" and result["ttlMs"] == 0
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "cot_proxy"
    alone = post(p, {"jsonrpc": "2.0", "id": 2, "method": "server/discover"}, path="/mcp/fake").json()["result"]
    assert alone["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "cot_proxy/fake"


def call(name="fake__echo", id=7):
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {"text": "x"}}}


@pytest.mark.parametrize("body, headers, envelope, status, code", [
    (call(), {"MCP-Protocol-Version": None}, True, 400, -32020),  # the body says 2026-07-28, no header does
    (call(), {"Mcp-Method": "tools/list"}, True, 400, -32020),
    (call(), {"Mcp-Method": None}, True, 400, -32020),
    (call(), {"Mcp-Name": "other__echo"}, True, 400, -32020),
    (call(), {"Mcp-Name": None}, True, 400, -32020),
    (call(), {}, False, 400, -32602),  # no _meta envelope
    ({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
      "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": VERSION}}}, {}, False, 400, -32602),
    (call(), {"MCP-Protocol-Version": "2099-01-01"}, True, 400, -32022),  # a revision not spoken, whatever the body
    ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, {}, True, 404, -32601),  # removed at 2026-07-28
    ({"jsonrpc": "2.0", "id": 1, "method": "initialize"}, {}, True, 404, -32601),
    ({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {"notifications": {}}},
     {"Accept": "application/json"}, True, 406, -32600),  # its answer is a stream: it must accept one
    ({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
      "params": {"name": "fake__echo", "arguments": {}, "requestState": "abc"}}, {}, True, 400, -32602),
])
def test_the_envelope_and_headers_are_checked_as_the_specification_says(proxy, body, headers, envelope, status,
                                                                        code):
    p, _, _ = proxy
    r = post(p, json.loads(json.dumps(body)), headers, envelope=envelope)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert "Mcp-Session-Id" not in r.headers


def test_a_revision_the_proxy_does_not_speak_names_those_it_does(proxy):
    p, _, _ = proxy
    body = call()
    body["params"]["_meta"] = {**ENVELOPE, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    r = post(p, body, {"MCP-Protocol-Version": "2099-01-01"}, envelope=False)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == -32022 and error["data"]["requested"] == "2099-01-01"
    assert {"2025-11-25", VERSION} <= set(error["data"]["supported"])


def test_a_name_sent_base64_encoded_matches_and_a_notification_is_accepted(proxy):
    p, _, _ = proxy
    encoded = "=?base64?" + base64.b64encode(b"fake__echo").decode() + "?="
    r = post(p, call(), {"Mcp-Name": encoded})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["content"][0]["text"] == "x" and result["resultType"] == "complete"
    note = post(p, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}})
    assert note.status_code == 202 and "Mcp-Session-Id" not in note.headers


def test_a_tool_call_asking_for_progress_is_an_sse_stream_when_accepted(proxy):
    p, _, _ = proxy
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "fake__progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "t"}}}
    r = post(p, body)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream"), r.text
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert [e["params"]["progress"] for e in events[:-1]] == [1, 2]
    assert events[-1]["result"]["content"][0]["text"] == "2 steps, token given"
    assert events[-1]["result"]["resultType"] == "complete"
    json_only = post(p, json.loads(json.dumps(body)), {"Accept": "application/json"})
    assert json_only.headers["Content-Type"].startswith("application/json")
    assert json_only.json()["result"]["resultType"] == "complete"


def test_a_client_that_closes_its_stream_cancels_its_call(proxy):
    """At this revision a client cancels by closing the call's stream: the server is told the call is cancelled."""
    p, _, _ = proxy
    body = json.dumps({"jsonrpc": "2.0", "id": 31, "method": "tools/call", "params": {
        "name": "fake__drip", "arguments": {"seconds": 20, "every": 0.1},
        "_meta": {**ENVELOPE, "progressToken": "d"}}}).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {ADMIN}\r\n"
            f"MCP-Protocol-Version: {VERSION}\r\nMcp-Method: tools/call\r\nMcp-Name: fake__drip\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    cancelled = r"fake_mcp_server: cancelled \d+"  # the server names the call by its id on the pipe
    before = len(re.findall(cancelled, p.read_log()))
    with socket.create_connection(("127.0.0.1", p.port), timeout=30) as conn:
        conn.sendall(head + body)
        seen = b""
        while b"notifications/progress" not in seen:
            seen += conn.recv(4096)
        assert seen.startswith(b"HTTP/1.1 200") and b"text/event-stream" in seen
    assert poll(lambda: len(re.findall(cancelled, p.read_log())) > before, timeout=15)
