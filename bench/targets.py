"""The processes the benchmark measures: the fake upstream, the proxy under Gunicorn, nginx.

Each is started as a child process on 127.0.0.1 with its own temporary directory and stopped by ``stop()``
(SIGINT/SIGTERM, then SIGKILL). ``ProcessTree`` reads CPU time and RSS of a process and its children with
psutil.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
# What each worker of a proxy whose tracer is the tracing floor's says (bench/tracing_floor): a run checks it
FLOOR_SAYS = "tracing floor: this worker's tracer is the bench's"

# Environment variables that would change the proxy's settings: removed, so that "default" means default.
_SETTING_ENV_PREFIXES = ("OPENAI_", "TARGET_", "LLM_", "THINK_", "ARGO_", "DASHSCOPE_", "GUNICORN_", "OTEL_")
_SETTING_ENV = {"HOST", "PORT", "WORKERS", "WORKER_CLASS", "THREADS", "WORKER_CONNECTIONS", "TIMEOUT", "DEBUG",
                "API_REQUEST_TIMEOUT", "CONFIG_PATH", "BACKEND", "MAX_BODY_BYTES", "ENABLE_AUTH", "API_KEY_SECRET",
                "ALLOWED_MODELS", "UPSTREAM_MODE", "COMPATIBLE_MODE", "USE_NATIVE_OPENAI", "MAX_RETRIES",
                "CONNECT_TIMEOUT", "GRACEFUL_TIMEOUT", "HEALTH_CACHE_SECONDS", "LOG_DIR", "JOURNAL_DIR"}


def raise_nofile(want: int = 65536) -> int:
    """Raise this process's open-file limit (children inherit it); the soft limit reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {text}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start listening on {port}")


T = TypeVar("T", bound="Target")


def _listening(target: T, what: str, log: Path | None = None) -> T:
    """`target` once its port accepts connections; stopped if it never does."""
    assert target.proc is not None
    try:
        _wait_port(target.port, target.proc, 30, what, log)
    except Exception:
        target.stop()
        raise
    return target


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        # the whole tree: workers may outlive a master killed hard
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            kids = []
        proc.kill()
        for kid in kids:
            try:
                kid.kill()
            except psutil.Error:
                pass
        proc.wait(5)


def task_seconds(pid: int) -> float:
    """A process's live threads' time on a CPU (schedstat's first field, nanoseconds); a thread or a process
    that ended meanwhile counts 0."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def ticked_seconds(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


class ProcessTree:
    """CPU seconds and RSS of a process plus all its descendants."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.precise: bool | None = None  # schedstat's nanoseconds (cpu_seconds)

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.root] + self.root.children(recursive=True)
        except psutil.Error:
            return []

    def cpu_seconds(self) -> float:
        """The tree's CPU time: each live thread's time on a CPU from the kernel's scheduler statistics
        (/proc/PID/task/TID/schedstat, nanoseconds) where Linux gives them, else psutil's user and system time
        (clock ticks: 10 ms each, a process's two read in a window of 0.2 s, the quick run's, can move it by some
        %). Decided once for the tree: two readings compared are read alike."""
        if self.precise is None:
            self.precise = os.path.exists(f"/proc/{self.root.pid}/task")
        total = 0.0
        for p in self.processes():
            total += task_seconds(p.pid) if self.precise else ticked_seconds(p)
        return total

    def rss_bytes(self) -> int:
        total = 0
        for p in self.processes():
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def pss_bytes(self) -> int:
        """The tree's real memory: each page shared by several processes (the code, what the master loaded
        before forking) counted once, split between them; a sum of RSS counts it once per process."""
        total = 0
        for p in self.processes():
            try:
                total += p.memory_full_info().pss
            except (psutil.Error, AttributeError):
                pass
        return total


