"""The MCP gateway through the running app (Gunicorn, two workers) in front of the strict fake stdio server
(tests/fakes/fake_mcp_server.py), with the official MCP Python SDK as the client: its tools listed and called
through `/mcp` (every server as one, names prefixed) and `/mcp/<server>` (one alone); one set of servers for
both workers; sessions, protocol headers and bad messages answered as the specification says; the servers
stop with the proxy."""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
from pathlib import Path

import pytest

from tests.polling import poll
from tests.proxy_process import running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")

FAKE = str(Path(__file__).resolve().parents[1] / "fakes" / "fake_mcp_server.py")
SERVERS = json.dumps({"fake": {"command": sys.executable, "args": [FAKE]},
                      "other": {"command": sys.executable, "args": [FAKE], "env": {"TZ": "UTC"}}})
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def gateway(module_fake):
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", MCP_SERVERS=SERVERS) as p:
        yield p


def send(proxy, method, path="/mcp", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    conn.request(method, path, data, {**JSON_HEADERS, **(headers or {})})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), json.loads(raw) if raw.strip() else None


def session(proxy, path="/mcp"):
    status, headers, body = send(proxy, "POST", path, INIT)
    assert status == 200, body
    return headers["Mcp-Session-Id"], body


async def sdk_session(url, work):
    async with mcp.Client(url, mode="legacy") as client:
        return await work(client)


def test_the_sdk_lists_and_calls_every_servers_tools_through_mcp(gateway):
    async def work(client):
        tools = await client.list_tools()
        called = await client.call_tool("other__add", {"a": 2, "b": 40})
        return [t.name for t in tools.tools], called

    names, called = asyncio.run(sdk_session(gateway.url + "/mcp", work))
    assert {"fake__echo", "other__echo", "fake__add", "other__whoami"} <= set(names)
    assert all(len(n) <= 64 for n in names)
    long = [n for n in names if n.startswith("fake__a_tool")]
    assert len(long) == 1 and len(long[0]) == 64
    assert called.content[0].text == "42" and not called.is_error


def test_a_shortened_name_is_called_by_its_listed_name(gateway):
    async def work(client):
        long = next(t.name for t in (await client.list_tools()).tools if t.name.startswith("fake__a_tool"))
        return (await client.call_tool(long, {})).content[0].text

    assert asyncio.run(sdk_session(gateway.url + "/mcp", work)) == "long"


def test_one_server_alone_keeps_its_own_names(gateway):
    async def work(client):
        tools = await client.list_tools()
        return [t.name for t in tools.tools], (await client.call_tool("echo", {"text": "alone"})).content[0].text

    names, said = asyncio.run(sdk_session(gateway.url + "/mcp/fake", work))
    assert "echo" in names and not any("__" in n and n.startswith("fake__") for n in names)
    assert said == "alone"


def test_prompts_and_resources_come_under_their_servers_name(gateway):
    async def work(client):
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        prompt = await client.get_prompt("fake__greet", {"name": "Ada"})
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        read = await client.read_resource("mcp-proxy://other/fake://readme")
        return prompts, prompt.messages[0].content.text, resources, read.contents[0]

    prompts, greeting, resources, read = asyncio.run(sdk_session(gateway.url + "/mcp", work))
    assert {"fake__greet", "other__greet"} <= set(prompts) and greeting == "Hello, Ada!"
    assert {"mcp-proxy://fake/fake://readme", "mcp-proxy://other/fake://readme"} <= set(resources)
    assert str(read.uri) == "mcp-proxy://other/fake://readme" and read.text == "read fake://readme"


