"""A fork server ("zygote") for the tests' Gunicorn: `python -m gunicorn -c gunicorn.conf.py cot_proxy:app` without
an interpreter start and the master's imports each time.

One zygote per test process, started at its first proxy: a single-threaded Python that has imported what
Gunicorn's master imports whatever the settings (MASTER_IMPORTS), and nothing a worker imports after gevent has
patched the standard library (flask, requests, the app). For each start it forks a child that takes the start's
working directory, umask and environment, /dev/null as stdout and the log as stderr, the sys.path and sys.argv
`python -m gunicorn` would have, and runs Gunicorn's entry point as `-m` runs it: the real master, its real
workers on a loopback port. None of MASTER_IMPORTS reads the environment, the working directory or a file when
imported (tests/unit/test_gunicorn_zygote.py checks it); gunicorn.config does (PORT, WEB_CONCURRENCY, the working
directory as `chdir`'s default), so it and gunicorn.app, which import it, are left to each child.

The zygote is the Gunicorn master's parent: it tells the test process the master's exit status over the start's
own connection and reaps it only when asked, so a pid the tests signal is never reused meanwhile. What differs
from a process of its own: /proc/PID/cmdline is the zygote's (no setproctitle here), the hash seed is the
zygote's, the master's parent is the zygote, and a process that leaves by SystemExit (the master, a worker
stopping gracefully) runs its atexit hooks and leaves without tearing its modules down (leave()). A start whose
environment sets the interpreter otherwise (INTERPRETER_VARS), or any explicit command, runs as its own process;
so does every start with COT_PROXY_TEST_ZYGOTE=0.

Entry points are read once: gevent's monkey-patching asks importlib.metadata for its plugins 25 times in every
worker it starts, and each ask reads every installed distribution's entry_points.txt (3,500 reads in the test
venv's 140 distributions: about a fifth of a worker's start). The zygote reads the venv's entry points once; in
its children `importlib.metadata.entry_points(group=...)` answers from that reading, after the distributions the
start's own sys.path entries hold (its directory, PYTHONPATH), read as they are. The suite installs nothing into
its own venv while it runs. test_gunicorn_zygote compares the answers with importlib.metadata's own.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

SWITCH = "COT_PROXY_TEST_ZYGOTE"  # 0: every proxy in a process of its own
# What Gunicorn's master imports under every worker class and FAST_PATH (the test compares with a real master).
MASTER_IMPORTS = ("gunicorn.arbiter", "gunicorn.glogging", "gunicorn.workers.base", "argoproxy.serve.gunicorn_app",
                  "argoproxy.fronts", "argoproxy.serve.free_upstreams", "argoproxy.serve.gunicorn_hooks",
                  "argoproxy.serve.gunicorn_errors", "dotenv.main", "dotenv.parser")
# Read when an interpreter starts (or by what it imports first): a start that sets one otherwise than the zygote
# runs as its own process.
INTERPRETER_PREFIXES = ("PYTHON", "LD_", "LC_", "MALLOC_", "GEVENT")
INTERPRETER_NAMES = ("LANG", "LANGUAGE", "TZ")


def enabled() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


def interpreter_vars(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(INTERPRETER_PREFIXES) or k in INTERPRETER_NAMES}


# --- the test process's side -------------------------------------------------------------------------------


class ZygoteProcess:
    """What the tests use of a subprocess.Popen, for a Gunicorn master the zygote forked."""

    stdin = stdout = stderr = None

    def __init__(self, args: list[str], conn: socket.socket, pid: int) -> None:
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self._conn: socket.socket | None = conn
        self._buffer = b""

    def poll(self) -> int | None:
        if self.returncode is None:
            self._await_status(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not self._await_status(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[None, None]:
        self.wait(timeout)
        return None, None

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # not yet reaped (the zygote reaps only once told): the pid is still this process's
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __enter__(self) -> "ZygoteProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()

    def _await_status(self, timeout: float | None) -> bool:
        line = _line(self._conn, self, timeout)
        if line is None:
            return False
        if not line:
            raise RuntimeError(f"the Gunicorn zygote ended before the proxy it started (pid {self.pid})")
        self.returncode = json.loads(line)["returncode"]
        conn, self._conn = self._conn, None
        assert conn is not None
        with conn:  # reaped before wait() returns, as Popen's: no zombie left for a test that looks
            conn.sendall(b"reap\n")
            _line(conn, self, None)
        return True


def _line(conn: socket.socket | None, owner: Any, timeout: float | None) -> bytes | None:
    """The next line from conn (b"" at its end), or None when none came within timeout. owner._buffer holds
    what was read past it."""
    if conn is None:
        return b""
    while b"\n" not in owner._buffer:
        if not select.select([conn], [], [], timeout)[0]:
            return None
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        owner._buffer += chunk
    line, owner._buffer = owner._buffer.split(b"\n", 1)
    return line


class Zygote:
    """The zygote of this test process: started on first use, ended when this process ends (its lifeline)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = interpreter_vars(env)
        self.address = f"\0cot_proxy_zygote_{os.getpid()}_{os.urandom(6).hex()}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)
        listener.listen(64)
        lifeline, self._lifeline = os.pipe()  # the zygote leaves when this end closes
        with listener:
            self.proc = subprocess.Popen([sys.executable, __file__, str(listener.fileno()), str(lifeline)],
                                         env=env, cwd="/", stdout=subprocess.DEVNULL,
                                         pass_fds=(listener.fileno(), lifeline))
        os.close(lifeline)

    def start(self, argv: list[str], cwd: str, env: dict[str, str], log: str) -> ZygoteProcess:
        umask = os.umask(0)
        os.umask(umask)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.address)
            request = {"argv": argv, "cwd": cwd, "env": env, "log": log, "umask": umask}
            conn.sendall(json.dumps(request).encode() + b"\n")
            handle = ZygoteProcess(argv, conn, 0)
            line = _line(conn, handle, 60)
            if not line:
                raise RuntimeError("the Gunicorn zygote did not answer")
            handle.pid = json.loads(line)["pid"]
            return handle
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        os.close(self._lifeline)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_zygote: Zygote | None = None
_failed = False  # the zygote could not start or answer: every start after runs as its own process
_lock = threading.Lock()


