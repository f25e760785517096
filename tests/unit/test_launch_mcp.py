"""`cot-proxy run`'s MCP wiring (argoproxy/launch/agents.py): with a proxy that serves /mcp, each agent that speaks
MCP is given the proxy's endpoint and the run's key, as the server `cot_proxy`, the way it reads one (Claude Code:
--mcp-config; Codex: an mcp_servers override and its bearer-token variable; Gemini CLI: its system settings file;
OpenCode: its config file), only in files of the run's scratch directory; Aider gets nothing; a proxy that does
not serve /mcp gets no MCP entry at all. And `mcp list`'s lines."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from argoproxy.launch.agents import AGENTS, KEY_ENV, MCP_SERVER, AgentTarget
from argoproxy.launch.mcp_gateway import Server
from argoproxy.launch.mcp_list import line

KEY = "sk-run-key-of-the-test-0123456789"
URL = "http://127.0.0.1:5999"


def setup_for(name: str, scratch: Path, mcp: bool = True, args: list[str] | None = None):
    return AGENTS[name].setup(AgentTarget(URL, KEY, "m", 32000, mcp=mcp), args or [], scratch)


def only_in_scratch(setup, scratch: Path) -> None:
    assert all(path.parent == scratch for path in setup.files), setup.files


def test_claude_code_gets_an_mcp_config_file_beside_the_users_servers(tmp_path):
    setup = setup_for("claude", tmp_path, args=["-p", "hi"])
    config = tmp_path / "claude-mcp.json"
    # With `=`: the option takes many values, and a prompt after it would be read as a file.
    assert setup.argv == ["claude", f"--mcp-config={config}", "-p", "hi"]
    assert "--strict-mcp-config" not in setup.argv  # the user's own servers stay
    assert json.loads(setup.files[config]) == {"mcpServers": {MCP_SERVER: {
        "type": "http", "url": f"{URL}/mcp", "headers": {"Authorization": f"Bearer {KEY}"}}}}
    only_in_scratch(setup, tmp_path)


def test_codex_gets_one_more_mcp_servers_entry_with_its_token_from_a_variable(tmp_path):
    setup = setup_for("codex", tmp_path)
    overrides = [setup.argv[i + 1] for i, a in enumerate(setup.argv) if a == "-c"]
    ours = [o for o in overrides if o.startswith("mcp_servers.")]
    assert len(ours) == 1
    assert tomllib.loads(ours[0]) == {"mcp_servers": {MCP_SERVER: {
        "url": f"{URL}/mcp", "bearer_token_env_var": KEY_ENV}}}  # a dotted key: the user's other servers stay
    assert setup.env[KEY_ENV] == KEY and KEY not in " ".join(setup.argv)
    assert setup.files == {}


def test_gemini_cli_gets_the_server_in_its_system_settings_file(tmp_path):
    setup = setup_for("gemini", tmp_path)
    path = Path(setup.env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"])
    settings = json.loads(setup.files[path])
    assert settings["mcpServers"] == {MCP_SERVER: {"httpUrl": f"{URL}/mcp",
                                                   "headers": {"Authorization": f"Bearer {KEY}"}}}
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    only_in_scratch(setup, tmp_path)


def test_opencode_gets_a_remote_server_in_its_run_config(tmp_path):
    setup = setup_for("opencode", tmp_path)
    config = json.loads(setup.files[Path(setup.env["OPENCODE_CONFIG"])])
    assert config["mcp"] == {MCP_SERVER: {"type": "remote", "url": f"{URL}/mcp", "oauth": False,
                                          "headers": {"Authorization": "Bearer {env:" + KEY_ENV + "}"}}}
    assert setup.env[KEY_ENV] == KEY and KEY not in setup.files[Path(setup.env["OPENCODE_CONFIG"])]
    only_in_scratch(setup, tmp_path)


def test_aider_speaks_no_mcp():
    assert not AGENTS["aider"].speaks_mcp
    assert all(AGENTS[name].speaks_mcp for name in ("claude", "codex", "gemini", "opencode"))


@pytest.mark.parametrize("name", list(AGENTS))
def test_no_mcp_entry_for_a_proxy_that_does_not_serve_it(name, tmp_path):
    setup = setup_for(name, tmp_path, mcp=False)
    said = " ".join(setup.argv) + json.dumps(setup.env) + "".join(setup.files.values())
    assert "/mcp" not in said and "mcp-config" not in said and "mcpServers" not in said and '"mcp"' not in said


@pytest.mark.parametrize("name", list(AGENTS))
def test_the_users_own_config_is_never_written(name, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    setup = setup_for(name, tmp_path / "scratch")
    assert all(not str(path).startswith(str(home)) for path in setup.files)
    assert not home.exists()  # a set-up is a description: nothing is written until run writes its scratch files


def test_mcp_list_lines():
    assert line(Server("git", "ready", 0, "", ["git__status", "git__log"])) == "git: running, 2 tools"
    assert line(Server("t", "ready", 1, "", ["t__now"])) == "t: running, restarted 1 time, 1 tool"
    assert line(Server("b", "restarting", 3, "exit status 1", [])) == \
        "b: restarting (exit status 1), restarted 3 times, 0 tools"


def test_claude_code_leaves_tool_search_to_the_proxy_when_it_serves_mcp(tmp_path):
    # Claude Code's deferred tools reach a chat upstream whole; the proxy's MCP_TOOL_SEARCH shortens /mcp's listing.
    assert setup_for("claude", tmp_path).env["ENABLE_TOOL_SEARCH"] == "false"
    assert "ENABLE_TOOL_SEARCH" not in setup_for("claude", tmp_path, mcp=False).env
