"""The tests' Gunicorn zygote (tests/gunicorn_zygote.py): what it forks is the proxy `python -m gunicorn -c
gunicorn.conf.py cot_proxy:app` starts, and it imports only what that command's master imports, none of which
reads anything a start sets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil
import pytest

from tests import gunicorn_zygote
from tests.proxy_process import GUNICORN, ROOT, base_env, running_proxy, start_gunicorn, start_on_free_port
from tests.gunicorn_zygote import MASTER_IMPORTS, ZygoteProcess

# A fresh interpreter imports MASTER_IMPORTS and says what they read of the environment, and which files they
# opened besides Python's own: nothing may differ from one start to the next.
WATCHED_IMPORTS = textwrap.dedent("""
    import os, sys, importlib
    read = []
    environ = type(os.environ)
    for name in ("__getitem__", "__contains__", "__iter__", "__len__", "copy"):
        def watched(self, *args, _original=getattr(environ, name), _name=name):
            read.append(f"{_name}{args[:1]}")
            return _original(self, *args)
        setattr(environ, name, watched)
    def audit(event, args):
        if event in ("open", "os.chdir") and not str(args[0]).endswith((".py", ".pyc", ".so", ".pth")) \\
                and "__pycache__" not in str(args[0]):
            read.append(f"{event} {args[0]}")
        elif event == "os.getcwd":
            read.append(event)
    sys.addaudithook(audit)
    for module in sys.argv[1:]:
        importlib.import_module(module)
    print("\\n".join(read))
""")


def test_master_imports_read_nothing_a_start_sets() -> None:
    result = subprocess.run([sys.executable, "-c", WATCHED_IMPORTS, *MASTER_IMPORTS], cwd=ROOT, timeout=120,
                            env=base_env(tempfile.gettempdir()), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_gunicorn_config_reads_the_environment_so_each_start_imports_it() -> None:
    """Why gunicorn.config (and gunicorn.app, which imports it) is left to each forked start: a master imports
    it with the start's PORT, WEB_CONCURRENCY and working directory."""
    result = subprocess.run([sys.executable, "-c", WATCHED_IMPORTS, "gunicorn.config"], cwd=ROOT, timeout=120,
                            env=base_env(tempfile.gettempdir(), PORT="1"), capture_output=True, text=True)
    assert "__getitem__('PORT',)" in result.stdout.splitlines(), result.stdout + result.stderr
    assert not any(name.startswith(("gunicorn.config", "gunicorn.app")) for name in _imported(MASTER_IMPORTS))


# What a forked start answers for each group of entry points, beside what importlib.metadata reads itself; the
# start's own directory (argv[1]) holds a distribution of its own that shadows one of the venv's.
ENTRY_POINTS_BOTH_WAYS = textwrap.dedent("""
    import json, sys
    from importlib import metadata
    from tests import gunicorn_zygote
    own = sys.argv[1]
    gunicorn_zygote.read_entry_points(sys.path)
    sys.path.insert(0, own)
    groups = {p.group for dist in metadata.distributions() for p in dist.entry_points}
    def answers():
        return {g: sorted((p.name, p.value) for p in metadata.entry_points(group=g)) for g in sorted(groups)}
    real = answers()
    gunicorn_zygote.answer_entry_points_from_memory([own])
    print(json.dumps({"real": real, "remembered": answers(),
                      "named": [p.value for p in metadata.entry_points(group="console_scripts", name="gunicorn")]}))
""")


