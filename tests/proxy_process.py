"""Start the real app under Gunicorn on a free loopback port, as users run it, for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def wait_for_worker(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Wait until the started process has a child: Gunicorn's master binds the port before it forks its workers,
    so an open port alone says nothing about them. (A request would prove more, but every request the proxy
    answers shows up in its metrics, journals or upstream probes, which tests count.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited with {proc.returncode}")
        try:
            if psutil.Process(proc.pid).children(recursive=True):
                return
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    raise RuntimeError("the proxy started no worker")


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

    def read_log(self) -> str:
        """Everything the proxy wrote to stderr so far (a file, never a pipe a chatty proxy could fill)."""
        log = Path(self.home, "proxy.log")
        return log.read_text(errors="replace") if log.exists() else ""


def base_env(home: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TARGET_", "LLM_", "THINK_"))}
    env.update(HOME=home, PYTHONPATH=str(ROOT), HOST="127.0.0.1", WORKERS="1", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in settings.items()})
    return env


@contextmanager
def running_proxy(command: list[str] | None = None, **settings: str) -> Iterator[ProxyProcess]:
    """The proxy under Gunicorn (gunicorn.conf.py, as in the Dockerfile) with these environment settings."""
    home = tempfile.mkdtemp(prefix="cot_proxy_test_")
    port = free_port()
    env = base_env(home, PORT=str(port), **settings)
    command = command or [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"]
    with open(Path(home, "proxy.log"), "wb") as log:
        proc = subprocess.Popen(command, cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=log)
    proxy = ProxyProcess(proc, port, home)
    try:
        wait_for_port(port, proc)
        wait_for_worker(proc)
        yield proxy
    finally:
        proxy.stop()