class ForeignLoad:
    """CPU used on the machine by processes outside the benchmark (other users' jobs distort every figure).

    ``snapshot()`` then ``cores(earlier)``: the average number of cores busy with foreign work in between,
    i.e. system-wide user+nice+system time minus the CPU time of the benchmark's own trees."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def snapshot(self) -> tuple[float, float, float]:
        t = psutil.cpu_times()
        # process time only: interrupt and softirq time (much of it our own loopback traffic) is left out
        busy = t.user + getattr(t, "nice", 0.0) + t.system
        own = 0.0
        seen: set[int] = set()
        for pid in self.pids:
            tree = ProcessTree(pid) if psutil.pid_exists(pid) else None
            for p in tree.processes() if tree else []:
                if p.pid in seen:
                    continue
                seen.add(p.pid)
                try:
                    c = p.cpu_times()
                    own += c.user + c.system
                except psutil.Error:
                    pass
        return time.perf_counter(), busy, own

    @staticmethod
    def cores(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
        elapsed = after[0] - before[0]
        return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / elapsed) if elapsed > 0 else 0.0


@dataclass
class Target:
    """Something the load generator talks to."""

    name: str
    port: int
    proc: subprocess.Popen | None = None
    tmp: str | None = None
    description: str = ""
    stop_signal: int = signal.SIGTERM

    @property
    def tree(self) -> ProcessTree | None:
        return ProcessTree(self.proc.pid) if self.proc is not None else None

    def stop(self) -> None:
        _stop(self.proc, self.stop_signal)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Upstream(Target):
    @classmethod
    def start(cls) -> "Upstream":
        proc = subprocess.Popen([sys.executable, str(BENCH / "upstream.py"), "--host", HOST, "--port", "0"],
                                stdout=subprocess.PIPE, stderr=None, text=True)
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            _stop(proc)
            raise RuntimeError(f"fake upstream did not start: {line!r}")
        port = int(line.split()[1])
        return cls("direct", port, proc, None, "fake upstream (asyncio, 1 process)")


class OtlpSink(Target):
    """bench/otlp_sink.py: where the tracing section's proxy exports its spans (OTLP/HTTP), counting them."""

    @classmethod
    def start(cls) -> "OtlpSink":
        proc = subprocess.Popen([sys.executable, str(BENCH / "otlp_sink.py"), "--host", HOST],
                                stdout=subprocess.PIPE, stderr=None, text=True)
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            _stop(proc)
            raise RuntimeError(f"OTLP sink did not start: {line!r}")
        return cls("otlp sink", int(line.split()[1]), proc, None, "bench/otlp_sink.py")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/count", timeout=10) as response:
            return json.loads(response.read())


class Proxy(Target):
    @classmethod
    def start(cls, upstream_port: int, name: str = "cot_proxy", root: Path = ROOT, port: int = 0,
              **settings: str) -> "Proxy":
        """The proxy of the tree at `root` (default: this one; bench/cpu_commits.py starts another commit's), on
        `port` (default: a free one; a PUBLIC_URL names it before the proxy starts)."""
        tmp = tempfile.mkdtemp(prefix="cot_proxy_bench_")
        port = port or free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(_SETTING_ENV_PREFIXES) and k not in _SETTING_ENV}
        # The fake upstream stands for a self-hosted server (its models cost nothing: their streams go as written),
        # which a loopback address alone no longer says (docs/spend.md); an older tree ignores SELF_HOSTED.
        env.update(HOME=tmp, PYTHONPATH=str(root), PYTHONUNBUFFERED="1", HOST=HOST, PORT=str(port),
                   TARGET_BASE_URL=f"http://{HOST}:{upstream_port}/v1/", SELF_HOSTED="true")
        env.update({k: str(v) for k, v in settings.items()})
        log = Path(tmp) / "proxy.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(root / "gunicorn.conf.py"),
                                     "cot_proxy:app"], cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=out)
        # SIGINT: Gunicorn's quick shutdown (SIGTERM would wait for in-flight streams)
        target = cls(name, port, proc, tmp, stop_signal=signal.SIGINT)
        try:
            _wait_port(port, proc, 30, "proxy", log)
            # the master logs its mode once the workers are being started
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "listening on" not in log.read_text(errors="replace"):
                time.sleep(0.05)
            m = re.search(r"listening on \S+ \((.*)\)", log.read_text(errors="replace"))
            target.description = m.group(1).split(", ")[-1] if m else "defaults"
            target.description += "".join(f", {k}={v}" for k, v in settings.items())
        except Exception:
            target.stop()
            raise
        return target

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (Path(self.tmp) / "proxy.log").read_text(errors="replace")[-n:]
        except (OSError, TypeError):
            return ""


class BareForwarder(Target):
    """A calibration forwarder under Gunicorn: bench/bare_forwarder.py (Flask + requests) or bench/bare_wsgi.py
    (plain WSGI over urllib3), the two baselines issue 2 quotes, or bench/bare_socket.py (a raw socket upstream,
    no HTTP client: Gunicorn's own floor)."""

    KINDS = {"flask": ("bare_forwarder", "bare Flask forwarder"), "wsgi": ("bare_wsgi", "bare WSGI forwarder"),
             "socket": ("bare_socket", "Gunicorn floor")}

    @classmethod
    def start(cls, upstream_port: int, worker_class: str = "gevent", workers: int = 2,
              kind: str = "flask") -> "BareForwarder":
        module, name = cls.KINDS[kind]
        tmp = tempfile.mkdtemp(prefix="cot_proxy_bench_bare_")
        port = free_port()
        env = dict(os.environ, HOME=tmp, PYTHONPATH=str(BENCH), BARE_TARGET=f"http://{HOST}:{upstream_port}")
        log = Path(tmp) / "bare.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", worker_class, "-w", str(workers),
                                     "--threads", "64", "--worker-connections", "2000", "--keep-alive", "5",
                                     "-b", f"{HOST}:{port}", f"{module}:app"],
                                    cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=out)
        target = cls(name, port, proc, tmp, stop_signal=signal.SIGINT,
                     description=f"bench/{module}.py, Gunicorn {workers} {worker_class} workers "
                                 "(calibration, not the product)")
        return _listening(target, "bare forwarder", log)