def test_entry_points_read_once_are_what_importlib_metadata_reads(tmp_path: Path) -> None:
    own = tmp_path / "gunicorn-99.0.dist-info"
    own.mkdir()
    (own / "METADATA").write_text("Metadata-Version: 2.1\nName: gunicorn\nVersion: 99.0\n")
    (own / "entry_points.txt").write_text("[console_scripts]\ngunicorn = own.module:run\n\n"
                                          "[cot_proxy.test_group]\nmine = own.module:plugin\n")
    result = subprocess.run([sys.executable, "-c", ENTRY_POINTS_BOTH_WAYS, str(tmp_path)], cwd=ROOT, timeout=120,
                            env=base_env(tempfile.gettempdir()), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    said = json.loads(result.stdout)
    assert said["remembered"] == said["real"]
    assert said["real"]["cot_proxy.test_group"] == [["mine", "own.module:plugin"]]
    assert len(said["real"]) > 10  # the venv's groups were read
    assert said["named"] == ["own.module:run"]  # the start's own distribution shadows the venv's gunicorn


# Gunicorn's configuration as gunicorn.conf.py makes it, its when_ready hook first writing out the modules the
# master holds then: what it has imported before it forks its first worker.
MODULES_WHEN_READY = textwrap.dedent("""
    import sys
    exec(open({conf!r}).read())
    _ready = when_ready
    def when_ready(server):
        with open({out!r}, "w") as f:
            f.write("\\n".join(sys.modules))
        _ready(server)
""")


def test_master_imports_are_imported_by_every_master(tmp_path: Path, fake) -> None:
    """The sync worker with FAST_PATH off: the master that imports least."""
    out = tmp_path / "modules.txt"
    conf = tmp_path / "conf.py"
    conf.write_text(MODULES_WHEN_READY.format(conf=str(ROOT / "gunicorn.conf.py"), out=str(out)))
    command = [sys.executable, "-m", "gunicorn", "-c", str(conf), "cot_proxy:app"]
    proc, _ = start_on_free_port(str(tmp_path), {"TARGET_BASE_URL": fake.base_url, "WORKER_CLASS": "sync",
                                                 "FAST_PATH": "off"}, command)
    try:
        masters = set(out.read_text().split())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    assert _imported(MASTER_IMPORTS) - masters == set()
    assert not masters & {"flask", "requests", "werkzeug", "urllib3"}  # what only a worker imports, once patched


def _imported(modules: tuple[str, ...]) -> set[str]:
    script = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\nprint(*sys.modules)"
    result = subprocess.run([sys.executable, "-c", script, *modules], cwd=ROOT, timeout=120, capture_output=True,
                            text=True, env=base_env(tempfile.gettempdir()))
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_a_forked_proxy_runs_as_gunicorns_command(fake) -> None:
    """Its working directory, umask, standard streams and environment are the start's; it holds nothing of
    the zygote's; it stops and is reaped as a Popen's process is."""
    umask = os.umask(0o027)
    try:
        with running_proxy(TARGET_BASE_URL=fake.base_url, DEBUG="1") as proxy:
            assert isinstance(proxy.proc, ZygoteProcess)
            master = psutil.Process(proxy.proc.pid)
            assert master.cwd() == proxy.home
            assert "Umask:\t0027" in Path(f"/proc/{master.pid}/status").read_text()
            assert _descriptors(master.pid)[1] == os.devnull
            assert _descriptors(master.pid)[2] == str(Path(proxy.home, "proxy.log"))
            assert gunicorn_zygote._zygote is not None
            zygotes = {name for name in _descriptors(gunicorn_zygote._zygote.proc.pid).values()
                       if name.startswith(("socket:", "pipe:"))}  # its listener, lifeline, wake-up pipe, starts
            for process in (master, *master.children()):
                assert not zygotes & set(_descriptors(process.pid).values())
            with pytest.raises(subprocess.TimeoutExpired):
                proxy.proc.wait(0.1)
            assert proxy.health()[0] in (200, 503)
        pid = proxy.proc.pid
    finally:
        os.umask(umask)
    assert proxy.proc.returncode == 0
    assert not psutil.pid_exists(pid)  # reaped by the time wait() returned
    assert "GET /health" in proxy.log  # DEBUG=1 from the start's environment: the access log
    assert "cot_proxy listening on" in proxy.log


def _descriptors(pid: int) -> dict[int, str]:
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
    return found


def test_exit_statuses_come_back(tmp_path: Path) -> None:
    """A bad setting's exit code, and a signal's death as Popen reports it (minus the signal)."""
    home = str(tmp_path)
    proc = start_gunicorn(home, base_env(home, PORT="not-a-port", TARGET_BASE_URL="http://127.0.0.1:9/v1"))
    assert isinstance(proc, ZygoteProcess)
    assert proc.wait(30) == 2
    assert "cot_proxy: bad setting PORT" in Path(home, "proxy.log").read_text()
    proc.kill()  # no longer its pid: nothing is signalled

    proc = start_gunicorn(home, base_env(home, PORT="1", TARGET_BASE_URL="http://127.0.0.1:9/v1"))
    proc.kill()
    assert proc.wait(30) == -signal.SIGKILL


def test_the_switch_and_other_interpreters_start_processes_of_their_own(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    home = str(tmp_path)
    env = base_env(home, PORT="not-a-port")
    warned = {**env, "PYTHONWARNINGS": "error"}
    for proc in (start_gunicorn(home, warned), start_gunicorn(home, env, [*GUNICORN[:-1], "app:app"])):
        assert isinstance(proc, subprocess.Popen)
        assert proc.wait(30) == 2
    monkeypatch.setenv(gunicorn_zygote.SWITCH, "0")
    proc = start_gunicorn(home, env)
    assert isinstance(proc, subprocess.Popen)
    assert proc.wait(30) == 2
