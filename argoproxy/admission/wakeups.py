"""How a waiting request learns, without looking, that its row changed: a seat granted to it, or its place taken.

A waiter sleeps on an event of its own (a greenlet's under gevent, a thread's under gthread). The worker that
changes a row (granting a freed slot, or giving a row to another key's request: admission/queue.py) tells the
row's owner: in its own process by setting the events at once; in another worker by a byte written to that
worker's pipe (`admission-wake-<name>-<pid>.fifo` in the instance's shared directory). One listener per worker
reads its pipe and sets the events of the waiters whose rows changed. The listener also runs `tick` every
TICK_SECONDS while its worker has waiters: the grant pass that gives out a slot freed without a wake-up (a
key's share expiring, a killed worker's slots given back by the master).

Without the shared directory (a bare app, in-process tests) there is one process: an anonymous pipe serves.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import threading
from typing import Callable, Iterable

from argoproxy.per_process import pid as own_pid

TICK_SECONDS = 0.5


def fifo_name(name: str, pid: int) -> str:
    return f"admission-wake-{name}-{pid}.fifo"


class Wakeups:
    """This process's waiters (ticket -> row and event) and its listener, made after the fork when it first
    queues a request. `changed(row, ticket)`: whether the row no longer waits for that ticket's request."""

    def __init__(self, directory: str, name: str, changed: Callable[[int, int], bool],
                 tick: Callable[[], None]) -> None:
        self.directory, self.name = directory, name
        self.changed, self.tick = changed, tick
        self.pid = -1
        self.waiters: dict[int, tuple[int, threading.Event]] = {}
        self.guard = threading.Lock()
        self.starting = threading.Lock()
        self.read_fd = self.write_fd = -1

    # ------------------------------------------------------------ a waiter
    def register(self, ticket: int, row: int) -> threading.Event:
        self._start()
        event = threading.Event()  # gevent's under its monkey-patching: looked up now, after the patch
        with self.guard:
            first = not self.waiters
            self.waiters[ticket] = (row, event)
        if first:
            _write(self.write_fd)  # the listener slept without a timer: it ticks while there are waiters
        return event

    def unregister(self, ticket: int) -> None:
        with self.guard:
            self.waiters.pop(ticket, None)

    # ------------------------------------------------------------ a worker that changed rows
    def wake(self, owners: Iterable[int]) -> None:
        """Tell the workers (pids) owning changed rows; this process's own waiters are looked at here."""
        for pid in set(owners):
            if pid == own_pid():
                self._look()
            elif self.directory and pid > 0:
                _poke(os.path.join(self.directory, fifo_name(self.name, pid)))

    # ------------------------------------------------------------ the listener
    def _start(self) -> None:
        if self.pid == own_pid():
            return
        with self.starting:
            if self.pid == own_pid():
                return
            # a forked worker: its own pipe and listener (threads do not survive a fork)
            self.waiters, self.guard = {}, threading.Lock()
            if self.directory:
                path = os.path.join(self.directory, fifo_name(self.name, own_pid()))
                if not os.path.exists(path):
                    os.mkfifo(path, 0o600)
                # read and write: the pipe never reads as closed while no peer has it open
                self.read_fd = self.write_fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
            else:
                self.read_fd, self.write_fd = os.pipe()
                os.set_blocking(self.read_fd, False)
            threading.Thread(target=self._listen, name="admission-wakeups", daemon=True).start()
            self.pid = own_pid()

    def _listen(self) -> None:
        fd = self.read_fd
        pipe = select.poll()  # gevent's under gevent; not select, which refuses a descriptor past 1023
        pipe.register(fd, select.POLLIN)
        while True:
            with self.guard:
                idle = not self.waiters
            try:  # a watch on the pipe, and a timer while there are waiters: no polling
                readable = pipe.poll(None if idle else TICK_SECONDS * 1000)
            except InterruptedError:
                continue
            if readable:
                _drain(fd)
                self._look()
            elif not idle:
                self.tick()

    def _look(self) -> None:
        with self.guard:
            waiters = list(self.waiters.items())
        for ticket, (row, event) in waiters:
            if self.changed(row, ticket):
                event.set()


def _poke(path: str) -> None:
    """A byte to a worker's pipe; a worker that is gone (no reader, no pipe) or a full pipe (a wake-up is pending
    there already) is no matter."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            _write(fd)
    finally:
        os.close(fd)


def _write(fd: int) -> None:
    try:
        os.write(fd, b"\0")
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EPIPE):
            raise


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass
