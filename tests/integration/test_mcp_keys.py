"""The MCP gateway with auth on, through the running app: the same keys as the model routes; a team key's
`--tools` globs limit what it lists and calls (a tool outside them is an MCP error and nothing reaches the
server); no key is a 401 with `WWW-Authenticate: Bearer`; a session belongs to the key that opened it."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from tests.integration.test_mcp_gateway import INIT, SERVERS, send
from tests.integration.test_team_keys import create
from tests.proxy_process import running_proxy

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")
from mcp.shared.exceptions import MCPError  # noqa: E402

ADMIN = "admin-key-for-mcp-tests"


@pytest.fixture(scope="module")
def guarded(module_fake, tmp_path_factory):
    db = tmp_path_factory.mktemp("mcp_keys") / "keys.db"
    bot = create(db, "bot", "--tools", "fake__echo,fake__whoami,other__*")
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=SERVERS) as proxy:
        yield proxy, bot


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def sdk(url, key, work):
    """The official SDK's client with the key in its HTTP client's headers."""
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with httpx2.AsyncClient(headers=bearer(key), timeout=30) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                async with mcp.ClientSession(*streams) as session:
                    await session.initialize()
                    return await work(session)
    return asyncio.run(run())


def test_no_key_is_a_401_with_a_bearer_challenge(guarded):
    proxy, _ = guarded
    status, headers, _ = send(proxy, "POST", body=INIT)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")


def test_a_keys_tool_globs_limit_what_it_lists_and_calls(guarded):
    proxy, bot = guarded

    async def work(session):
        names = [t.name for t in (await session.list_tools()).tools]
        pid = json.loads((await session.call_tool("fake__whoami", {})).content[0].text)["pid"]
        try:
            await session.call_tool("fake__crash", {})
            refused = None
        except MCPError as err:
            refused = err
        after = json.loads((await session.call_tool("fake__whoami", {})).content[0].text)["pid"]
        return names, pid, refused, after

    names, pid, refused, after = sdk(proxy.url + "/mcp", bot, work)
    assert {"fake__echo", "fake__whoami", "other__add", "other__crash"} <= set(names)
    assert not {"fake__add", "fake__crash"} & set(names)
    assert refused is not None and refused.error.code == -32602 and "not allowed" in refused.error.message
    assert after == pid  # the crash tool never reached the server


def test_the_admin_key_sees_every_tool(guarded):
    proxy, _ = guarded

    async def work(session):
        return [t.name for t in (await session.list_tools()).tools]

    assert {"fake__add", "fake__crash", "other__whoami"} <= set(sdk(proxy.url + "/mcp", ADMIN, work))


def test_a_session_is_its_keys_alone(guarded):
    proxy, bot = guarded
    status, headers, _ = send(proxy, "POST", body=INIT, headers=bearer(bot))
    assert status == 200
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    sid = {"Mcp-Session-Id": headers["Mcp-Session-Id"]}
    assert send(proxy, "POST", body=ping, headers={**sid, **bearer(ADMIN)})[0] == 404
    assert send(proxy, "POST", body=ping, headers={**sid, **bearer(bot)})[0] == 200
