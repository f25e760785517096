"""Start the real app under Gunicorn on a free loopback port, as users run it, for integration tests."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import psutil

from argoproxy.config.settings import SETTING_FIELDS
from tests import gunicorn_zygote

ROOT = Path(__file__).resolve().parent.parent


def answer_port_question(child: Any) -> int:
    """Answer the first run's "Enter port [N]:" (a pexpect child) with a free port and wait for the next
    question. When another test takes the port before the wizard checks it, take the port the wizard offers
    instead, as a user would. Returns the port the proxy will serve on."""
    port = free_port()
    child.sendline(str(port))
    while child.expect([r"Enable verbose mode\? \[Y/n\] ", r"is already in use\.\r\nEnter port \[(\d+)\]: "]):
        port = int(child.match.group(1))
        child.sendline("")
    return port


def free_port() -> int:
    """A port for a server another process binds later. Taken outside the kernel's ephemeral range, so no
    outgoing connection (of this suite or a concurrent one) can take it between this check and that bind."""
    low, high = _ephemeral_range()
    candidates = [p for p in range(20000, 65536) if not low <= p <= high]
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # everything tried was taken: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 1024, 65535  # unknown: every candidate is in it, so the kernel chooses


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("proxy did not start listening")


def wait_for_worker(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until a worker has accepted a connection. Gunicorn's master binds the port before it forks its
    workers, and a worker accepts only once it has loaded the app: an open port, or a worker process, says
    nothing about either. The probe sends no request, so the app never sees it (no metrics, journal or log
    line, no upstream probe), unlike a request to /health."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as probe:
        client_port = probe.getsockname()[1]
        checked: set[str] | None = None
        pause = 0.01  # then longer, up to 0.05 s: a worker takes a second or more to load the app
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"proxy exited with {proc.returncode}")
            held = _sockets_under(proc.pid)
            # Only a socket new in a worker can be the accepted probe: the kernel's connection table, which a
            # busy machine fills with thousands of lines, is read only then.
            if (held is None or held != checked) and _accepted(proc.pid, held, port, client_port):
                return
            checked = held
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)
    raise RuntimeError("no worker accepted a connection")


def _sockets_under(pid: int) -> set[str] | None:
    """The sockets open in the processes under pid, as /proc names them (socket:[inode]); None without /proc's
    lists of children, or when their descriptors cannot be read."""
    if not Path(f"/proc/{pid}/task").is_dir():
        return None
    held: set[str] = set()
    for child in _descendants(pid):
        try:
            descriptors = os.listdir(f"/proc/{child}/fd")
        except PermissionError:  # an undumpable worker (MCP servers configured: argoproxy/mcp/room.py), not root
            return None
        except OSError:  # gone meanwhile
            continue
        for fd in descriptors:
            try:
                target = os.readlink(f"/proc/{child}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:"):
                held.add(target)
    return held


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    parents = [pid]
    while parents:
        parent = parents.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in Path(f"/proc/{parent}/task/{task}/children").read_text().split()]
            except OSError:
                continue
            found += children
            parents += children
    return found


def _accepted(pid: int, held: set[str] | None, port: int, client_port: int) -> bool:
    """Does a process under pid (holding the sockets `held`) hold the server end of the connection from
    client_port? Its socket gets an inode when a process accepts it: 0 in the kernel's table until then."""
    inode = _server_end_inode(port, client_port)
    if inode is not None and held is None:  # the workers' descriptors cannot be read: a process accepted it
        return inode != 0
    if inode is None or held is None:  # not in the IPv4 table (an IPv6 listener), or no /proc: psutil's way
        return _accepted_by_psutil(pid, port, client_port)
    return inode != 0 and f"socket:[{inode}]" in held


def _server_end_inode(port: int, client_port: int) -> int | None:
    """The inode of the server end of 127.0.0.1:client_port -> 127.0.0.1:port in /proc/net/tcp, or None when
    the table cannot be read or does not list it."""
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:
        return None
    at = table.find(f": 0100007F:{port:04X} 0100007F:{client_port:04X} ")
    if at < 0:
        return None
    return int(table[at:table.find("\n", at)].split()[9])


def _accepted_by_psutil(pid: int, port: int, client_port: int) -> bool:
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for proc in procs:
        try:
            if any(c.laddr and c.laddr.port == port and c.raddr and c.raddr.port == client_port
                   for c in proc.net_connections("tcp")):
                return True
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return False


