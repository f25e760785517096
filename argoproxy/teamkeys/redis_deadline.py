"""A total deadline for each round trip to Redis (TIMEOUT seconds from the command's first byte sent to its
reply's last byte read), where redis-py's socket_timeout bounds each read alone: a Redis trickling its reply at
0.1-0.3 s per byte held a request for 33-97 s. Past the deadline the read fails as redis-py's TimeoutError, the
connection is dropped, and the store is treated as down (REDIS_OUTAGE decides).

The connection class chosen for the URL (TCP, TLS, Unix socket) gets a socket wrapper that sets each read's and
write's timeout to what is left of the round trip's deadline.
"""

from __future__ import annotations

import socket
import time
from typing import Any

TIMEOUT = 0.5  # seconds a whole round trip may take (and a connect)


class DeadlineSocket:
    """A connected socket whose reads and writes share the deadline set when a command is sent."""

    def __init__(self, sock: socket.socket, total: float) -> None:
        self._sock = sock
        self._total = total
        self._timeout = sock.gettimeout()
        self.deadline = time.monotonic() + total

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the Redis round trip's deadline passed")
        timeout = self._timeout
        self._sock.settimeout(left if timeout is None else min(timeout, left))

    def sendall(self, data: Any, *args: Any) -> None:
        self.deadline = time.monotonic() + self._total  # a command (or a pipeline's) starts a round trip
        self._arm()
        self._sock.sendall(data, *args)

    def recv(self, *args: Any) -> bytes:
        self._arm()
        return self._sock.recv(*args)

    def recv_into(self, *args: Any) -> int:
        self._arm()
        return self._sock.recv_into(*args)


def with_deadline(client: Any, total: float = TIMEOUT) -> Any:
    """The client, its pool's connections wrapped in DeadlineSocket."""
    pool = client.connection_pool
    base = pool.connection_class

    class DeadlineConnection(base):  # type: ignore[misc, valid-type]
        def _connect(self) -> Any:
            return DeadlineSocket(super()._connect(), total)

    DeadlineConnection.__name__ = f"Deadline{base.__name__}"
    pool.connection_class = DeadlineConnection
    return client
