"""`/mcp` is the proxy's own route only when MCP servers are configured; otherwise it is any other path."""

import re

from argoproxy.config.settings import load
from argoproxy.edge.paths import canonical
from argoproxy.serve.mcp_mount import mount_mcp
from argoproxy.serve.proxy import build_proxy


def test_without_mcp_servers_mcp_stays_a_forwarded_path(tmp_path):
    door = build_proxy(load({}, {"TARGET_BASE_URL": "http://127.0.0.1:9/v1"}, search=()).settings)
    assert mount_mcp(door) is None
    assert door.table.classify(canonical("/mcp")).family == "forward"


def test_with_mcp_servers_mcp_and_each_server_are_the_proxys(tmp_path, monkeypatch):
    monkeypatch.setenv("COT_PROXY_MCP_SOCKET", str(tmp_path / "no-supervisor.sock"))  # none is asked here
    settings = load({}, {"TARGET_BASE_URL": "http://127.0.0.1:9/v1", "MCP_SERVERS": '{"git": {"command": "true"}}'},
                    search=()).settings
    door = build_proxy(settings)
    assert mount_mcp(door) is not None
    assert [(r.family, r.path) for r in (door.table.classify(canonical(p)) for p in ("/mcp", "/MCP/git", "/mcp/x"))] \
        == [("mcp", "mcp"), ("mcp", "mcp/git"), ("mcp", "mcp/x")]
    assert door.table.classify(canonical("/mcp/git/deeper")).family != "mcp"


def mcp_app(tmp_path, monkeypatch):
    """The Flask app with MCP mounted, in front of no supervisor: only what the proxy answers itself is asked."""
    from argoproxy.serve.flask_app import create_app
    monkeypatch.setenv("COT_PROXY_MCP_SOCKET", str(tmp_path / "no-supervisor.sock"))
    settings = load({}, {"TARGET_BASE_URL": "http://127.0.0.1:9/v1", "MCP_SERVERS": '{"git": {"command": "true"}}'},
                    search=()).settings
    return create_app(settings)


def test_every_request_is_answered_without_flasks_dispatch(tmp_path, monkeypatch):
    """/mcp as every other route: the door answers, Flask's request dispatch (its hooks) never runs."""
    app = mcp_app(tmp_path, monkeypatch)
    entered = []
    app.before_request(lambda: entered.append(1) and None)
    client = app.test_client()
    assert client.post("/MCP/git", data=b"x", content_type="text/plain").status_code == 415
    assert client.get("/mcp?x=1").status_code == 406  # a GET stream must accept text/event-stream
    assert client.get("/v1/models").status_code == 502  # no upstream on port 9: the door's answer
    assert client.open("/v1/models", method="PROPFIND").status_code == 405  # a method Flask's map did not list
    client.post("/%6Dcp", data=b"x", content_type="text/plain")  # another spelling, the same door
    assert entered == []


def test_an_mcp_answer_is_the_same_whichever_spelling_of_its_path(tmp_path, monkeypatch):
    """HEAD's empty body with its Content-Length, the status line and every header, for /mcp and /%6Dcp alike."""
    client = mcp_app(tmp_path, monkeypatch).test_client()
    asked = [("HEAD", {}, b""), ("PUT", {}, b""), ("POST", {"Content-Type": "text/plain"}, b"x"),
             ("POST", {"Content-Type": "application/json"}, b"{not json"),
             ("POST", {"Content-Type": "application/json", "Accept": "text/html"}, b"{}"),
             ("DELETE", {}, b""), ("POST", {"Content-Type": "application/json"}, b'{"jsonrpc":"2.0","id":1,"method":"ping"}'),
             ("POST", {"Content-Type": "application/json", "Upgrade": "websocket", "Connection": "Upgrade"},
              b'{"jsonrpc":"2.0","id":1,"method":"ping"}')]  # Werkzeug's map refused this one before the door
    for method, headers, body in asked:
        direct, spelled = (client.open(path, method=method, headers=headers, data=body) for path in ("/mcp", "/%6Dcp"))
        assert seen(direct) == seen(spelled), method
        if method == "HEAD":
            assert direct.data == b"" and direct.headers["Content-Length"] != "0"


def test_a_bug_past_the_door_is_answered_in_openais_shape_with_its_request_id(tmp_path, monkeypatch, caplog):
    """A request whose handling raises past the door's own handler gets OpenAI's 500 with its request id, and the
    log names that id, whichever way it came."""
    app = mcp_app(tmp_path, monkeypatch)
    door = app.extensions["cot_proxy_door"]

    def broken(req):
        raise RuntimeError("a bug")

    monkeypatch.setattr(door, "handle", broken)
    client = app.test_client()
    for path in ("/mcp", "/%6Dcp"):
        response = client.post(path, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        rid = response.headers["X-Cot-Proxy-Request-ID"]
        assert response.status_code == 500 and response.json["error"]["code"] == "internal_error"
        assert response.json["error"]["request_id"] == rid, path
        assert f"unexpected error in request {rid}" in caplog.text, path


def seen(response):
    """A response as its client sees it, but for the request's own ids."""
    headers = [(k, v) for k, v in response.headers.items() if not k.lower().endswith("request-id")]
    return response.status, headers, re.sub(rb'"request_id":"[0-9a-f]+"', b"", response.data)
