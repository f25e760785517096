"""Every server as one (`/mcp`) and one alone (`/mcp/<server>`), in-process with servers that are functions: the
listings renamed and filtered by the key's tool globs, a call taken back to its server under its own name, and a
tool outside the globs an error that reaches no server."""

from argoproxy.mcp import jsonrpc
import typing

import pytest

from argoproxy.mcp.catalog import LISTINGS, OWN, REACHED, Catalog, tool_allowed

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


class Everything(Servers):
    """Servers with prompts, resources and completions beside their tools: each request says what it reached."""

    def __call__(self, server, message):
        method = message["method"]
        if method in ("tools/list", "tools/call"):
            return super().__call__(server, message)
        self.calls.append((server, method, (message.get("params") or {}).get("name")))
        listed = {"prompts/list": {"prompts": [{"name": "hello"}]},
                  "resources/list": {"resources": [{"uri": f"file:///{server}/secret"}]},
                  "resources/templates/list": {"resourceTemplates": [{"uriTemplate": f"file:///{server}/{{x}}"}]}}
        return jsonrpc.result(message["id"], listed.get(method, {"reached": server}))


NARROW = (("git__status",),)  # reaches git (one tool allowed), not docs


def request(method, **params):
    return {"jsonrpc": "2.0", "id": 5, "method": method, "params": params}


def test_a_narrowed_key_lists_only_the_prompts_and_resources_of_servers_it_reaches():
    servers = Everything()
    catalog = Catalog(("git", "docs"), servers)
    assert catalog.listing(request("prompts/list"), NARROW)["result"]["prompts"] == [{"name": "git__hello"}]
    assert catalog.listing(request("resources/list"), NARROW)["result"]["resources"] == [
        {"uri": "mcp-proxy://git/file:///git/secret"}]
    templates = catalog.listing(request("resources/templates/list"), NARROW)["result"]["resourceTemplates"]
    assert templates == [{"uriTemplate": "mcp-proxy://git/file:///git/{x}"}]
    assert not [c for c in servers.calls if c[0] == "docs" and c[1] != "tools/list"]  # docs was asked its tools only
    assert len(catalog.listing(request("prompts/list"), ())["result"]["prompts"]) == 2  # no globs: every server's


def test_a_narrowed_key_gets_no_prompt_resource_or_completion_of_a_server_it_does_not_reach():
    servers = Everything()
    catalog = Catalog(("git", "docs"), servers)
    refused = [catalog.target(None, request("prompts/get", name="docs__hello"), NARROW),
               catalog.read_resource(request("resources/read", uri="mcp-proxy://docs/file:///docs/secret"), NARROW),
               catalog.routed("docs", request("resources/read", uri="file:///docs/secret"), NARROW),
               catalog.routed("docs", request("prompts/get", name="hello"), NARROW)]
    refused += [catalog.alone("docs", request(method, uri="file:///docs/secret"), NARROW)
                for method in ("completion/complete", "resources/subscribe", "logging/setLevel", "prompts/get")]
    for answer in refused:
        assert answer["error"]["code"] == jsonrpc.INVALID_PARAMS and "not allowed" in answer["error"]["message"]
    for method, member in (("prompts/list", "prompts"), ("resources/list", "resources")):
        assert catalog.alone("docs", request(method), NARROW)["result"] == {member: []}
    assert [c for c in servers.calls if c[0] == "docs"] == [("docs", "tools/list", None)]
    assert catalog.alone("git", request("completion/complete"), NARROW)["result"] == {"reached": "git"}
    assert catalog.target(None, request("prompts/get", name="git__hello"), NARROW) == (
        "git", request("prompts/get", name="hello"))


def test_a_method_not_known_is_refused_to_a_narrowed_key_and_passed_for_another():
    servers = Everything()
    catalog = Catalog(("git",), servers)
    answer = catalog.alone("git", request("vendor/secrets"), NARROW)
    assert answer["error"]["code"] == jsonrpc.METHOD_NOT_FOUND
    assert ("git", "vendor/secrets", None) not in servers.calls
    assert catalog.alone("git", request("vendor/secrets"), ())["result"] == {"reached": "git"}


def test_every_request_a_client_sends_is_held_or_the_proxys_own():
    """The official SDK's client requests, each one the catalog holds or the proxy answers itself: a method a later
    revision adds fails here until it is sorted into one or the other."""
    types = pytest.importorskip("mcp.types", reason="the official MCP SDK (requirements-dev.txt)")
    methods = {typing.get_args(kind.model_fields["method"].annotation)[0]
               for kind in typing.get_args(types.ClientRequest)}
    assert methods - OWN - REACHED - set(LISTINGS) - {"tools/call"} == set()


@pytest.mark.parametrize("method", sorted(REACHED | set(LISTINGS) - {"tools/list"}))
def test_each_held_method_reaches_no_server_the_key_does_not_reach(method):
    servers = Everything()
    answer = Catalog(("git", "docs"), servers).alone("docs", request(method, uri="file:///x", name="hello"), NARROW)
    assert answer.get("error", {}).get("code") == jsonrpc.INVALID_PARAMS or answer["result"] == {
        LISTINGS[method][0]: []}
    assert servers.calls == [("docs", "tools/list", None)]


@pytest.mark.parametrize("given", [[], ["x"], "text", None, 3, 2.5, True])
def test_arguments_that_are_no_object_are_refused_before_any_server(given):
    servers = Servers()
    catalog = Catalog(("git", "docs"), servers)
    for server, name in ((None, "git__status"), ("git", "status")):  # /mcp and /mcp/<server>
        for method in ("tools/call", "prompts/get"):
            message = {"jsonrpc": "2.0", "id": 9, "method": method, "params": {"name": name, "arguments": given}}
            answer = catalog.target(server, message, ())
            assert isinstance(answer, dict) and answer["error"]["code"] == jsonrpc.INVALID_PARAMS, answer
            assert "params.arguments must be an object" in answer["error"]["message"]
    assert servers.calls == []
    for fine in ({}, {"a": 1}):  # an object, or none given, goes on
        message = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "git__status", "arguments": fine}}
        assert catalog.target(None, message, ()) == ("git", {**message, "params": {**message["params"], "name": "status"}})
    assert catalog.target(None, {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "git__log"}}, ())[0] == "git"


def test_a_per_person_servers_refusal_leaves_it_out_of_the_listing_without_a_warning(caplog):
    """A person not connected to a per_user server (or a key no person owns) lists tools: the server is left out, as
    docs/mcp-credentials.md says, and that is their state, not a failure: it used to log a warning at each listing."""
    def servers(server, message):
        if server == "gh":
            return jsonrpc.error(message["id"], jsonrpc.INVALID_REQUEST, "Connect your account to gh first")
        if server == "docs":
            return jsonrpc.error(message["id"], jsonrpc.INVALID_REQUEST, "broken")
        return Servers()(server, message)
    with caplog.at_level("WARNING", logger="cot_proxy"):
        assert listed(Catalog(("git", "gh", "docs"), servers, frozenset({"gh"}))) == ["git__status", "git__log",
                                                                                     "git__push"]
    assert [r.getMessage()[:30] for r in caplog.records] == ["mcp server docs: tools/list fa"]  # a shared one's: said
