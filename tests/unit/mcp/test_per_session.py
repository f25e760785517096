"""A per_session server's processes (argoproxy/mcp/per_session.py), in-process with stand-in processes: one per
session (or per key for a 2026-07-28 caller), bounded per server and per key, never another key's, stopped when
its session ends, its key's end, or it is idle."""

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.per_session import IDLE_SECONDS, Bounds, PerSession


class StandIn:
    """A StdioServer that answers each call with which one it is."""
    made = 0

    def __init__(self, server, home):
        StandIn.made += 1
        self.number, self.home, self.restarts, self.initialized = StandIn.made, home, 0, {}
        self.stopped = False

    def start(self):
        pass

    def stop(self):
        self.stopped = True

    def call(self, message, timeout, wait_ready=True, on_note=None, session=""):
        return jsonrpc.result(message["id"], {"process": self.number})

    def cancel(self, session, client_id):
        return False


def server(most=3, per_key=2, owners=None):
    return PerSession(McpServer("mine", "x", per_session=True), "/nonexistent/home", Bounds(most, per_key),
                      make=StandIn, owner_of=(owners or {}).get)


def which(s, session, owner=""):
    answer = s.call({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}, 5, session=session, owner=owner)
    return answer["result"]["process"] if "result" in answer else answer["error"]


def test_a_process_per_session_bounded_per_key_and_per_server():
    s = server()
    a1, a2 = which(s, "s1", "key:a"), which(s, "s2", "key:a")
    assert a1 != a2 and which(s, "s1", "key:a") == a1
    refused = which(s, "s3", "key:a")
    assert refused["code"] == -32029 and "MCP_SESSION_PROCESSES_PER_KEY" in refused["message"]
    b1 = which(s, "s4", "key:b")
    full = which(s, "s5", "key:b")
    assert full["code"] == -32029 and "(MCP_SESSION_PROCESSES)" in full["message"] and b1 not in (a1, a2)
    assert s.status()["processes"] == 3
    assert s.end("s1") and which(s, "s5", "key:b") not in (a1, a2, b1)


def test_another_keys_call_never_reaches_a_sessions_process():
    s = server()
    which(s, "s1", "key:a")
    assert which(s, "s1", "key:b")["code"] == -32029
    assert s.status()["processes"] == 1


def test_a_stateless_callers_calls_share_its_keys_process_and_the_proxys_own_need_one_running():
    s = server()
    assert which(s, "")["code"] == jsonrpc.SERVER_UNAVAILABLE  # no session, no key: nothing is started
    mine = which(s, "stateless:1", "key:a")
    assert which(s, "stateless:2", "key:a") == mine and which(s, "stateless:3", "key:b") != mine
    listed = s.call({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, 5)
    assert "result" in listed  # the proxy's own listing: any running process answers it


def test_the_supervisors_word_on_a_sessions_owner_picks_its_process():
    s = server(owners={"s1": "key:a"})
    first = which(s, "s1")  # no key said (the supervisor's own call): the session's owner, as it knows it
    assert which(s, "s1", "key:a") == first and which(s, "s1", "key:b")["code"] == -32029


def test_processes_stop_when_idle_and_with_their_key():
    s = server()
    which(s, "s1", "key:a")
    which(s, "s2", "key:b")
    running = {p.owner: p for p in s.running.values()}
    assert not s.reap() and s.reap(now=running["key:a"].used + IDLE_SECONDS + 1)
    assert s.status()["processes"] == 0
    which(s, "s3", "key:a")
    assert s.end_owner("key:a") and s.status()["processes"] == 0


def test_the_proxys_stop_stops_every_process():
    s = server()
    which(s, "s1", "key:a")
    which(s, "s2", "key:b")
    made = [p.server for p in s.running.values()]
    s.stop()
    assert all(p.stopped for p in made) and s.status()["processes"] == 0


def test_a_processs_notifications_are_heard_by_its_own_sessions_listeners_alone():
    s, told = server(), []
    s.on_notice = lambda message, only: told.append(only)
    which(s, "s1", "key:a")
    which(s, "stateless:1", "key:b")  # a 2026-07-28 caller's: its key's process
    for process in list(s.running.values()):
        process.server.on_notice({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    session, key = told
    assert session("s1", "key:a") and not session("s2", "key:a") and not session("s1", "key:b")
    assert not session("stateless:9", "key:a")
    assert key("stateless:9", "key:b") and not key("stateless:9", "key:a") and not key("s1", "key:b")
