"""A proxy without MCP servers never imports the MCP gateway (argoproxy/mcp/): its workers start without its 17
modules (serve/mcp_mount.py imports them only when `mcp_servers` names one)."""

from __future__ import annotations

from tests.unit.test_tracing_imports import run

LOADED = "print(sorted(m for m in sys.modules if m.startswith('argoproxy.mcp')))"
APP = ("import sys; from argoproxy.config.settings import load_settings; "
       "from argoproxy.serve.flask_app import create_app; create_app(load_settings()); ")


def test_a_worker_without_mcp_servers_loads_none_of_it(tmp_path):
    assert run(APP + LOADED, tmp_path) == "[]"