class ProxyProcess:
    def __init__(self, proc: subprocess.Popen, port: int, home: str) -> None:
        self.proc = proc
        self.port = port
        self.home = home
        self.log = ""
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = self.url + "/v1"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> str:
        """Stop the proxy (SIGINT: Gunicorn's quick shutdown) and return everything it logged."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log = self.read_log()
        return self.log

    def health(self, timeout: float = 20) -> tuple[int, dict]:
        """GET /health: its status and JSON body, whether healthy (200) or not (503)."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def read_log(self) -> str:
        """Everything the proxy wrote to stderr so far (a file, never a pipe a chatty proxy could fill)."""
        log = Path(self.home, "proxy.log")
        return log.read_text(errors="replace") if log.exists() else ""


def project_directory(parent: Path) -> Path:
    """A directory laid out as the checkout's top for what runs there (`gunicorn cot_proxy:app` reads
    ./gunicorn.conf.py by itself), with argoproxy from PYTHONPATH, and without the config.yaml, .env, keys.db or
    responses.db a user's run may have left in the checkout."""
    top = parent / "project"
    top.mkdir()
    for name in ("cot_proxy.py", "app.py", "gunicorn.conf.py"):
        shutil.copy2(ROOT / name, top / name)
    return top


# Every environment variable a setting reads, but FAST_PATH: the suite runs once in each mode (.ci/run).
SETTING_VARS = frozenset(var for f in SETTING_FIELDS.values() for var in f.metadata["env"]) - {"FAST_PATH"}
SETTING_PREFIXES = ("OPENAI_", "TARGET_", "LLM_", "THINK_", "ARGO_", "DASHSCOPE_", "OTEL_")  # OTEL_*: tracing's


def clean_environ(prefixes: tuple[str, ...] = (), names: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    """This process's environment without the proxy's settings (the developer's shell must not change what a
    test runs), nor variables with these further prefixes or names."""
    prefixes = SETTING_PREFIXES + prefixes
    return {k: v for k, v in os.environ.items() if k not in SETTING_VARS and k not in names and not k.startswith(prefixes)}


def base_env(home: str, **settings: str) -> dict[str, str]:
    env = clean_environ()
    env.update(HOME=home, PYTHONPATH=str(ROOT), HOST="127.0.0.1", WORKERS="1", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in settings.items()})
    return env


GUNICORN = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"]


def start_gunicorn(home: str, env: dict[str, str], command: list[str] | None = None) -> subprocess.Popen:
    """The proxy as the Dockerfile starts it (or `command`), in home, its stderr appended to home/proxy.log.
    Gunicorn's own command is forked from this process's zygote (tests/gunicorn_zygote.py) unless
    COT_PROXY_TEST_ZYGOTE=0: the same master and workers, without an interpreter's start and the master's
    imports each time. Any other command runs as it is."""
    log = Path(home, "proxy.log")
    with open(log, "ab") as err:
        if command is None or command == GUNICORN:
            forked = gunicorn_zygote.start(GUNICORN, home, env, str(log))
            if forked is not None:
                return forked  # type: ignore[return-value]  # what the tests use of a Popen
        return subprocess.Popen(command or GUNICORN, cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=err)


def wait_until_serving(port: int, proc: subprocess.Popen) -> None:
    wait_for_port(port, proc)
    wait_for_worker(port, proc)


PORT_TAKEN = "is already in use"  # the proxy's one line when its port is bound by someone else


def start_on_free_port(home: str, settings: dict[str, str], command: list[str] | None = None,
                       port: int | None = None) -> tuple[subprocess.Popen, int]:
    """The proxy started and serving on `port` or a free one. A free port can be taken by a server of a concurrent
    test run (CI runs two passes side by side) between the check and the proxy's bind: then another is tried."""
    for attempt in range(5):
        chosen = port if port is not None and attempt == 0 else free_port()
        log = Path(home, "proxy.log")
        before = log.stat().st_size if log.exists() else 0
        proc = start_gunicorn(home, base_env(home, PORT=str(chosen), **settings), command)
        try:
            wait_until_serving(chosen, proc)
            return proc, chosen
        except RuntimeError:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            said = log.read_bytes()[before:].decode(errors="replace") if log.exists() else ""
            if PORT_TAKEN not in said:
                raise RuntimeError(f"proxy exited with {proc.returncode}: {said[-2000:]}") from None
    raise RuntimeError("every port tried was taken")


@contextmanager
def running_proxy(command: list[str] | None = None, **settings: str) -> Iterator[ProxyProcess]:
    """The proxy under Gunicorn (gunicorn.conf.py, as in the Dockerfile) with these environment settings."""
    home = tempfile.mkdtemp(prefix="cot_proxy_test_")
    proc, port = start_on_free_port(home, settings, command)
    proxy = ProxyProcess(proc, port, home)
    try:
        yield proxy
    finally:
        proxy.stop()
