"""The first run's port question offers 5000 (the documentation's examples' port) unless it is taken, then says
so and offers the next free one; the start's last lines are a request to paste and the agent line."""

from __future__ import annotations

from pathlib import Path

from argoproxy import firstrun
from argoproxy.config.settings import load_settings


def test_5000_is_offered_when_free(monkeypatch, capsys):
    monkeypatch.setattr(firstrun, "port_free", lambda port: True)
    assert firstrun.offered_port() == 5000
    assert capsys.readouterr().out == ""


def test_a_taken_5000_is_named_and_the_next_free_port_offered(monkeypatch, capsys):
    monkeypatch.setattr(firstrun, "port_free", lambda port: port not in (5000, 5001))
    assert firstrun.offered_port() == 5002
    assert capsys.readouterr().out == \
        "Port 5000 is already in use (another server, or this proxy already running): offering 5002.\n"


def test_the_port_question_offers_5000(monkeypatch):
    monkeypatch.setattr(firstrun, "port_free", lambda port: True)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "")
    assert firstrun.ask_port(firstrun.offered_port()) == 5000
    assert asked == ["Enter port [5000]: "]


def test_the_last_lines_export_the_clients_key_and_name_the_agent(tmp_path, monkeypatch):
    """The client's key is COT_PROXY_KEY: set from the key file, then sent by the curl (OPENAI_API_KEY is the
    upstream's key in the proxy's shell)."""
    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "api_key"
    key_file.write_text("sk-proxy-k\n")
    settings = load_settings({"backend": "argo", "user": "alice", "enable_auth": True,
                              "api_key_file": str(key_file), "host": "0.0.0.0"})
    monkeypatch.setattr("shutil.which", lambda name: "/bin/codex" if name == "codex" else None)
    lines = firstrun.first_request_lines(settings, 5000, firstrun.run_app_launcher(Path("/opt/cot_proxy")))
    assert lines[0] == "Try it (in another terminal):"
    assert lines[1] == f"  export COT_PROXY_KEY=$(cat {key_file})"
    assert lines[2] == ("  curl http://127.0.0.1:5000/v1/chat/completions -H 'Content-Type: application/json' "
                        "-H \"Authorization: Bearer $COT_PROXY_KEY\" -d '{\"model\": \"argo:gpt-4o\", "
                        "\"messages\": [{\"role\": \"user\", \"content\": \"Say hello.\"}]}'")
    assert lines[3].startswith("  /opt/cot_proxy/run_app.sh run -- codex    # a coding agent")
    assert "sk-proxy-k" not in "\n".join(lines) and "OPENAI_API_KEY" not in "\n".join(lines)


def test_the_agent_line_names_the_command_that_asked(tmp_path, monkeypatch):
    """From `cot-proxy` in a terminal the agent line is `cot-proxy run`, not a run_app.sh an installed package
    does not have; without a key file there is no export line, and with no auth no key at all."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("shutil.which", lambda name: None)
    settings = load_settings({"target_base_url": "http://127.0.0.1:9/v1", "enable_auth": True,
                              "api_key_secret": "sk-proxy-a"}, environ={})
    lines = firstrun.first_request_lines(settings, 5000, "cot-proxy")
    assert len(lines) == 3 and '-H "Authorization: Bearer $COT_PROXY_KEY"' in lines[1]
    assert lines[2].startswith("  cot-proxy run -- claude    # a coding agent")
    open_settings = load_settings({"target_base_url": "http://127.0.0.1:9/v1"}, environ={})
    assert "Authorization" not in firstrun.first_request_lines(open_settings, 5000, "cot-proxy")[1]


def test_the_shared_machine_answer_tells_clients_to_export_cot_proxy_key(tmp_path, monkeypatch, capsys):
    key_file = tmp_path / "api_key"
    monkeypatch.setattr(firstrun, "create_user_key", lambda: (key_file, True))
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert firstrun.ask_shared_machine() == {"enable_auth": True, "api_key_file": str(key_file)}
    said = capsys.readouterr().out
    assert f"export COT_PROXY_KEY=$(cat {key_file}) in the clients' shell" in said
    assert "OPENAI_API_KEY" not in said


def test_a_port_moved_for_this_run_is_in_the_agent_line_and_said(tmp_path, monkeypatch, capsys):
    """The config's port taken (another proxy on 5000): this run moves to a free one, and both what it says and
    the agent line carry --port, which `run` (reading the config's port) would otherwise miss: the agent went to
    the other proxy."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr(firstrun, "interactive", lambda: True)
    monkeypatch.setattr(firstrun, "port_free", lambda port: port != 5000)
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    settings = load_settings({"target_base_url": "http://127.0.0.1:9/v1"}, environ={})
    flags: dict = {}
    assert firstrun.free_port_for_run(settings, {}, flags) == 5001 == flags["port"]
    assert "clients and `run` need --port 5001" in capsys.readouterr().out
    lines = firstrun.first_request_lines(settings, 5001, "./run_app.sh")
    assert lines[-1].startswith("  ./run_app.sh run --port 5001 -- claude    # a coding agent"), lines
    assert "run -- claude" in firstrun.first_request_lines(settings, 5000, "./run_app.sh")[-1]


def test_with_auth_and_no_key_file_the_lines_say_where_a_key_comes_from(tmp_path, monkeypatch):
    """`./run_app.sh demo --enable-auth`: the curl and agent lines send $COT_PROXY_KEY, which nothing set (a new
    user pasted them and got 401): an export line first says to set it and how to make a key."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"target_base_url": "http://127.0.0.1:9/v1", "enable_auth": True, "api_key_file": ""})
    lines = firstrun.first_request_lines(settings, 5000, firstrun.run_app_launcher(Path("/opt/cot_proxy")))
    assert lines[1].startswith("  export COT_PROXY_KEY=") and "keys create" in lines[1]
    assert "$COT_PROXY_KEY" in lines[2]
