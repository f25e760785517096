"""The supervisor's fan-out of what the servers send unasked (argoproxy/mcp/notices.py), in-process: who hears
what, under which names, and the bounds."""

from __future__ import annotations

import queue

from argoproxy.mcp import notices
from argoproxy.mcp.notices import LIST_CHANGED, UPDATED, Listener, Notices

TOOLS_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


def drained(listener: Listener) -> list:
    got = []
    while True:
        try:
            got.append(listener.queue.get_nowait())
        except queue.Empty:
            return got


def listener(hub: Notices, session: str, owner: str = "key:a", server: str | None = None, **given) -> Listener:
    made = hub.listen(session, owner, server, **given)
    assert isinstance(made, Listener), made
    return made


def test_a_list_change_reaches_the_whole_and_its_own_server_only():
    hub = Notices()
    whole, git, docs = listener(hub, "s1"), listener(hub, "s2", server="git"), listener(hub, "s3", server="docs")
    hub.publish("git", TOOLS_CHANGED)
    assert drained(whole) == [TOOLS_CHANGED] and drained(git) == [TOOLS_CHANGED] and drained(docs) == []


def test_a_resource_update_reaches_its_subscribers_under_the_uri_they_know():
    hub = Notices()
    assert hub.subscribe("s1", "git", "file:///a") is True
    assert hub.subscribe("s2", "git", "file:///a") is False  # held already: the server is not asked again
    whole, alone, other = listener(hub, "s1"), listener(hub, "s2", server="git"), listener(hub, "s3")
    hub.publish("git", {"jsonrpc": "2.0", "method": UPDATED, "params": {"uri": "file:///a"}})
    hub.publish("git", {"jsonrpc": "2.0", "method": UPDATED, "params": {"uri": "file:///b"}})
    assert drained(whole) == [{"jsonrpc": "2.0", "method": UPDATED, "params": {"uri": "mcp-proxy://git/file:///a"}}]
    assert drained(alone)[0]["params"]["uri"] == "file:///a" and drained(other) == []
    assert hub.unsubscribe("s1", "git", "file:///a") is False  # s2 still holds it
    assert hub.end("s2", "gone") == [("git", "file:///a")]  # its last holder: the server is told


def test_a_listen_requests_own_uris_and_kinds():
    hub = Notices()
    own = listener(hub, "stateless:1", kinds=frozenset({UPDATED}), uris=[("git", "file:///a")])
    hub.publish("git", TOOLS_CHANGED)
    hub.publish("git", {"jsonrpc": "2.0", "method": UPDATED, "params": {"uri": "file:///a"}})
    assert [m["method"] for m in drained(own)] == [UPDATED]
    assert hub.leave(own) == [("git", "file:///a")]


def test_log_messages_reach_only_sessions_that_asked_at_or_above_their_level():
    hub = Notices()
    assert hub.set_level("s1", None, "warning", ["git", "docs"]) == {"git": "warning", "docs": "warning"}
    assert hub.set_level("s2", "git", "debug", ["git"]) == {"git": "debug"}
    assert hub.set_level("s3", None, "error", ["git", "docs"]) == {}  # nobody's lowest changed
    warned, alone, silent = listener(hub, "s1"), listener(hub, "s2", server="git"), listener(hub, "s4")
    info = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}}
    error = {"jsonrpc": "2.0", "method": "notifications/message",
             "params": {"level": "error", "logger": "db", "data": "y"}}
    hub.publish("git", info)
    hub.publish("git", error)
    assert [m["params"]["logger"] for m in drained(warned)] == ["git/db"]
    assert [m["params"].get("logger") for m in drained(alone)] == [None, "db"]  # its own names at /mcp/git
    assert drained(silent) == []


def test_streams_are_bounded_per_owner_and_a_second_stream_of_a_session_replaces_the_first():
    hub = Notices(most=3, per_owner=2)  # MCP_STREAMS, MCP_STREAMS_PER_KEY
    first = listener(hub, "s1")
    again = listener(hub, "s1")
    assert first.ended and drained(first) == [None] and not again.ended
    listener(hub, "s2")
    assert "This key has 2 notification streams open already (MCP_STREAMS_PER_KEY)" in \
        str(hub.listen("s3", "key:a", None))
    listener(hub, "s4", owner="key:b")
    assert "The proxy has 3 notification streams open already (MCP_STREAMS)" in str(hub.listen("s5", "key:c", None))


def test_a_listener_that_falls_behind_is_ended_and_the_others_go_on(monkeypatch):
    monkeypatch.setattr(notices, "MAX_QUEUED", 3)
    hub = Notices()
    slow, quick = listener(hub, "s1"), listener(hub, "s2")
    for _ in range(5):
        hub.publish("git", TOOLS_CHANGED)
        drained(quick)
    assert slow.ended == "its client fell behind" and not quick.ended
    assert drained(slow)[-1] is None


def test_a_session_end_and_the_proxys_stop_end_their_streams():
    hub = Notices()
    one, two = listener(hub, "s1"), listener(hub, "s2")
    hub.end("s1", "The session ended.")
    assert one.ended == "The session ended." and not two.ended
    hub.close("stopping")
    assert two.ended == "stopping" and hub.listen("s3", "key:a", None) == "stopping"
    assert all(m in LIST_CHANGED | {UPDATED, "notifications/message"} for m in notices.KINDS)


def test_a_listener_narrowed_to_some_servers_hears_only_theirs():
    hub = Notices()
    narrowed = listener(hub, "s1", heard=frozenset({"git"}))
    hub.publish("docs", TOOLS_CHANGED)
    hub.publish("git", TOOLS_CHANGED)
    assert drained(narrowed) == [TOOLS_CHANGED]
