"""`/mcp` is the proxy's own route only when MCP servers are configured; otherwise it is any other path."""

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
