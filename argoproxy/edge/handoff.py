"""How a kept-alive stream's helper hands its bytes to the request's side (edge/keepalive.py).

Threads (gthread, sync workers) use a bounded `queue.Queue` and a thread. Under gevent, where both are
monkey-patched into greenlets, `queue.Queue` is a condition variable over gevent locks: every blocking `get`
allocates a lock and a Timeout, and every `put` wakes the reader through two of them, about 7 µs per relayed
event. `GreenChannel` is the same bounded queue on gevent's own primitives (one Waiter per wait, one timer
reused for the whole stream), about 3 µs, and the helper is a plain greenlet.

Both offer what keepalive.py uses: put (blocks while full), get(timeout) and get_nowait (raise queue.Empty),
empty(), and `queue`, the items in order (peeked at, never changed, by the reader).
"""

from __future__ import annotations

import queue
from collections import deque
from typing import Any, Callable, Union

from argoproxy.turns import beside, turn, under_gevent

_TIMED_OUT = object()


def yield_point() -> Callable[..., Any] | None:
    """What lets the other requests of a gevent worker run (argoproxy/turns.py), for a loop whose reads and
    writes never wait (a fast upstream, a fast client: one such stream held a worker for all of its length);
    None under threads, which the interpreter switches by itself."""
    return turn if under_gevent() else None


def channel(size: int, timeout: float) -> "Channel":
    """A bounded queue for one stream; `timeout`: the only timeout its blocking gets will use."""
    return GreenChannel(size, timeout) if under_gevent() else queue.Queue(size)


def start_helper(target: Callable[..., None], *args: Any) -> Any:
    """Run target(*args) beside the request: a greenlet under gevent (returned: it can be killed), else a daemon
    thread (None)."""
    return beside(target, *args, name="cot_proxy-stream")


class GreenChannel:
    """A bounded FIFO between one producing and one consuming greenlet, on gevent's hub."""

    def __init__(self, size: int, timeout: float) -> None:
        from gevent.hub import Waiter, get_hub
        self.queue: deque[Any] = deque()
        self.size = size
        self.timeout = timeout
        self._new_waiter = Waiter
        self._loop = get_hub().loop
        self._timer = self._loop.timer(timeout, timeout)  # restarted by each blocking get, stopped after it
        self._getter: Any = None  # the Waiter of a get blocked on an empty queue
        self._putter: Any = None  # the Waiter of a put blocked on a full one

    def empty(self) -> bool:
        return not self.queue

    def put(self, item: Any) -> None:
        while len(self.queue) >= self.size:
            self._putter = self._new_waiter()
            try:
                self._putter.get()
            finally:
                self._putter = None
        self.queue.append(item)
        if self._getter is not None:
            self._wake(self._getter)
            self._getter = None  # woken once: a second put before it runs must not switch to it again

    def get_nowait(self) -> Any:
        if not self.queue:
            raise queue.Empty
        item = self.queue.popleft()
        if self._putter is not None:
            self._wake(self._putter)
            self._putter = None
        return item

    def get(self, timeout: float | None = None) -> Any:
        """The next item, waiting at most the channel's timeout (the only one its stream uses)."""
        if timeout is not None and timeout != self.timeout:
            raise ValueError("a GreenChannel waits only for the timeout it was made with")
        if not self.queue:
            waiter = self._getter = self._new_waiter()
            self._timer.again(waiter.switch, _TIMED_OUT)
            try:
                woken = waiter.get()
            finally:
                self._timer.stop()
                self._getter = None
            if woken is _TIMED_OUT:
                raise queue.Empty
        return self.get_nowait()

    def _wake(self, waiter: Any) -> None:
        """Resume a blocked greenlet: from the hub, the only place a Waiter may be switched to from."""
        self._loop.run_callback(waiter.switch, None)


Channel = Union["queue.Queue[Any]", GreenChannel]  # what `channel` makes
