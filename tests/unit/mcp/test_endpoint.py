"""The endpoint in-process, its supervisor a stand-in: with auth off only this machine's clients are answered,
and the HTTP framing (content type, sessions, protocol version, methods) is refused as the specification says."""

import json

from argoproxy.edge.http_objects import Request
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.endpoint import McpEndpoint
from argoproxy.mcp.link import SessionRefused
from argoproxy.mcp.listening import StreamSlots

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}


class StandIn:
    """The supervisor's side of the link: sessions, and servers that answer every call."""

    def __init__(self):
        self.sessions, self.calls, self.trips, self.keys = {}, [], 0, []

    def session(self, action, **fields):
        self.trips += 1
        if action == "new":
            sid = f"s{len(self.sessions)}"
            self.sessions[sid] = fields
            return {"id": sid}
        known = self.sessions.get(fields["id"])
        if known is None or known["owner"] != fields["owner"]:
            return {}
        if action == "end":
            del self.sessions[fields["id"]]
        return {"version": known["version"]}

    def call(self, server, message, timeout, session="", owner=None, key=""):
        self.trips += 1
        self.keys.append(owner if owner is not None else key)  # whose the call is, said with it
        known = self.sessions.get(session)
        if owner is not None and (known is None or known["owner"] != owner):  # as the supervisor checks it
            raise SessionRefused(session)
        self.calls.append((server, message["method"], session))
        return jsonrpc.result(message["id"], {"tools": []})

    def relaying(self, server, message, timeout, session="", owner=None, key="", relay=None):
        return self.call(server, message, timeout, session, owner, key), None  # a server that asks nothing

    def cancel(self, session, request_id):
        self.calls.append(("cancel", request_id, session))
        return True  # passed on (False: lost, Redis away)

    def status(self):
        return [{"name": "git", "capabilities": {"tools": {"listChanged": True}, "experimental": {}}}]


def endpoint(auth_on=False):
    return McpEndpoint(("git",), StandIn(), auth_on=auth_on, unix_socket=False, call_timeout=5)


def post(mcp, body, headers=None, peer="127.0.0.1", server=None, owner="local"):
    req = Request.of("POST", "/mcp", json.dumps(body).encode() if not isinstance(body, bytes) else body,
                     {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                      **(headers or {})})
    req.peer = (peer, "5555")
    answer = mcp.answer(req, server, owner, ())
    data = answer.get_data()
    return answer.status_code, answer.headers, json.loads(data) if data else None


def test_with_auth_off_only_this_machines_clients_are_answered():
    mcp = endpoint()
    assert post(mcp, INIT, peer="10.1.2.3")[0] == 403
    assert post(mcp, INIT, peer="::1")[0] == 200
    assert post(endpoint(auth_on=True), INIT, peer="10.1.2.3")[0] == 200  # the door checked its key


def test_initialize_answers_the_revision_asked_and_opens_a_session():
    status, headers, body = post(endpoint(), INIT)
    assert status == 200 and headers["Mcp-Session-Id"] == "s0"
    assert body["result"]["protocolVersion"] == "2025-06-18" and body["result"]["serverInfo"]["name"] == "cot_proxy"
    unknown = {**INIT, "params": {"protocolVersion": "2099-01-01"}}
    assert post(endpoint(), unknown)[2]["result"]["protocolVersion"] == "2025-11-25"


def test_one_server_alone_says_its_own_capabilities():
    body = post(endpoint(), INIT, server="git")[2]
    assert body["result"]["capabilities"] == {"tools": {"listChanged": True}}
    assert post(endpoint(), INIT, server="svn")[0] == 404


def test_framing_errors():
    mcp = endpoint()
    assert post(mcp, INIT, {"Content-Type": "text/plain"})[0] == 415
    assert post(mcp, INIT, {"Accept": "text/html"})[0] == 406
    sid = post(mcp, INIT)[1]["Mcp-Session-Id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert post(mcp, note, {"Mcp-Session-Id": sid})[0] == 202
    assert post(mcp, note, {"Mcp-Session-Id": sid}, owner="someone else")[0] == 404
    listed = post(mcp, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, {"Mcp-Session-Id": sid})
    assert listed[0] == 200 and listed[2] == {"jsonrpc": "2.0", "id": 2, "result": {"tools": []}}
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}
    assert post(mcp, cancel, {"Mcp-Session-Id": sid})[0] == 202
    assert mcp.link.calls[-2:] == [("git", "tools/list", sid), ("cancel", 2, sid)]
    req = Request.of("GET", "/mcp", headers={"Accept": "text/event-stream"})
    req.peer = ("127.0.0.1", "1")
    assert mcp.answer(req, None, "local", ()).status_code == 400  # a GET stream is a session's: none sent
    mcp.streams = StreamSlots(0)  # a sync worker offers none: one stream would hold the worker
    answer = mcp.answer(req, None, "local", ())
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST, DELETE"


