"""Every server as one (`/mcp`) and one alone (`/mcp/<server>`), in-process with servers that are functions: the
listings renamed and filtered by the key's tool globs, a call taken back to its server under its own name, and a
tool outside the globs an error that reaches no server."""

from argoproxy.mcp import jsonrpc
from argoproxy.mcp.catalog import Catalog, tool_allowed

TOOLS = {"git": ["status", "log", "push"], "docs": ["read_page", "write_page", "x" * 70]}


class Servers:
    def __init__(self):
        self.calls = []

    def __call__(self, server, message):
        self.calls.append((server, message["method"], (message.get("params") or {}).get("name")))
        if message["method"] == "tools/list":
            return jsonrpc.result(message["id"], {"tools": [{"name": n, "inputSchema": {}} for n in TOOLS[server]]})
        if message["method"] == "prompts/list":
            return jsonrpc.error(message["id"], jsonrpc.METHOD_NOT_FOUND, "no prompts")
        return jsonrpc.result(message["id"], {"content": [{"type": "text", "text": f"{server}:{message['params']['name']}"}]})


def listed(catalog, globs=()):
    answer = catalog.listing({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, globs)
    return [t["name"] for t in answer["result"]["tools"]]


def test_globs_match_prefixed_names_one_of_each_group():
    assert tool_allowed("git__status", ())
    assert tool_allowed("git__status", (("git__*",),))
    assert not tool_allowed("git__status", (("docs__*",),))
    assert not tool_allowed("git__push", (("git__*",), ("git__status", "git__log")))  # within the team's


def test_the_listing_is_every_servers_renamed_and_filtered():
    servers = Servers()
    catalog = Catalog(("git", "docs"), servers)
    names = listed(catalog)
    assert names[:5] == ["git__status", "git__log", "git__push", "docs__read_page", "docs__write_page"]
    assert len(names[5]) == 64
    assert listed(catalog, (("git__*", "docs__read_*"),)) == ["git__status", "git__log", "git__push", "docs__read_page"]
    assert catalog.listing({"jsonrpc": "2.0", "id": 2, "method": "prompts/list"}, ())["result"] == {"prompts": []}


def test_a_call_goes_to_its_server_under_its_own_name():
    servers = Servers()
    catalog = Catalog(("git", "docs"), servers)
    answer = catalog.named_call({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                 "params": {"name": "git__status", "arguments": {}}}, ())
    assert answer["result"]["content"][0]["text"] == "git:status" and servers.calls == [("git", "tools/call", "status")]
    long = listed(catalog)[5]
    answer = catalog.named_call({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": long}}, ())
    assert answer["result"]["content"][0]["text"] == "docs:" + "x" * 70


def test_a_tool_outside_the_globs_reaches_no_server():
    servers = Servers()
    catalog = Catalog(("git", "docs"), servers)
    for message in ({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "git__push"}},):
        answer = catalog.named_call(message, (("git__status",),))
        assert answer["error"]["code"] == jsonrpc.INVALID_PARAMS and "not allowed" in answer["error"]["message"]
        answer = catalog.alone("git", {**message, "params": {"name": "push"}}, (("git__status",),))
        assert answer["error"]["code"] == jsonrpc.INVALID_PARAMS
    assert servers.calls == []


def test_one_server_alone_lists_only_the_allowed_under_their_own_names():
    catalog = Catalog(("git", "docs"), Servers())
    answer = catalog.alone("git", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, (("git__log",),))
    assert [t["name"] for t in answer["result"]["tools"]] == ["log"]


def test_an_unknown_name_or_server_is_invalid_params():
    servers = Servers()
    catalog = Catalog(("git",), servers)
    for name in ("svn__status", "status", 3):
        answer = catalog.named_call({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name}}, ())
        assert answer["error"]["code"] == jsonrpc.INVALID_PARAMS
    assert servers.calls == []
