"""A `.env` beside the proxy joins the environment, but never with a variable that makes a process load code
(LD_PRELOAD, PYTHONPATH, NODE_OPTIONS...): ./run_app.sh reads the .env of the directory it starts in, then starts
Gunicorn, and a cloned repository's LD_PRELOAD ran there."""

from __future__ import annotations

import os

from argoproxy.serve.gunicorn_app import read_dotenv


def test_a_dotenv_sets_settings_but_never_what_loads_code(tmp_path, monkeypatch, capsys):
    for name in ("LD_PRELOAD", "PYTHONPATH", "NODE_OPTIONS", "BASH_ENV", "TARGET_BASE_URL", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("TARGET_BASE_URL=http://127.0.0.1:9/v1\nLD_PRELOAD=./.evil.so\n"
                                   "PYTHONPATH=./evil\nNODE_OPTIONS=--require ./evil.js\nBASH_ENV=./evil.sh\n")
    monkeypatch.setenv("LOG_LEVEL", "INFO")  # to be restored by monkeypatch, whatever read_dotenv sets
    assert read_dotenv(tmp_path) == tmp_path / ".env"
    assert os.environ["TARGET_BASE_URL"] == "http://127.0.0.1:9/v1"
    monkeypatch.delenv("TARGET_BASE_URL")
    for name in ("LD_PRELOAD", "PYTHONPATH", "NODE_OPTIONS", "BASH_ENV"):
        assert name not in os.environ, name
    said = capsys.readouterr().err
    assert "BASH_ENV, LD_PRELOAD, NODE_OPTIONS, PYTHONPATH, which load code: left out" in said
