"""A stdio server's room (argoproxy/mcp/room.py), in-process: what Landlock is told to grant beside the held files,
a process entering the room (held files, a held directory, a link to a held file, its parent's /proc), the
warning where the kernel has no Landlock, what the supervisor is given of the master's environment, the
files the master names as held (launch.py), and who the supervisor's socket answers. Through the running app: tests/integration/test_mcp_room.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import launch, room, stdio_server, supervisor
from argoproxy.mcp.link import Link, SupervisorGone

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's prctl and Landlock")


@pytest.fixture
def place(tmp_path):
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-held\n")
    (tmp_path / "notes.txt").write_text("beside")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "old.jsonl").write_text("journal")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "env-link").symlink_to(tmp_path / ".env")
    (tmp_path / "to-env").symlink_to(tmp_path / ".env")
    (tmp_path / "up").symlink_to(tmp_path)
    return tmp_path


def test_everything_beside_the_held_paths_is_granted_but_what_leads_or_points_to_them(place):
    grants = room.granted([str(place / ".env"), str(place / "logs")])
    assert {str(place / "notes.txt"), str(place / "tools")} <= set(grants)
    held_or_leading = {str(place / n) for n in (".env", "logs", "to-env", "up")} | {str(place), os.sep}
    assert not held_or_leading & set(grants)  # nor any directory above them: only their other entries
    assert not any(str(place).startswith(g + os.sep) for g in grants)
    assert room.granted([]) == [os.sep]  # nothing held: every file (and still no process outside its own)


PROBE = """
import json, os, sys
def reads(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False
paths = sys.argv[1:] + [f"/proc/{os.getppid()}/environ", f"/proc/{os.getppid()}/mem"]
print(json.dumps({p: reads(p) for p in paths}))
"""


@linux_only
@pytest.mark.skipif(not room.landlock_abi(), reason="this kernel has no Landlock")
def test_a_process_in_the_room_reads_what_is_beside_the_held_files_and_nothing_held(place):
    entered = room.build([str(place / ".env"), str(place / "logs")])
    assert entered.ruleset is not None and not entered.missing
    paths = [str(place / n) for n in ("notes.txt", "tools/env-link", ".env", "to-env", "logs/old.jsonl")]
    out = subprocess.run([sys.executable, "-c", PROBE, *paths], preexec_fn=entered.enter, capture_output=True,
                         timeout=30, check=True).stdout
    readable = json.loads(out)
    assert readable.pop(str(place / "notes.txt")) is True
    assert not any(readable.values()), readable  # the held ones, a link to one, its parent's environ and mem


def test_a_kernel_without_landlock_is_said_once_at_start(monkeypatch, caplog):
    monkeypatch.setattr(room, "landlock_abi", lambda: 0)
    monkeypatch.setattr(stdio_server, "ROOM", None)
    built = room.build(["/srv/app/.env"])
    assert built.ruleset is None and "no Landlock" in built.missing and "KEYS_DB" in built.missing
    with caplog.at_level(logging.WARNING, logger="cot_proxy"):
        supervisor.enter_room(built)
    assert [r.getMessage() for r in caplog.records] == [f"MCP: {built.missing}"]
    assert stdio_server.ROOM is built  # its servers still drop their capabilities and set no_new_privs


def test_the_supervisor_gets_what_it_needs_of_the_masters_environment_and_no_more(monkeypatch):
    for name, value in {"OPENAI_API_KEY": "sk-up", "API_KEY_SECRET": "admin", "REDIS_URL": "redis://:pw@r/0",
                        "PATH": "/usr/bin", "HTTPS_PROXY": "http://proxy:3128", "no_proxy": "internal",
                        "DOCS_TOKEN": "docs-token", "LC_ALL": "C.UTF-8"}.items():
        monkeypatch.setenv(name, value)
    env = launch.supervisor_environ((McpServer("docs", url="https://docs/mcp", bearer_token_env="DOCS_TOKEN"),))
    assert {"PATH", "HTTPS_PROXY", "no_proxy", "DOCS_TOKEN", "LC_ALL", "PYTHONPATH"} <= set(env)
    assert not {"OPENAI_API_KEY", "API_KEY_SECRET", "REDIS_URL"} & set(env)  # REDIS_URL goes on its stdin
    assert "DOCS_TOKEN" not in launch.supervisor_environ(())


def test_the_master_holds_the_files_its_secrets_are_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = SimpleNamespace(config_path=str(tmp_path / "etc" / "config.yaml"), api_key_file="~/keys",
                               keys_db=str(tmp_path / "data" / "keys.db"), responses_db=str(tmp_path / "data" / "r.db"),
                               log_dir=str(tmp_path / "logs"))
    held = launch.secret_files(settings)
    data = tmp_path / "data"
    for path in (tmp_path / ".env", tmp_path / "config.yaml", tmp_path / "etc" / "config.yaml",
                 tmp_path / "home" / "keys", tmp_path / "home" / ".config" / "argoproxy", data / "keys.db",
                 data / "keys.db-wal", data / "r.db-shm", data / "seal.key", tmp_path / "logs"):
        assert str(path) in held, path


@linux_only
def test_undumpable_is_kept_by_a_fork_and_undone_by_an_exec():
    """PR_GET_DUMPABLE (3) in a process made undumpable, in its fork (a Gunicorn worker) and after an exec (the
    supervisor, which sets it again)."""
    code = """import ctypes, os, subprocess, sys
from argoproxy.mcp import room
libc = ctypes.CDLL(None)
assert room.undumpable()
said = [libc.prctl(3, 0, 0, 0, 0)]
pid = os.fork()
if pid == 0:
    os._exit(libc.prctl(3, 0, 0, 0, 0))
said.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
said.append(int(subprocess.run([sys.executable, "-c", "import ctypes; print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"],
                               capture_output=True, text=True).stdout))
print(said)"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[0, 0, 1]"


@linux_only
def test_the_supervisors_socket_answers_its_starter_and_its_children_only(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # not us, nor our parent
    try:
        for starter, answers in ((other.pid, False), (os.getpid(), True)):
            path = str(tmp_path / f"{answers}.sock")
            unix = supervisor.UnixServer(path, supervisor.Supervisor([], str(tmp_path)), starter=starter)
            threading.Thread(target=unix.serve_forever, args=(0.02,), daemon=True).start()
            try:
                if answers:
                    assert Link(path).status() == []
                else:
                    with pytest.raises(SupervisorGone):
                        Link(path).status()
            finally:
                unix.shutdown()
                unix.server_close()
    finally:
        other.kill()
        other.wait()
    assert room.parent_of(os.getpid()) == os.getppid() and room.parent_of(-1) == 0