def start(argv: list[str], cwd: str, env: dict[str, str], log: str) -> ZygoteProcess | None:
    """argv forked from this process's zygote, or None: the zygote is off, failed, or argv's environment sets
    the interpreter otherwise (then the caller starts its own process)."""
    global _zygote, _failed
    with _lock:
        if _failed or not enabled():
            return None
        if _zygote is not None and (_zygote.proc.poll() is not None or os.getpid() != _owner):
            _zygote = None  # ended, or inherited by a fork of this process
        if _zygote is None:
            _start_zygote(env)
        zygote = _zygote
    if zygote is None or interpreter_vars(env) != zygote.env:
        return None
    try:
        return zygote.start(argv, cwd, env, log)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"tests/gunicorn_zygote.py: the zygote failed ({exc}); proxies start as processes of their own",
              file=sys.stderr)
        _failed = True
        return None


_owner = os.getpid()


def _start_zygote(env: dict[str, str]) -> None:
    global _zygote, _owner
    import atexit
    _zygote, _owner = Zygote(env), os.getpid()
    atexit.register(_zygote.close)


# --- the zygote's side ---------------------------------------------------------------------------------------


def serve(listener_fd: int, lifeline_fd: int) -> dict[str, Any] | None:
    """Fork a child per request until the lifeline closes. In a child: its request (the caller becomes
    Gunicorn); in the zygote: None, when it is time to leave."""
    import selectors

    import importlib
    for name in MASTER_IMPORTS:
        importlib.import_module(name)
    read_entry_points(sys.path)
    if len(os.listdir("/proc/self/task")) != 1:  # fork copies one thread: the others' locks would stay held
        raise SystemExit("tests/gunicorn_zygote.py: an import started a thread")

    listener = socket.socket(fileno=listener_fd)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select through wake_write
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "start")
    selector.register(lifeline_fd, selectors.EVENT_READ, "lifeline")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    children: dict[int, socket.socket] = {}  # running or not yet reported
    reported: dict[int, socket.socket] = {}  # exited and reported, reaped when the test process asks
    unwatched: set[int] = set()  # the test process let go of them: reaped when they end

    def forget(pid: int, conn: socket.socket) -> None:
        selector.unregister(conn)
        conn.close()

    while True:
        for key, _ in selector.select():
            if key.data == "lifeline":
                return None
            if key.data == "child":
                try:
                    while os.read(wake_read, 512):
                        pass
                except BlockingIOError:
                    pass
                for pid in list(children):
                    result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                    if result is None:
                        continue
                    code = result.si_status if result.si_code == os.CLD_EXITED else -result.si_status
                    conn = children.pop(pid)
                    try:
                        conn.sendall(json.dumps({"returncode": code}).encode() + b"\n")
                        reported[pid] = conn
                    except OSError:
                        forget(pid, conn)
                        os.waitpid(pid, 0)
                for pid in [p for p in unwatched if os.waitpid(p, os.WNOHANG)[0]]:
                    unwatched.discard(pid)
            elif key.data == "start":
                conn, _ = listener.accept()
                try:
                    request = _request(conn)
                except (OSError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    for sock in (listener, conn, *children.values(), *reported.values()):
                        sock.close()
                    for fd in (wake_read, wake_write, lifeline_fd):
                        os.close(fd)
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    return request
                children[pid] = conn
                selector.register(conn, selectors.EVENT_READ, pid)
                try:
                    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                except OSError:
                    pass  # its end closes: seen below
            else:  # a started proxy's connection: "reap", or its end (the test process let go)
                pid, conn = key.data, children.get(key.data) or reported[key.data]
                try:
                    said = conn.recv(64)
                except OSError:
                    said = b""
                if pid in reported:
                    reported.pop(pid)
                    os.waitpid(pid, 0)
                    if said:
                        conn.sendall(b"ok\n")
                    forget(pid, conn)
                elif not said:
                    children.pop(pid)
                    forget(pid, conn)
                    if not os.waitpid(pid, os.WNOHANG)[0]:
                        unwatched.add(pid)


def _request(conn: socket.socket) -> dict[str, Any]:
    conn.settimeout(10)
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("no request")
        data += chunk
    conn.settimeout(None)
    return json.loads(data)


def become_gunicorn(request: dict[str, Any], base_path: list[str]) -> None:
    """This child as `argv` (`python -m gunicorn ARGS`) would start: then Gunicorn's entry point, as -m runs it.
    Its exit ends this process as the interpreter's would (atexit hooks, the exit status)."""
    import importlib
    import runpy

    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.close(null)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(log, 2)
    os.close(log)
    pythonpath = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *pythonpath, *base_path]
    argv = request["argv"]
    sys.orig_argv[:] = argv
    sys.argv[:] = ["-m", *argv[3:]]  # run_module puts the module's file first, as -m does
    importlib.invalidate_caches()
    answer_entry_points_from_memory([p for p in sys.path if p not in base_path])
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