def test_both_workers_share_one_set_of_servers(gateway):
    """Many sessions over many connections land on both workers; each server has one process."""
    pids = set()
    for _ in range(8):
        sid, _ = session(gateway)
        status, _, body = send(gateway, "POST", body={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                                      "params": {"name": "fake__whoami", "arguments": {}}},
                               headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
        assert status == 200, body
        pids.add(json.loads(body["result"]["content"][0]["text"])["pid"])
    assert len(pids) == 1


def test_a_session_is_needed_and_ends_with_delete(gateway):
    ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
    status, _, body = send(gateway, "POST", body=ping)
    assert status == 400 and body["error"]["code"] == -32600
    status, _, body = send(gateway, "POST", body=ping, headers={"Mcp-Session-Id": "not-a-session"})
    assert status == 404
    sid, _ = session(gateway)
    assert send(gateway, "POST", body=ping, headers={"Mcp-Session-Id": sid})[2] == \
        {"jsonrpc": "2.0", "id": 3, "result": {}}
    assert send(gateway, "DELETE", headers={"Mcp-Session-Id": sid})[0] == 204
    assert send(gateway, "POST", body=ping, headers={"Mcp-Session-Id": sid})[0] == 404
    # a tool call carries its session to the supervisor, which refuses an ended one: the same 404, on any worker
    for name in ("fake__echo", "nothing__here"):
        call = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": name, "arguments": {}}}
        status, _, body = send(gateway, "POST", body=call, headers={"Mcp-Session-Id": sid})
        assert (status, body["id"], body["error"]["code"]) == (404, 4, -32600), body


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, -32700),
    ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], 400, -32600),  # a batch
    ({"jsonrpc": "2.0", "id": None, "method": "ping"}, 400, -32600),
    ({"jsonrpc": "2.0", "id": 5, "method": "no/such/method"}, 200, -32601),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * (5 * 1024 * 1024) + b'"}}', 413, -32600),
])
def test_bad_messages_get_the_specifications_errors(gateway, body, status, code):
    sid, _ = session(gateway)
    got, _, answer = send(gateway, "POST", body=body, headers={"Mcp-Session-Id": sid})
    assert (got, answer["error"]["code"]) == (status, code)


def test_a_tool_calls_arguments_that_are_no_object_are_refused_before_its_server(gateway):
    """-32602, from the proxy (its message), at /mcp and /mcp/<server>; the fake server would take [] as {}."""
    for path, name in (("/mcp", "fake__echo"), ("/mcp/fake", "echo")):
        sid, _ = session(gateway, path)
        for given in ([], ["x"], "text", None, 7):
            call = {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": name, "arguments": given}}
            status, _, body = send(gateway, "POST", path, body=call, headers={"Mcp-Session-Id": sid})
            assert (status, body["error"]["code"]) == (200, -32602), body
            assert "params.arguments must be an object" in body["error"]["message"]


def test_an_unsupported_protocol_version_and_another_sites_page_are_refused(gateway):
    sid, _ = session(gateway)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    status, _, body = send(gateway, "POST", body=ping, headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": "1999-01-01"})
    assert status == 400 and "2025-11-25" in body["error"]["data"]["supported"]
    assert send(gateway, "POST", body=INIT, headers={"Origin": "https://evil.example"})[0] == 403
    assert send(gateway, "GET", headers={"Accept": "text/event-stream"})[0] == 400  # a GET stream is a session's


def test_the_sdks_default_mode_calls_a_tool(gateway):
    """The SDK's default (`auto`) asks `server/discover` at 2026-07-28 first, and speaks that revision then
    (test_mcp_stateless.py)."""
    async def work():
        async with mcp.Client(gateway.url + "/mcp") as client:
            return (await client.call_tool("fake__echo", {"text": "auto"})).content[0].text

    assert asyncio.run(work()) == "auto"


def test_progress_reaches_the_client_as_an_sse_stream(gateway):
    """A tool call with a progress token is answered as an SSE stream: the server's progress notifications for
    it, then its answer."""
    seen = []

    async def progress(done, total, message):
        seen.append((done, total))

    async def work(client):
        result = await client.call_tool("fake__progress", {"steps": 3}, progress_callback=progress)
        return result.content[0].text

    assert asyncio.run(sdk_session(gateway.url + "/mcp", work)) == "3 steps, token given"
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_the_servers_stop_with_the_proxy(gateway):
    """Last in this module: it stops the module's proxy."""
    sid, _ = session(gateway)
    _, _, body = send(gateway, "POST", body={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                             "params": {"name": "fake__whoami", "arguments": {}}},
                      headers={"Mcp-Session-Id": sid})
    pid = json.loads(body["result"]["content"][0]["text"])["pid"]
    log = gateway.stop()
    assert poll(lambda: not Path(f"/proc/{pid}").exists() or
                Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", timeout=15), log[-2000:]
    assert "mcp server fake: fake_mcp_server: started" in log
