"""A real redis-server (Debian's package) on a free loopback port, for the tests of what replicas share.
Its data persists in its directory (append-only file, fsync always), so it can be stopped and started again
with what it held, as a restarted Redis service would."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.proxy_process import free_port


class RedisServer:
    def __init__(self) -> None:
        self.binary = shutil.which("redis-server") or ("/usr/bin/redis-server"
                                                       if Path("/usr/bin/redis-server").exists() else None)
        if self.binary is None:
            pytest.skip("redis-server is not installed (Debian package redis-server; .ci/apt-packages installs it)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cot_proxy_redis_")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                                      "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                                      "--protected-mode", "yes"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "redis-server exited"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis finishes its append-only file and exits
            self.proc.wait(20)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