def test_a_tool_call_is_one_debug_line_without_its_arguments(caplog):
    import logging
    mcp = endpoint()
    sid = post(mcp, INIT, owner="key:bot")[1]["Mcp-Session-Id"]
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "git__status", "arguments": {"secret": "do-not-log-me"}}}
    with caplog.at_level(logging.DEBUG, logger="cot_proxy"):
        post(mcp, call, {"Mcp-Session-Id": sid}, owner="key:bot")
    lines = [r.getMessage() for r in caplog.records if "tools/call" in r.getMessage()]
    assert len(lines) == 1 and 'tool="git__status" key=key:bot status=ok' in lines[0], lines
    assert "do-not-log-me" not in caplog.text


def test_a_tool_calls_session_is_checked_on_the_calls_own_trip():
    """A tool call's one trip to the supervisor carries its session and owner (no trip of its own to ask about the
    session first); a request that calls no server asks on its own, and an ended session is a 404 either way."""
    mcp = endpoint()
    sid = post(mcp, INIT, owner="key:bot")[1]["Mcp-Session-Id"]
    call = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "git__status", "arguments": {}}}
    post(mcp, call, {"Mcp-Session-Id": sid}, owner="key:bot")  # the first also reads the tools' names (labels)
    before = mcp.link.trips
    assert post(mcp, call, {"Mcp-Session-Id": sid}, owner="key:bot")[0] == 200
    assert mcp.link.trips - before == 1
    before = mcp.link.trips
    assert post(mcp, {"jsonrpc": "2.0", "id": 5, "method": "ping"}, {"Mcp-Session-Id": sid}, owner="key:bot")[0] == 200
    assert mcp.link.trips - before == 1
    refused = {"jsonrpc": "2.0", "id": 4, "error": {"code": jsonrpc.INVALID_REQUEST,
                                                     "message": "Unknown or ended session: initialize again."}}
    status, _, answer = post(mcp, call, {"Mcp-Session-Id": sid}, owner="key:other")
    assert (status, answer) == (404, refused)
    answered_here = {**call, "params": {"name": "svn__status", "arguments": {}}}  # no such server: no call made
    long_name = {**call, "params": {"name": "git__" + "x" * 70, "arguments": {}}}  # its server's listing read first
    mcp.link.sessions[sid]["owner"] = "gone"  # ended, as by a DELETE on another worker
    calls = list(mcp.link.calls)
    for body in (call, answered_here, long_name, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"},
                 {"jsonrpc": "2.0", "id": 4, "method": "ping"}):
        status, _, answer = post(mcp, body, {"Mcp-Session-Id": sid}, owner="key:bot")
        assert (status, answer) == (404, refused), body
    assert mcp.link.calls == calls  # nothing reached a server


class Telling(StandIn):
    """Servers each with one tool, `status`; the session requests the supervisor is told, kept."""

    def __init__(self):
        super().__init__()
        self.told = []

    def call(self, server, message, timeout, session="", owner=None, key=""):
        super().call(server, message, timeout, session, owner, key)
        return jsonrpc.result(message["id"], {"tools": [{"name": "status"}]})

    def tell(self, request):
        self.told.append(request)
        return {}


def test_a_narrowed_keys_log_level_at_mcp_is_for_the_servers_it_reaches_alone():
    """The supervisor sets the servers in "heard" only (supervisor.py's `leveled`); a key without globs, or a
    request at /mcp/<server> (its reach checked first), names none: every server, or that one."""
    from argoproxy.mcp.listening import session_request
    link = Telling()
    mcp = McpEndpoint(("git", "docs"), link, auth_on=True, unix_socket=False, call_timeout=5)
    message = {"jsonrpc": "2.0", "id": 3, "method": "logging/setLevel", "params": {"level": "debug"}}
    for server, globs in ((None, (("git__*",),)), (None, ()), ("git", (("git__*",),))):
        assert session_request(mcp, "s", message, server, "key:bot", globs) == jsonrpc.result(3, {})
    assert [(t["server"], t.get("heard")) for t in link.told] == [(None, ["git"]), (None, None), ("git", None)]
