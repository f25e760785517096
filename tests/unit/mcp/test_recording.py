"""What a tool call leaves behind (argoproxy/mcp/recording.py), in-process: how a call ended, which names become
metric labels (only a configured server's listed tools, its listing read again at most once a minute, at most
TOOL_LABEL_CAP), and the execute_tool span's attributes."""

from __future__ import annotations

from argoproxy.mcp import recording
from argoproxy.mcp.recording import OTHER, ToolCall, ToolNames, outcome_of, span_of


def test_how_a_call_ended():
    assert outcome_of({"result": {"content": []}}) == ("ok", None)
    assert outcome_of({"result": {"content": [], "isError": True}}) == ("tool_error", None)
    assert outcome_of({"result": {"isError": "yes"}}) == ("ok", None)  # only true is an error
    assert outcome_of({"error": {"code": -32602, "message": "no"}}) == ("error", -32602)
    assert outcome_of({"error": {"code": "bad"}}) == ("error", -32603)  # a code that is no integer: internal
    assert outcome_of({"error": {"code": True}}) == ("error", -32603)


def test_a_name_is_a_label_only_once_its_server_lists_it(monkeypatch):
    asked = []
    names = ToolNames(lambda server: asked.append(server) or ["status", "diff"])
    assert names.label("git", "status", answered=True) == "git__status"
    assert names.label("git", "diff", answered=False) == "git__diff"  # known now: no listing needed
    assert names.label("git", "made_up", answered=True) == OTHER  # answered, but not listed
    assert names.label(None, None, answered=False) == OTHER  # it ended at the proxy
    assert names.label("time", "now", answered=False) == OTHER  # an error answer never reads a listing
    assert asked == ["git"]  # the made-up name did not read it again within the minute
    clock = [1e6]
    monkeypatch.setattr(recording.time, "monotonic", lambda: clock[0])
    names.read_at["git"] = clock[0]
    assert names.label("git", "made_up", answered=True) == OTHER and asked == ["git"]
    clock[0] += recording.RELIST_AFTER
    assert names.label("git", "made_up", answered=True) == OTHER and asked == ["git", "git"]


def test_a_call_refused_at_the_proxy_is_labelled_by_the_tool_it_named():
    """A key's call outside its --tools globs (or over its limits) ends at the proxy: recorded under the tool it
    named once that tool's server listed it (it was `other` whatever it named); a made-up name stays `other`, and
    no refused call reads a listing."""
    asked = []
    names = ToolNames(lambda server: asked.append(server) or ["status"])
    assert names.label(None, None, answered=False, sent="git__status") == OTHER  # not listed yet: nothing read
    assert asked == [] and names.label("git", "status", answered=True) == "git__status"
    assert names.label(None, None, answered=False, sent="git__status") == "git__status"
    assert names.label(None, None, answered=False, sent="git__made_up") == OTHER
    assert names.label(None, None, answered=False, sent="nogit__status") == OTHER
    assert asked == ["git"]


def test_labels_are_bounded(monkeypatch):
    monkeypatch.setattr(recording, "TOOL_LABEL_CAP", 3)
    names = ToolNames(lambda server: [f"t{n}" for n in range(10)])
    assert names.label("s", "t0", answered=True) in ("s__t0", OTHER)
    assert names.count == 3 and sum(names.label("s", f"t{n}", answered=False) != OTHER for n in range(10)) == 3


def call(**changed) -> ToolCall:
    fields = dict(server="git", tool="git__status", label="git__status", id=7, key=None, outcome="ok", code=None,
                  start_ns=1, seconds=0.5, bytes_in=10, bytes_out=20)
    return ToolCall(**{**fields, **changed})


def test_the_span_of_a_call():
    name, attributes, error = span_of(call())
    assert (name, error) == ("execute_tool git__status", None)
    assert attributes == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "git__status",
                          "gen_ai.tool.type": "extension", "gen_ai.tool.call.id": "7", "mcp.method.name": "tools/call",
                          "jsonrpc.request.id": "7", "cot_proxy.mcp.server": "git"}
    name, attributes, error = span_of(call(server=None, tool="nobody__x", label=OTHER, key="ci-bot", outcome="error",
                                           code=-32602, id="x" * 200))
    assert (name, error) == ("execute_tool other", "-32602")
    assert attributes["cot_proxy.key.name"] == "ci-bot" and attributes["rpc.response.status_code"] == "-32602"
    assert attributes["cot_proxy.mcp.server"] == "none" and len(attributes["jsonrpc.request.id"]) == 64
    assert span_of(call(outcome="tool_error"))[2] == "tool_error"
