"""The tool search through the running app (MCP_TOOL_SEARCH, docs/mcp.md): with 120+ tools behind /mcp and an
8,192-token window, the tool definitions tools/list gives a key are at least 5x smaller with auto than with off
(counted with the meter's tokenizer); a scripted agent (the official MCP SDK's client) finds the tool its task
needs through `mcp_tool_search` and calls it; a key's globs decide what search finds and what it may call."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx2
import pytest

from argoproxy.meter.tokens import count_text
from tests.integration.test_team_keys import create
from tests.proxy_process import running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")
from mcp.shared.exceptions import MCPError  # noqa: E402

ADMIN = "admin-key-for-tool-search-tests"
FAKES = Path(__file__).resolve().parents[1] / "fakes"
SERVERS = json.dumps({"cat": {"command": sys.executable, "args": [str(FAKES / "catalog_mcp_server.py")]},
                      "fake": {"command": sys.executable, "args": [str(FAKES / "fake_mcp_server.py")]}})


def proxy_with(db: Path, search: str):
    return running_proxy(TARGET_BASE_URL="http://127.0.0.1:9/v1", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN, KEYS_DB=str(db), MCP_SERVERS=SERVERS,
                         MCP_TOOL_SEARCH=search, MCP_TOOL_SEARCH_WINDOW="8192")


@pytest.fixture(scope="module")
def searching(tmp_path_factory):
    db = tmp_path_factory.mktemp("tool_search") / "keys.db"
    narrow = create(db, "narrow", "--tools", "cat__file_*,cat__email_*,fake__echo")
    with proxy_with(db, "auto") as proxy:
        yield proxy, narrow, db


def sdk(url, key, work):
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                async with mcp.ClientSession(*streams) as session:
                    await session.initialize()
                    return await work(session)
    return asyncio.run(run())


async def definitions(session):
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in (await session.list_tools()).tools]


def tokens(tools) -> int:
    return count_text(json.dumps(tools, separators=(",", ":")))


def test_the_listing_is_at_least_5x_smaller_with_auto_than_off(searching):
    proxy, _, db = searching
    auto = sdk(proxy.url + "/mcp", ADMIN, definitions)
    with proxy_with(db, "off") as off_proxy:
        off = sdk(off_proxy.url + "/mcp", ADMIN, definitions)
    assert len(off) >= 100 and [t["name"] for t in auto] == ["mcp_tool_search", "mcp_tool_call"]
    assert tokens(off) >= 5 * tokens(auto), (tokens(off), tokens(auto))


def test_a_scripted_agent_finds_and_calls_the_tool_its_task_needs(searching):
    proxy, _, _ = searching
    task = "export the invoice of customer ACME as a download"

    async def agent(session):
        listed = [t.name for t in (await session.list_tools()).tools]
        found = (await session.call_tool("mcp_tool_search", {"query": task, "limit": 3})).structured_content
        chosen = found["tools"][0]
        arguments = {p: "ACME" for p in chosen["inputSchema"]["properties"] if p == "customer"}
        ran = (await session.call_tool(chosen["name"], arguments)).content[0].text
        after = [t.name for t in (await session.list_tools()).tools]
        return listed, chosen["name"], ran, after

    listed, chosen, ran, after = sdk(proxy.url + "/mcp", ADMIN, agent)
    assert listed == ["mcp_tool_search", "mcp_tool_call"]
    assert chosen == "cat__invoice_export" and ran == 'ran invoice_export {"customer": "ACME"}'
    assert after[:2] == listed and "cat__invoice_export" in after  # this session's finds are listed


def test_a_keys_globs_decide_what_search_finds_and_what_it_calls(searching):
    proxy, narrow, _ = searching

    async def work(session):
        listed = [t.name for t in (await session.list_tools()).tools]
        pods = (await session.call_tool("mcp_tool_search", {"query": "kubernetes pod delete", "limit": 20}))
        files = (await session.call_tool("mcp_tool_search", {"query": "delete a file", "limit": 20}))
        ran = (await session.call_tool("cat__file_delete", {"path": "x"})).content[0].text
        through = (await session.call_tool("mcp_tool_call", {"name": "cat__file_delete",
                                                             "arguments": {"path": "x"}})).content[0].text
        refused = []
        for name, arguments in (("cat__pod_delete", {}), ("mcp_tool_call", {"name": "cat__pod_delete"})):
            try:
                await session.call_tool(name, arguments)
            except MCPError as err:
                refused.append(err.error.message)
        return listed, pods.structured_content["tools"], files.structured_content["tools"], (ran, through), refused

    listed, pods, files, ran, refused = sdk(proxy.url + "/mcp", narrow, work)
    assert listed == ["mcp_tool_search", "mcp_tool_call"]
    assert sorted(t["name"] for t in pods) == ["cat__email_delete", "cat__file_delete"]  # only "delete" is shared
    assert files[0]["name"] == "cat__file_delete"
    assert all(t["name"].startswith(("cat__file_", "cat__email_", "fake__echo")) for t in files)
    assert ran == ('ran file_delete {"path": "x"}',) * 2  # by its name, or through mcp_tool_call
    assert len(refused) == 2 and all("not allowed" in why for why in refused)


def test_a_session_that_finds_tools_hears_its_listing_changed(searching):
    from tests.integration.test_mcp_listen import sdk as listening_sdk
    from tests.integration.test_mcp_listen import until
    proxy, _, _ = searching
    changes = []
    kinds = iter(["email", "wiki page", "spreadsheet", "pod", "invoice", "chat message", "docker image", "file"] * 3)

    async def handler(message):
        if isinstance(message, mcp.types.ToolListChangedNotification):
            changes.append(message)

    async def work(client):  # each search finds tools new to the session, until its GET stream hears one
        heard = await until(lambda: changes, lambda: client.call_tool("mcp_tool_search", {"query": next(kinds)}))
        return heard, [t.name for t in (await client.list_tools()).tools]

    heard, listed = listening_sdk(proxy.url + "/mcp", ADMIN, work, mode="legacy", message_handler=handler)
    assert heard and listed[:2] == ["mcp_tool_search", "mcp_tool_call"] and len(listed) > 5



def test_the_search_tools_refuse_arguments_that_are_no_object(searching):
    from tests.integration.test_mcp_gateway import INIT, send
    proxy = searching[0]
    key = {"Authorization": f"Bearer {ADMIN}"}
    sid = send(proxy, "POST", body=INIT, headers=key)[1]["Mcp-Session-Id"]
    for name in ("mcp_tool_search", "mcp_tool_call"):
        for given in ([], "query", None, 1):
            call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": name, "arguments": given}}
            status, _, body = send(proxy, "POST", body=call, headers={**key, "Mcp-Session-Id": sid})
            assert (status, body["error"]["code"]) == (200, -32602), body
            assert "params.arguments must be an object" in body["error"]["message"]
