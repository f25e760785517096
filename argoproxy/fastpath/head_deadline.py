"""A whole answer head within the read timeout.

urllib3's read timeout bounds each receive, not the head: an upstream that sends its status line or a header a
byte every few seconds held a request (and its upstream connection) for as long as it liked, past TIMEOUT and
after its client had left. While a connection reads an answer's head it is watched; at the read timeout its
socket is shut, and the read ends as a timeout (a 504, as a silent upstream gets).

One watcher per worker process (a thread; a greenlet under gevent), asleep while nothing is watched.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from argoproxy.per_process import PerProcess

TICK = 0.25  # longest sleep while heads are being read: a late head is cut at most this late


class Watched:
    __slots__ = ("sock", "deadline", "fired")

    def __init__(self, sock: Any, deadline: float) -> None:
        self.sock, self.deadline, self.fired = sock, deadline, False


class HeadWatcher(PerProcess):
    def __init__(self) -> None:
        super().__init__()
        self.watched: dict[int, Watched] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        threading.Thread(target=self.run, name="cot_proxy-upstream-heads", daemon=True).start()

    def watch(self, sock: Any, seconds: float) -> Watched:
        entry = Watched(sock, time.monotonic() + seconds)
        with self.lock:
            first = not self.watched
            self.watched[id(entry)] = entry
        if first:  # the watcher waits only while nothing is watched: no wake-up per request under load
            self.wake.set()
        return entry

    def forget(self, entry: Watched) -> None:
        with self.lock:
            self.watched.pop(id(entry), None)

    def run(self) -> None:
        while True:
            with self.lock:
                entries = list(self.watched.values())
            if not entries:
                self.wake.wait()
                self.wake.clear()  # cleared before the next look at `watched`: a watch after it sets it again
                continue
            now = time.monotonic()
            for entry in entries:
                if entry.deadline <= now:
                    self.forget(entry)
                    entry.fired = True
                    _shut(entry.sock)
            time.sleep(min(TICK, max(0.0, min(e.deadline for e in entries) - now)) or TICK)


def _shut(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # closed already
        pass
