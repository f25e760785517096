"""A turn for the other requests of a worker, from a loop that never waits on a socket (a fast upstream and a
fast client, a long body already received, a long computation in steps).

Under gevent a turn is a sleep of a microsecond: the event loop runs once with its sockets polled, so a new
connection or a /health probe is served. gevent.sleep(0) only runs the greenlets already ready and polls no
socket: a probe waited 20-230 ms at each such turn, and behind one fast stream of large events up to a
second. Under threads (gthread, sync workers) time.sleep(0) hands the GIL over.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

TURN_SECONDS = 1e-6  # a timer already due when the loop looks: the loop polls its sockets and comes back


def under_gevent() -> bool:
    """Is `threading` monkey-patched by gevent in this process (Gunicorn's gevent worker)?"""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def turn(_: float = 0.0) -> None:
    """Let the worker's other requests run, their sockets read (the argument: sleep(0)'s, ignored)."""
    time.sleep(TURN_SECONDS if under_gevent() else 0)  # gevent patches time.sleep


def beside(target: Callable[..., Any], *args: Any, name: str) -> Any:
    """Run target(*args) beside the caller, who does not wait for it to start: a greenlet under gevent
    (returned: it can be killed), else a daemon thread (None). threading.Thread.start waits until the new thread
    runs, which under gevent is a turn of the whole loop (30-90 ms on a busy machine) for the request that
    started it."""
    if under_gevent():
        import gevent
        return gevent.spawn(target, *args)
    threading.Thread(target=target, args=args, daemon=True, name=name).start()
    return None
