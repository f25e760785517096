"""Remote MCP servers behind the running app (Gunicorn, two workers), with the official MCP Python SDK as the
client: the strict fake remote server (tests/fakes/fake_mcp_http.py, on loopback in this process) beside the
strict stdio fake, its tools listed and called through `/mcp` and `/mcp/<server>`, its progress relayed; the
token the proxy holds reaches the server and never a client or the log; an HTTP+SSE server whose `endpoint`
event names another origin, one that redirects to another host, and one that is down are each refused,
shown in their state, and harm no one else."""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
from pathlib import Path

import pytest

from tests.fakes.fake_mcp_http import FakeRemote
from tests.polling import poll
from tests.proxy_process import free_port, running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")

STDIO_FAKE = str(Path(__file__).resolve().parents[1] / "fakes" / "fake_mcp_server.py")
TOKEN = "remote-mcp-token-of-the-test-0123456789"
HEADER_SECRET = "team-header-secret-98765"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture(scope="module")
def remote():
    """The servers: docs (Streamable HTTP, with a token), old (HTTP+SSE, its endpoint elsewhere), moved (a redirect
    to another host) and elsewhere, the other host, which nothing may reach."""
    with FakeRemote(host="127.0.0.2") as elsewhere, FakeRemote(token=TOKEN) as docs, \
            FakeRemote(mode="sse", endpoint=elsewhere.url.replace("/mcp", "/messages")) as old, \
            FakeRemote(redirect=elsewhere.url) as moved:
        yield {"docs": docs, "old": old, "moved": moved, "elsewhere": elsewhere}


@pytest.fixture(scope="module")
def gateway(module_fake, remote):
    servers = {"docs": {"url": remote["docs"].url, "bearer_token_env": "DOCS_MCP_TOKEN",
                        "headers": {"X-Team": HEADER_SECRET}},
               "old": {"url": remote["old"].url, "transport": "sse"},
               "moved": {"url": remote["moved"].url},
               "down": {"url": f"http://127.0.0.1:{free_port()}/mcp"},
               "fake": {"command": sys.executable, "args": [STDIO_FAKE]}}
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", MCP_SERVERS=json.dumps(servers),
                       DOCS_MCP_TOKEN=TOKEN, TIMEOUT="3") as p:  # a call's deadline: 3 s
        yield p


def sdk(url, work):
    async def run():
        async with mcp.Client(url, mode="legacy") as client:
            return await work(client)
    return asyncio.run(run())


def states(gateway):
    """Each server's state as `cot-proxy mcp list` reads it (the proxy's cot_proxy/servers)."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    conn.request("POST", "/mcp", json.dumps(INIT), headers)
    resp = conn.getresponse()
    resp.read()
    sid = resp.getheader("Mcp-Session-Id")
    conn.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 2, "method": "cot_proxy/servers"}),
                 {**headers, "Mcp-Session-Id": sid})
    body = conn.getresponse().read()
    conn.close()
    return {s["name"]: s for s in json.loads(body)["result"]["servers"]}, body


def test_a_remote_servers_tools_are_listed_and_called_beside_a_stdio_servers(gateway, remote):
    async def work(client):
        names = [t.name for t in (await client.list_tools()).tools]
        return names, await client.call_tool("docs__add", {"a": 2, "b": 40})

    names, added = poll(lambda: (lambda r: r if "docs__add" in r[0] else None)(sdk(gateway.url + "/mcp", work)),
                        timeout=30, interval=0.2)
    assert {"docs__echo", "docs__add", "fake__echo"} <= set(names)
    assert not any(n.startswith(("old__", "moved__", "down__")) for n in names)
    assert added.content[0].text == "42" and not added.is_error


def test_a_remote_server_alone_keeps_its_names_and_relays_progress(gateway):
    seen = []

    async def progress(done, total, message):
        seen.append((done, total))

    async def work(client):
        names = [t.name for t in (await client.list_tools()).tools]
        said = await client.call_tool("echo", {"text": "alone"})
        stepped = await client.call_tool("progress", {"steps": 3}, progress_callback=progress)
        return names, said.content[0].text, stepped.content[0].text

    names, said, stepped = sdk(gateway.url + "/mcp/docs", work)
    assert "echo" in names and said == "alone" and stepped == "3 steps"
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_the_token_and_headers_reach_the_server_and_never_a_client_or_the_log(gateway, remote):
    async def work(client):
        return await client.call_tool("docs__echo", {"text": "who"})

    assert sdk(gateway.url + "/mcp", work).content[0].text == "who"
    docs = remote["docs"]
    assert docs.authorizations() == {f"Bearer {TOKEN}"} and docs.refused == []
    assert {h.get("X-Team") for _, _, h in docs.seen} == {HEADER_SECRET}
    _, answered = states(gateway)
    log = gateway.read_log()
    for secret in (TOKEN, HEADER_SECRET):
        assert secret.encode() not in answered and secret not in log


def test_an_endpoint_on_another_origin_a_redirect_and_a_server_down_are_refused_and_shown(gateway, remote):
    def settled():
        found, _ = states(gateway)
        return found if all(found[n]["state"] in ("restarting", "starting") and found[n]["error"]
                            for n in ("old", "moved", "down")) and found["docs"]["state"] == "ready" else None

    found = poll(settled, timeout=30, interval=0.2)
    assert found, states(gateway)[0]
    assert "another origin" in found["old"]["error"]
    assert "does not follow redirects" in found["moved"]["error"]
    assert "could not connect" in found["down"]["error"]
    assert poll(lambda: states(gateway)[0]["down"]["restarts"] >= 1, timeout=15)
    assert remote["elsewhere"].seen == []  # neither the endpoint it named nor the redirect's target was reached
    assert poll(lambda: "mcp server old: its endpoint event names another origin (http://127.0.0.2:" in gateway.read_log())


def test_a_bad_answer_or_a_hang_ends_its_call_and_no_other(gateway):
    async def work(client):
        try:
            await client.call_tool("docs__garbage", {})
        except mcp.MCPError as error:
            garbage = error
        try:
            await client.call_tool("docs__slow", {"seconds": 10})
        except mcp.MCPError as error:
            hung = error
        return garbage, hung, (await client.call_tool("docs__echo", {"text": "fine"})).content[0].text

    garbage, hung, after = sdk(gateway.url + "/mcp", work)
    assert garbage.code == -32603 and "no JSON-RPC answer" in garbage.message
    assert hung.code == -32003
    assert after == "fine"
