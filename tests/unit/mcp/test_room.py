"""A stdio server's room (argoproxy/mcp/room.py), in-process: what Landlock is told to grant beside the held files,
a process entering the room (held files, a held directory, a link to a held file, its parent's /proc), the
warning where the kernel has no Landlock, what the supervisor is given of the master's environment, the
files the master names as held (launch.py) and those the supervisor adds (every instance's shared cells, metrics and
supervisor directories), the rights Landlock is told to handle and where each is granted (a server changes files
only where it writes, never beside a held one), and who the supervisor's socket answers. Through the running app: tests/integration/test_mcp_room.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
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
                               log_dir=str(tmp_path / "logs"), credentials_key_file=str(tmp_path / "data" / "c.key"))
    held = launch.secret_files(settings)
    data = tmp_path / "data"
    for path in (tmp_path / ".env", tmp_path / "config.yaml", tmp_path / "etc" / "config.yaml",
                 tmp_path / "home" / "keys", tmp_path / "home" / ".config" / "argoproxy", data / "keys.db",
                 data / "keys.db-wal", data / "r.db-shm", data / "seal.key", tmp_path / "logs",
                 data / "c.key"):  # the key people's MCP tokens are sealed with (docs/mcp-credentials.md)
        assert str(path) in held, path


@pytest.mark.parametrize("abi, newest", [(1, room.MAKE_SYM), (2, room.REFER), (3, room.TRUNCATE), (4, room.TRUNCATE),
                                         (5, room.IOCTL_DEV), (7, room.IOCTL_DEV)])
def test_every_filesystem_right_the_kernels_abi_has_is_handled(monkeypatch, abi, newest):
    handled = []
    monkeypatch.setattr(room, "_libc", object())
    monkeypatch.setattr(room, "landlock_abi", lambda: abi)
    monkeypatch.setattr(room, "granted", lambda held: [])
    monkeypatch.setattr(room, "DEVICES", {})
    monkeypatch.setattr(room, "_syscall", lambda number, attr, *rest: handled.append(attr._obj.handled_access_fs) or 3)
    assert room.build(["/srv/app/.env"]).ruleset == 3
    assert handled == [(newest << 1) - 1]  # every right up to the newest this ABI has: removing, making, linking too


def test_a_place_written_is_granted_but_the_directories_leading_to_a_held_path(place):
    held = [str(place / ".env"), str(place / "logs")]
    reads = room.granted(held)
    assert room.within(held, reads, str(place / "tools")) == [str(place / "tools")]
    assert room.within(held, reads, str(place / "logs")) == room.within(held, reads, str(place / "logs" / "x")) == []
    beside = room.within(held, reads, str(place))  # the proxy's directory named: what is beside its secrets
    assert str(place / "notes.txt") in beside and not {str(place), str(place / "to-env")} & set(beside)
    reads = room.readable(held)
    rights = dict([*((path, room.READS) for path in reads), *room.places(held, reads, [str(place / "tools")])])
    assert rights[str(place / "tools")] == room.WRITES and rights[str(place / "notes.txt")] == room.READS
    assert not room.READS & (room.WRITE_FILE | room.REMOVE_FILE | room.MAKE_SYM | room.REFER | room.TRUNCATE)
    # of /dev only the devices a program uses (a disk read whole holds every file), and /proc read only
    assert "/dev" not in rights and not [p for p in rights if p.startswith("/dev/") and p not in room.DEVICES]
    assert rights["/dev/null"] == room.DEVICE_RIGHTS and rights["/proc"] == room.READS


def test_a_server_writes_in_its_home_and_the_directories_its_entry_names(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    servers = [McpServer("git", command="git-mcp", args=("--repository", str(repo), "relative", "/nowhere/at/all")),
               McpServer("fs", command="fs-mcp", args=(f"--root={tmp_path}",), env=(("HOME", "/"), ("TMPDIR", "x")))]
    assert stdio_server.written_places(servers, "/run/homes") == ["/run/homes", str(repo), "/", str(tmp_path)]


def test_the_supervisor_holds_what_every_instance_shares_through_files(tmp_path, monkeypatch):
    """This instance's cells and metrics (made as the Gunicorn master makes them) are named by the master; the
    supervisor adds every instance's by their names, and its own socket; its servers' homes stay theirs."""
    from argoproxy import shared_cells
    from argoproxy.serve import gunicorn_hooks
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    for name in (shared_cells.SHARED_DIR_ENV, shared_cells.OWNER_ENV, launch.METRICS_DIR_ENV, gunicorn_hooks.OWNER_ENV):
        monkeypatch.setenv(name, "")  # recorded as it was, so that what prepare_* set below is undone after the test
        monkeypatch.delenv(name)  # (a delenv of an unset name records nothing: the next tests ran with its cells)
    cells, metrics = shared_cells.prepare_shared_dir(), gunicorn_hooks.prepare_metrics_dir()
    settings = SimpleNamespace(config_path="", api_key_file="", keys_db="", responses_db="", log_dir="",
                               credentials_key_file="")
    assert {cells, metrics} <= set(launch.secret_files(settings))
    rundir, other = (tempfile.mkdtemp(prefix=launch.RUN_PREFIX) for _ in range(2))
    socket_path = os.path.join(rundir, "supervisor.sock")
    assert {cells, metrics, other, socket_path} <= set(launch.shared_places(rundir, socket_path))
    assert rundir not in launch.shared_places(rundir, socket_path)


PRODDING = """
import json, os, sys
def works(change):
    try:
        change()
        return True
    except OSError:
        return False