class RawRelay(Target):
    """Calibration for the events section: bench/raw_relay.py, the leanest relay gevent allows (one process,
    raw sockets, no HTTP stack): the floor of gevent's own per-event cost."""

    @classmethod
    def start(cls, upstream_port: int) -> "RawRelay":
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(BENCH / "raw_relay.py"), str(port), str(upstream_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = cls("raw gevent relay", port, proc, None, stop_signal=signal.SIGINT,
                     description="bench/raw_relay.py, one gevent process, raw sockets (calibration, not the product)")
        return _listening(target, "raw relay")


NGINX_CONF = """\
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 8m;
    keepalive_requests 1000000;
    upstream fake {{ server {host}:{upstream}; keepalive 256; }}
    server {{
        listen {host}:{port} backlog=8192;
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


# Made by the measured tree's own code (an older commit's store has older columns): the bench client's key, and
# with `owner` the key belongs to a person who signed in (sign-in's tables exist from issue 71 on).
_KEY_STORE = """
import sys, time
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore
store, owner = SQLiteKeyStore(sys.argv[1]), sys.argv[2]
if owner:
    from argoproxy.people import Person
    store.signed_in(Person(owner, "sub-bench", "https://login.example.com", "bench@example.com", True, "Bench",
                           ("eng",), first_seen=time.time(), last_seen=time.time()), False)
    store.create(KeyRecord("bench", digest("sk-bench"), "sk-bench", created=time.time(), owner=owner))
else:
    store.create(KeyRecord("bench", digest("sk-bench"), "sk-bench", created=time.time()))
"""


def key_store(directory: str, root: Path = ROOT, owner: str = "") -> dict[str, str]:
    """The settings that make the bench client's key (sk-bench) a team key of a SQLite store in `directory`, made
    by the tree at `root`; `owner`: a person's id the key belongs to."""
    path = os.path.join(directory, "keys.db")
    for old in (path, path + "-wal", path + "-shm"):  # a store left by an earlier run (--keep): made afresh
        if os.path.exists(old):
            os.remove(old)
    subprocess.run([sys.executable, "-c", _KEY_STORE, path, owner], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(root)})
    return {"ENABLE_AUTH": "true", "API_KEY_SECRET": "sk-admin", "KEYS_DB": path}


def nginx_binary() -> str | None:
    for name in ("nginx", "/usr/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        found = shutil.which(name)
        if found:
            return found
    return None


def nginx_sandbox(prefix: str) -> tuple[str, str]:
    """A fresh nginx prefix directory (its temp directories writable by nginx's workers) and the `user` line
    the main configuration needs: as root nginx switches its workers to an unprivileged user, so name one that
    exists (empty when not root)."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o755)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.mkdir(os.path.join(tmp, sub))
        os.chmod(os.path.join(tmp, sub), 0o777)
    if os.geteuid() != 0:
        return tmp, ""
    import pwd
    for candidate in ("www-data", "nginx", "nobody"):
        try:
            pwd.getpwnam(candidate)
            return tmp, f"user {candidate};"
        except KeyError:
            continue
    return tmp, ""


class Nginx(Target):
    @classmethod
    def start(cls, upstream_port: int, workers: int = 2) -> "Nginx":
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("nginx is not installed")
        tmp, user = nginx_sandbox("cot_proxy_bench_nginx_")
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(workers=workers, tmp=tmp, user=user, host=HOST, upstream=upstream_port,
                                          port=port))
        cmd = [binary, "-p", tmp, "-c", str(conf), "-g", "daemon off; master_process on;"]
        if _nginx_supports_e(binary):
            cmd[1:1] = ["-e", f"{tmp}/error.log"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = cls("nginx", port, proc, tmp)
        try:
            _wait_port(port, proc, 10, "nginx", Path(tmp) / "error.log")
            version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
            target.description = f"{version.split(': ')[-1]}, {workers} workers, proxy_buffering off"
        except Exception:
            target.stop()
            raise
        return target



def _nginx_supports_e(binary: str) -> bool:
    out = subprocess.run([binary, "-h"], capture_output=True, text=True)
    return "-e filename" in (out.stdout + out.stderr)


def start_redis(directory: str) -> tuple[subprocess.Popen, str] | None:
    """A redis-server on a free loopback port (None when it is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                             "--dir", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return proc, f"redis://{HOST}:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    return None
