"""Where the demo keeps team keys and stored responses (argoproxy/launch/demo.py's data_files): where `keys create`
finds them, only those its settings use, and never in a directory this user cannot write (the demo read no config,
so beside its /dev/null they were /dev/keys.db and /dev/responses.db: root wrote there, anyone else got 503s)."""

from __future__ import annotations

import os
from pathlib import Path

from argoproxy.config.settings import load_settings
from argoproxy.launch import demo
from argoproxy.launch.sources import USER_DIR


def demo_settings(**environ: str):
    return load_settings({"config_path": os.devnull, "target_base_url": "http://127.0.0.1:9/v1"}, environ=environ)


def test_beside_the_config_keys_create_reads_else_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("target_base_url: http://127.0.0.1:9/v1\n")
    stores = demo.data_files({}, demo_settings(ENABLE_AUTH="true"))
    assert stores == {"keys_db": str(tmp_path / "keys.db"), "responses_db": str(tmp_path / "responses.db")}
    assert demo.data_files({}, demo_settings()) == {"responses_db": str(tmp_path / "responses.db")}  # auth off
    assert demo.data_files({}, demo_settings(REDIS_URL="redis://127.0.0.1:9")) == {}


def test_a_directory_this_user_cannot_write_is_never_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "writable", lambda folder: folder != Path(tmp_path))  # a user's read-only directory
    stores = demo.data_files({}, demo_settings(ENABLE_AUTH="true"))
    assert stores == {"keys_db": str(USER_DIR.expanduser() / "keys.db"),
                      "responses_db": str(USER_DIR.expanduser() / "responses.db")}
    assert not any(path.startswith("/dev/") for path in stores.values())
