"""`mcp_servers`: a bad entry stops start-up with one line naming the key."""

import json

import pytest

from argoproxy.config.mcp_servers import McpServer, parse_mcp_servers
from argoproxy.config.settings import SettingsError, load


def loaded(tmp_path, entries, environ=None):
    (tmp_path / "config.yaml").write_text(json.dumps({"mcp_servers": entries}))
    return load({"config_path": str(tmp_path / "config.yaml")}, environ or {}).settings


def test_stdio_and_remote_entries_are_read(tmp_path):
    settings = loaded(tmp_path, {"git": {"command": "uvx", "args": ["mcp-server-git"], "env": {"TZ": "UTC"}},
                                 "docs": {"url": "https://mcp.example.com/mcp", "bearer_token_env": "DOCS_TOKEN"}},
                      {"DOCS_TOKEN": "t0ken-value-long"})
    git, docs = settings.mcp_servers
    assert git == McpServer("git", "uvx", ("mcp-server-git",), (("TZ", "UTC"),))
    assert docs.url == "https://mcp.example.com/mcp" and not docs.stdio
    assert settings.mcp_servers.as_written()["git"]["env"] == {"TZ": "***"}  # --show: no value of its env


def test_a_per_session_server_warns_of_nothing_and_its_bounds_are_settings(tmp_path):
    """A per_session server is served (no warning); its bounds are one YAML key and one variable each, a bad one
    stops start-up naming it, and given without any per_session server they are a warning."""
    (tmp_path / "config.yaml").write_text(json.dumps({"mcp_servers": {
        "docs": {"url": "https://mcp.example.com/mcp", "transport": "sse"}, "git": {"command": "x", "per_session": True}},
        "mcp_session_processes": 8}))
    loaded = load({"config_path": str(tmp_path / "config.yaml")}, {"MCP_SESSION_PROCESSES_PER_KEY": "2"})
    assert not any(w.startswith("mcp_servers.") for w in loaded.warnings), loaded.warnings
    assert (loaded.settings.mcp_session_processes, loaded.settings.mcp_session_processes_per_key) == (8, 2)
    assert loaded.settings.mcp_servers.named("docs").transport == "sse"
    assert loaded.settings.mcp_servers.as_written()["docs"]["transport"] == "sse"
    for environ, named in (({"MCP_SESSION_PROCESSES": "0"}, "MCP_SESSION_PROCESSES"),
                           ({"MCP_SESSION_PROCESSES_PER_KEY": "many"}, "MCP_SESSION_PROCESSES_PER_KEY")):
        with pytest.raises(SettingsError, match=named):
            load({"config_path": str(tmp_path / "config.yaml")}, environ)
    (tmp_path / "config.yaml").write_text(json.dumps({"mcp_servers": {"git": {"command": "x"}},
                                                      "mcp_session_processes": 8}))
    shared = load({"config_path": str(tmp_path / "config.yaml")}, {})
    assert any("mcp_session_processes" in w and "per_session" in w for w in shared.warnings), shared.warnings


def test_the_environment_variable_takes_json():
    assert parse_mcp_servers('{"time": {"command": "mcp-server-time"}}')[0].command == "mcp-server-time"


@pytest.mark.parametrize("entries, named", [
    ({"Git": {"command": "x"}}, "mcp_servers.Git"),
    ({"git__x": {"command": "x"}}, "mcp_servers.git__x"),
    ({"a_": {"command": "x"}}, "mcp_servers.a_"),  # its tools would read a___echo, which a key's `a__*` matches
    ({"a" * 33: {"command": "x"}}, "mcp_servers." + "a" * 33),
    ({"git": {"command": "x", "url": "http://h/mcp"}}, "mcp_servers.git"),
    ({"git": {}}, "mcp_servers.git"),
    ({"git": {"command": "x", "colour": 1}}, "mcp_servers.git.colour"),
    ({"git": {"command": "x", "args": "one string"}}, "mcp_servers.git.args"),
    ({"git": {"command": "x", "env": {"A B": "1"}}}, "mcp_servers.git.env"),
    ({"git": {"command": "x", "headers": {"X": "1"}}}, "mcp_servers.git.headers"),
    ({"docs": {"url": "ftp://h/mcp"}}, "mcp_servers.docs.url"),
    ({"docs": {"url": "https://user:pw@h/mcp"}}, "mcp_servers.docs.url"),
    ({"docs": {"url": "https://h/mcp", "headers": {"Mcp-Session-Id": "x"}}}, "mcp_servers.docs.headers"),
    ({"docs": {"url": "https://h/mcp", "headers": {"X-A": "a\nb"}}}, "mcp_servers.docs.headers.X-A"),
    ({"docs": {"url": "https://h/mcp", "bearer_token_env": "UNSET_TOKEN"}}, "mcp_servers.docs.bearer_token_env"),
    ({"docs": {"url": "https://h/mcp", "transport": "websocket"}}, "mcp_servers.docs.transport"),
    ({"git": {"command": "x", "transport": "sse"}}, "mcp_servers.git.transport"),
    ({"git-x": {"command": "x"}, "git_x": {"command": "y"}}, "mcp_servers.git_x"),
    (["git"], "mcp_servers"),
])
def test_a_bad_entry_stops_start_up_with_one_line_naming_it(tmp_path, entries, named):
    with pytest.raises(SettingsError) as caught:
        loaded(tmp_path, entries)
    line = str(caught.value)
    assert line.startswith(named + ":") and "\n" not in line
    assert "pw" not in line


def test_the_stream_bounds_are_settings(tmp_path):
    """MCP_STREAMS and MCP_STREAMS_PER_KEY: one YAML key and one variable each, a bad one stops start-up naming
    it, and given without any MCP server they are a warning."""
    (tmp_path / "config.yaml").write_text(json.dumps({"mcp_servers": {"git": {"command": "x"}}, "mcp_streams": 64}))
    read = load({"config_path": str(tmp_path / "config.yaml")}, {"MCP_STREAMS_PER_KEY": "4"})
    assert (read.settings.mcp_streams, read.settings.mcp_streams_per_key) == (64, 4)
    assert not any("mcp_streams" in w for w in read.warnings), read.warnings
    for environ, named in (({"MCP_STREAMS": "0"}, "MCP_STREAMS"), ({"MCP_STREAMS_PER_KEY": "many"},
                                                                    "MCP_STREAMS_PER_KEY")):
        with pytest.raises(SettingsError, match=named) as refused:
            load({"config_path": str(tmp_path / "config.yaml")}, environ)
        assert "\n" not in str(refused.value)
    (tmp_path / "config.yaml").write_text(json.dumps({"mcp_streams": 64}))
    unused = load({"config_path": str(tmp_path / "config.yaml")}, {})
    assert any("mcp_streams" in w and "mcp_servers" in w for w in unused.warnings), unused.warnings