# --- entry points, read once --------------------------------------------------------------------------------

_READ: dict[str, list[tuple[str, Any]]] = {}  # group: (normalized distribution name, entry point), in path order


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503, as importlib.metadata tells distributions apart


def read_entry_points(path: list[str]) -> None:
    """Every entry point of the distributions on `path`, the first of each name only (as importlib.metadata)."""
    from importlib import metadata
    seen: set[str] = set()
    for dist in metadata.distributions(path=path):
        name = normalized(dist.name or "")
        if name in seen:
            continue
        seen.add(name)
        for point in dist.entry_points:
            _READ.setdefault(point.group, []).append((name, point))


def answer_entry_points_from_memory(own_path: list[str]) -> None:
    """importlib.metadata.entry_points(group=...) from what the zygote read, after the distributions on
    own_path (read now: a start's directory may hold one). Any other ask goes to importlib.metadata."""
    from importlib import metadata
    real = metadata.entry_points
    own = list(metadata.distributions(path=own_path))
    own_names = {normalized(dist.name or "") for dist in own}

    def entry_points(**params: Any) -> Any:
        group = params.get("group")
        if group is None or set(params) - {"group", "name"}:
            return real(**params)
        points = [p for dist in own for p in dist.entry_points if p.group == group]
        points += [p for name, p in _READ.get(group, ()) if name not in own_names]
        return metadata.EntryPoints(points).select(**params)

    metadata.entry_points = entry_points


def leave(code: object) -> None:
    """End a started process (Gunicorn's master, or a worker it forked, leaving by SystemExit) as the interpreter
    would, with what anything can see of it: the atexit hooks, the standard streams flushed, the exit status
    (a code that is not a number said on stderr, as status 1). Not the tear-down of every module and the last
    garbage collection after it, which nothing sees: about 0.07 s of CPU in each process, a tenth of a start."""
    import atexit
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def _base_path() -> list[str]:
    """sys.path as any interpreter of this venv has it, without PYTHONPATH's entries."""
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [p for p in sys.path if p not in given]


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C of a test run: the test process ends it (lifeline)
    del sys.path[0]  # this script's directory (tests/): its modules must not stand in for the master's
    BASE_PATH = _base_path()
    started = serve(int(sys.argv[1]), int(sys.argv[2]))
    if started is not None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            become_gunicorn(started, BASE_PATH)
        except SystemExit as done:
            leave(done.code)
        leave(None)
