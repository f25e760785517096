"""Socket calls the hot path makes without gevent's extra system calls (any worker class)."""

from __future__ import annotations

import select
import socket
from typing import Callable

# Two messages up to this size are joined into one send; larger ones are sent as they are (copying them
# would cost more than the extra send).
COALESCE_LIMIT = 64 * 1024


def _real_poll() -> Callable[[], select.poll]:
    """select.poll as the OS gives it, even in a gevent worker: a zero-timeout poll never blocks, so it needs
    no hub round trip."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return select.poll
    poll: Callable[[], select.poll] = monkey.get_original("select", "poll")
    return poll


_poll = _real_poll()


def readable_now(sock: socket.socket) -> bool:
    """True when the socket has data or EOF waiting (an idle pooled connection that is no longer usable)."""
    p = _poll()
    p.register(sock.fileno(), select.POLLIN)
    return bool(p.poll(0))


def send_all(sock: socket.socket, data: bytes) -> None:
    """sock.sendall(data), but one send() first: it usually takes everything, and gevent's sendall asks the
    kernel for the buffer size (getsockopt) on every call."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
