"""The MCP gateway with auth on, through the running app: the same keys as the model routes; a team key's
`--tools` globs limit what it lists and calls (a tool outside them is an MCP error and nothing reaches the
server), and the prompts, resources and completions it reaches (only its servers where they allow a tool), at
`/mcp` and `/mcp/<server>`; no key is a 401 with `WWW-Authenticate: Bearer`; a session belongs to the key that
opened it."""

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


KEYS: dict[str, str] = {}  # the module's team keys beside `bot`, by name


@pytest.fixture(scope="module")
def guarded(module_fake, tmp_path_factory):
    db = tmp_path_factory.mktemp("mcp_keys") / "keys.db"
    bot = create(db, "bot", "--tools", "fake__echo,fake__whoami,other__*")
    KEYS["narrow"] = create(db, "narrow", "--tools", "fake__echo,fake__status")  # reaches fake, not other
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


async def refused(call):
    """The MCP error a call ends with (None: it was answered)."""
    try:
        await call
    except MCPError as err:
        return err.error.code, err.error.message
    return None


@pytest.mark.filterwarnings("ignore:.*(2026-07-28|deprecated)")  # the methods it still has
def test_a_narrowed_key_reads_no_other_servers_prompt_or_resource_at_mcp(guarded):
    proxy, _ = guarded

    async def work(session):
        from mcp.types import PromptReference, ResourceTemplateReference
        listed = ([p.name for p in (await session.list_prompts()).prompts],
                  [str(r.uri) for r in (await session.list_resources()).resources],
                  [t.uri_template for t in (await session.list_resource_templates()).resource_templates])
        own = (await session.get_prompt("fake__greet", {"name": "Ada"})).messages[0].content.text
        read = (await session.read_resource("mcp-proxy://fake/fake://readme")).contents[0].text
        refusals = [await refused(session.get_prompt("other__greet", {"name": "Ada"})),
                    await refused(session.read_resource("mcp-proxy://other/fake://readme")),
                    await refused(session.subscribe_resource("mcp-proxy://other/fake://readme")),
                    await refused(session.complete(PromptReference(type="ref/prompt", name="other__greet"),
                                                   {"name": "name", "value": "A"})),
                    await refused(session.complete(ResourceTemplateReference(type="ref/resource",
                                                                             uri="mcp-proxy://other/fake://notes/{id}"),
                                                   {"name": "id", "value": "1"}))]
        return listed, own, read, refusals

    (prompts, resources, templates), own, read, refusals = sdk(proxy.url + "/mcp", KEYS["narrow"], work)
    assert prompts == ["fake__greet"]
    assert resources == ["mcp-proxy://fake/fake://readme"] and templates == ["mcp-proxy://fake/fake://notes/{id}"]
    assert own == "Hello, Ada!" and read == "read fake://readme"
    for code, message in refusals[:3]:
        assert code == -32602 and "not allowed for this key" in message
    assert all(r is not None for r in refusals[3:])  # /mcp serves no completions: to no server


@pytest.mark.filterwarnings("ignore:.*(2026-07-28|deprecated)")  # the methods it still has
def test_a_narrowed_key_reaches_nothing_of_another_server_alone(guarded):
    proxy, _ = guarded

    async def work(session):
        from mcp.types import PromptReference
        listed = ((await session.list_tools()).tools, (await session.list_prompts()).prompts,
                  (await session.list_resources()).resources,
                  (await session.list_resource_templates()).resource_templates)
        refusals = [await refused(session.get_prompt("greet", {"name": "Ada"})),
                    await refused(session.read_resource("fake://readme")),
                    await refused(session.subscribe_resource("fake://readme")),
                    await refused(session.set_logging_level("debug")),
                    await refused(session.complete(PromptReference(type="ref/prompt", name="greet"),
                                                   {"name": "name", "value": "A"}))]
        return listed, refusals

    listed, refusals = sdk(proxy.url + "/mcp/other", KEYS["narrow"], work)
    assert listed == ([], [], [], [])
    for code, message in refusals:
        assert code == -32602 and "not allowed for this key" in message


def test_a_narrowed_keys_servers_and_unknown_methods_are_held(guarded):
    proxy, _ = guarded
    key = bearer(KEYS["narrow"])
    status, headers, _ = send(proxy, "POST", body=INIT, headers=key)
    sid = {"Mcp-Session-Id": headers["Mcp-Session-Id"], **key}
    _, _, states = send(proxy, "POST", body={"jsonrpc": "2.0", "id": 2, "method": "cot_proxy/servers"}, headers=sid)
    assert [s["name"] for s in states["result"]["servers"]] == ["fake"]
    status, headers, _ = send(proxy, "POST", "/mcp/fake", INIT, key)
    sid = {"Mcp-Session-Id": headers["Mcp-Session-Id"], **key}
    _, _, unknown = send(proxy, "POST", "/mcp/fake", {"jsonrpc": "2.0", "id": 3, "method": "vendor/secrets"}, sid)
    assert unknown["error"]["code"] == -32601 and "limited to some tools" in unknown["error"]["message"]
    _, _, allowed = send(proxy, "POST", "/mcp/fake", {"jsonrpc": "2.0", "id": 4, "method": "prompts/get",
                                                      "params": {"name": "greet", "arguments": {"name": "B"}}}, sid)
    assert allowed["result"]["messages"][0]["content"]["text"] == "Hello, B!"


def test_a_narrowed_key_is_held_alike_at_2026_07_28(guarded):
    from tests.integration.test_mcp_stateless import post
    proxy, _ = guarded
    key = KEYS["narrow"]
    prompt = post(proxy, {"jsonrpc": "2.0", "id": 5, "method": "prompts/get",
                          "params": {"name": "other__greet", "arguments": {"name": "C"}}}, key=key)
    read = post(proxy, {"jsonrpc": "2.0", "id": 6, "method": "resources/read", "params": {"uri": "fake://readme"}},
                path="/mcp/other", key=key)
    for answer in (prompt, read):
        assert answer.status_code == 400 and answer.json()["error"]["code"] == -32602
    listed = post(proxy, {"jsonrpc": "2.0", "id": 7, "method": "resources/list"}, key=key).json()["result"]
    assert [r["uri"] for r in listed["resources"]] == ["mcp-proxy://fake/fake://readme"]
