"""A stdio server cannot reach past its room (docs/mcp.md, "What a server can reach"), through the running app:
Gunicorn (started as its own process, so the master's /proc/PID/environ is the one it was started with) with the
admin key, the upstream's key and a Redis password in its environment and its .env, and a stdio server that walks
its parents up to pid 1 (and the workers) reading their environ, cmdline, mem and open files, then the files the secrets are in
(tests/fakes/prying_mcp_server.py). It finds none of them, forwards or backwards; it does find what it may read.
Nor does the supervisor's socket answer it (it would take any call, in any session). Nor can it change what the
proxy reads: move, remove or replace a held file (a planted API_KEY_FILE is read at the next reload), make anything
beside one, read or write the cells and metrics its workers share (a key's budget counted there), this instance's
or another's, or move the supervisor's socket; the same done in its own HOME works.
Run as root here; as an ordinary user the same holds by the processes being undumpable (room.py)."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import redis
import requests

from tests.polling import poll
from tests.proxy_process import ROOT, ProxyProcess, start_on_free_port
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's /proc")]

PRYING = str(Path(__file__).resolve().parents[1] / "fakes" / "prying_mcp_server.py")
ADMIN = "admin-key-the-server-must-not-see-7f3a9c"
UPSTREAM = "sk-upstream-key-the-server-must-not-see-41d8"
REDIS_PASSWORD = "redis-password-the-server-must-not-see-9b2e"
IN_FILES = "a-secret-only-in-the-files-5c61"  # config.yaml, API_KEY_FILE, keys.db, seal.key, an old journal
MINE = "the-servers-own-variable-0a17"  # its own environment: it may read that
BESIDE = "a-file-beside-the-secrets-e9d4"  # a file in the same directory as .env: not held
NEEDLES = {"ADMIN": ADMIN, "UPSTREAM": UPSTREAM, "REDIS_PASSWORD": REDIS_PASSWORD, "IN_FILES": IN_FILES, "MINE": MINE,
           "BESIDE": BESIDE}  # the server answers with their index: the proxy redacts its own secrets in answers
# Gunicorn's own command, spelled so that tests/proxy_process.py starts it as its own process (not the zygote's fork)
OWN_PROCESS = [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"]


@pytest.fixture(scope="module")
def prying(module_fake, tmp_path_factory):
    place = tmp_path_factory.mktemp("room")
    files = {".env": f"OPENAI_API_KEY={UPSTREAM}\n", "config.yaml": f"debug: false  # {IN_FILES}\n",
             "api_keys": f"{IN_FILES}-key\n", "seal.key": IN_FILES * 2,
             "logs/old.jsonl": json.dumps({"key": IN_FILES}) + "\n", "notes.txt": BESIDE}
    for name, text in files.items():
        (place / name).parent.mkdir(mode=0o700, exist_ok=True)
        (place / name).write_text(text)
    with sqlite3.connect(place / "keys.db") as db:
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES (?)", (IN_FILES,))
    db.close()
    for other in ("cot_proxy_shared_another", "cot_proxy_metrics_another"):  # another instance's, in its TMPDIR
        (place / "tmp" / other).mkdir(parents=True)
        (place / "tmp" / other / "cells").write_bytes(bytes(64))
    servers = {"pry": {"command": sys.executable, "args": [PRYING], "env": {"PRY_MINE": MINE}}}
    settings = {"TMPDIR": str(place / "tmp"), "TARGET_BASE_URL": module_fake.base_url, "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN,
                "API_KEY_FILE": str(place / "api_keys"), "KEYS_DB": str(place / "keys.db"),
                "LOG_DIR": str(place / "logs"), "MCP_SERVERS": json.dumps(servers)}
    store = RedisServer().start()
    try:
        redis.Redis(port=store.port).config_set("requirepass", REDIS_PASSWORD)
        settings["REDIS_URL"] = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{store.port}/0"
        proc, port = start_on_free_port(str(place), settings, OWN_PROCESS)  # in `place`: its .env is read there
        p = ProxyProcess(proc, port, str(place))
        try:
            assert poll(lambda: "mcp server pry: ready" in p.read_log(), timeout=60), p.read_log()[-2000:]
            yield p
        finally:
            p.stop()
    finally:
        store.close()


def call(p, arguments: dict) -> dict:
    auth = {"Authorization": f"Bearer {ADMIN}", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    r = requests.post(p.url + "/mcp", json=init, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    session = {**auth, "Mcp-Session-Id": r.headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-11-25"}
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "pry__pry", "arguments": arguments}}
    r = requests.post(p.url + "/mcp", json=body, headers=session, timeout=60)
    assert r.status_code == 200, r.text
    assert "result" in r.json(), r.text[:600]
    return json.loads(r.json()["result"]["content"][0]["text"])


def test_a_stdio_server_finds_no_secret_above_it_nor_in_the_files_that_hold_them(prying):
    place = Path(prying.home)
    held = [str(place / n) for n in (".env", "config.yaml", "api_keys", "keys.db", "seal.key", "logs/old.jsonl")]
    report = call(prying, {"needles": list(NEEDLES.values()), "files": [*held, str(place / "notes.txt")]})
    assert prying.proc.pid in report["parents"]  # the walk went through the master
    found = [(where, list(NEEDLES)[index], said) for where, index, said in report["found"]]
    assert [f for f in found if f[1] not in ("MINE", "BESIDE")] == []
    assert ("its own", "MINE", "forwards") in found  # it reads what it may: the search works
    assert (str(place / "notes.txt"), "BESIDE", "forwards") in found  # a file beside them is not held
    assert set(held) <= set(report["refused"])
    assert report["supervisor answers"] is False  # its socket answers the workers only
    assert "mcp supervisor: a connection from a process that is no worker of this proxy was refused" \
        in prying.read_log()
    assert report["workers"]  # the master's workers were tried too
    for pid in [*report["parents"][:2], *report["workers"]]:  # supervisor, master, workers: only their command line
        assert {f"/proc/{pid}/environ", f"/proc/{pid}/mem"} <= set(report["refused"]), pid


def test_a_stdio_server_changes_none_of_the_files_the_proxy_reads_nor_what_its_workers_share(prying):
    place = Path(prying.home)
    assert requests.get(prying.url + "/v1/models", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30).ok
    held = [place / n for n in (".env", "config.yaml", "api_keys", "keys.db", "seal.key", "logs/old.jsonl")]
    shared = sorted((place / "tmp").glob("cot_proxy_shared_*")) + sorted((place / "tmp").glob("cot_proxy_metrics_*"))
    cells = [path for folder in shared for path in folder.iterdir()]
    assert len(shared) == 4 and any(c.suffix == ".db" for c in cells), shared  # this instance's and another's
    kept = [*held, *(c for c in cells if "another" in str(c))]  # this instance's cells change as it serves
    before = {path: path.read_bytes() for path in kept}
    report = call(prying, {"held": [str(p) for p in held], "shared": [str(p) for p in shared],
                           "cells": [str(p) for p in cells]})
    assert report["worked"] == []
    assert len(report["at home"]) == report["tried at home"] == 12  # each change works on a copy of its own
    assert {path: path.read_bytes() for path in kept} == before
    assert not [c for c in cells if c.read_bytes().startswith(b"\xff" * 8)]  # what a write would have left
    left = [p.name for folder in (place, place / "logs", place / "tmp", *shared) for p in folder.iterdir()]
    assert not [name for name in left if "planted" in name or name.endswith(".moved")], left
