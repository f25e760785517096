"""Store calls off the event loop: under gevent an SQLite call (which waits on its file lock in C, where no
greenlet can run) goes to gevent's threadpool, so one slow write never freezes a worker's other requests.
Redis calls need none of this (redis-py's sockets are gevent's)."""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from argoproxy.turns import under_gevent

T = TypeVar("T")


def offloaded(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args), in gevent's threadpool when this worker runs under gevent; else here."""
    if under_gevent():
        from gevent import get_hub
        return get_hub().threadpool.apply(fn, args)
    return fn(*args)


def native_lock() -> Any:
    """A lock real threads can share: threading.Lock is gevent's (greenlets only) once gevent patched it."""
    try:
        from gevent.monkey import get_original
    except ImportError:
        return threading.Lock()
    return get_original("_thread", "allocate_lock")()
