"""A client's socket looked at once, without waiting, with poll(2) as `select` gives it (gevent's cooperative poll
in a gevent worker): poll, not select, which refuses a descriptor past 1023. Admission's watch for a client that
left uses it in both FAST_PATH modes, so it stays outside the fence (the fast path's own, for its pooled
connections, skips gevent's hub: fastpath/sockets.py)."""

from __future__ import annotations

import select
import socket


def readable_now(sock: socket.socket) -> bool:
    """True when the socket has data or EOF waiting."""
    p = select.poll()
    p.register(sock.fileno(), select.POLLIN)
    return bool(p.poll(0))