held, folder, mine, another = sys.argv[1:]
print(json.dumps({"rename held": works(lambda: os.rename(held, held + ".moved")),
                  "remove held": works(lambda: os.unlink(held)),
                  "link beside it": works(lambda: os.symlink(mine, os.path.join(folder, "planted"))),
                  "file beside it": works(lambda: open(os.path.join(folder, "planted-file"), "x").close()),
                  "move its folder": works(lambda: os.rename(folder, folder + ".moved")),
                  "hard link it home": works(lambda: os.link(held, os.path.join(mine, "stolen"))),
                  "write beside it": works(lambda: open(os.path.join(folder, "notes.txt"), "a").close()),
                  "file in another's home": works(lambda: open(os.path.join(another, "planted"), "x").close()),
                  "at home": [works(lambda: open(os.path.join(mine, "f"), "x").close()),
                              works(lambda: os.symlink("f", os.path.join(mine, "l"))),
                              works(lambda: os.rename(os.path.join(mine, "f"), os.path.join(mine, "g"))),
                              works(lambda: os.unlink(os.path.join(mine, "g")))],
                  "/dev/null": works(lambda: open("/dev/null", "w").close())}))
"""


@linux_only
@pytest.mark.skipif(not room.landlock_abi(), reason="this kernel has no Landlock")
def test_a_process_in_the_room_changes_files_in_its_own_places_and_nothing_beside_a_held_one(place):
    homes = [place / "tools" / "home", place / "tools" / "another"]  # two servers' (the supervisor's first layer)
    for home in homes:
        home.mkdir()
    entered = room.build([str(place / ".env")], [str(home) for home in homes]).of([str(homes[0])])  # the first's
    try:
        out = subprocess.run([sys.executable, "-c", PRODDING, str(place / ".env"), str(place), *map(str, homes)],
                             preexec_fn=entered.enter, capture_output=True, timeout=30, check=True).stdout
    finally:
        entered.close()
    said = json.loads(out)
    assert said.pop("at home") == [True] * 4 and said.pop("/dev/null") is True
    assert not any(said.values()), said
    assert sorted(p.name for p in place.iterdir()) == [".env", "logs", "notes.txt", "to-env", "tools", "up"]


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
