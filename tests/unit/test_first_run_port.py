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


def test_the_last_lines_name_the_key_file_and_the_agent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "api_key"
    key_file.write_text("sk-proxy-k\n")
    settings = load_settings({"backend": "argo", "user": "alice", "enable_auth": True,
                              "api_key_file": str(key_file), "host": "0.0.0.0"})
    monkeypatch.setattr("shutil.which", lambda name: "/bin/codex" if name == "codex" else None)
    lines = firstrun.first_request_lines(settings, 5000, Path("/opt/cot_proxy"))
    assert lines[0] == "Try it (in another terminal):"
    assert lines[1] == (f"  curl http://127.0.0.1:5000/v1/chat/completions -H 'Content-Type: application/json' "
                        f"-H \"Authorization: Bearer $(cat {key_file})\" -d '{{\"model\": \"argo:gpt-4o\", "
                        f"\"messages\": [{{\"role\": \"user\", \"content\": \"Say hello.\"}}]}}'")
    assert lines[2].startswith("  /opt/cot_proxy/run_app.sh run -- codex    # a coding agent")
    assert "sk-proxy-k" not in "\n".join(lines)
