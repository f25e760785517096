"""Gunicorn's gevent worker, with new connections spread evenly between the workers.

All gevent workers wait on the one listening socket and whichever runs first accepts. On a busy machine the
worker that is already running wins again and again: a client opening 16 connections at once often got all
16 on one worker, and 1024 simultaneous streams split 693/333, so one worker did twice the work while the
other idled. Here each worker publishes how many connections it holds on a board shared by all workers (an
anonymous shared mmap made in the master before any fork). A worker holding clearly more than its least
loaded live peer stops accepting for a moment and leaves the connection to that peer; if no peer takes it
within PATIENCE the worker accepts anyway, so a stuck or busy peer never holds connections back for long.

Kept-alive connections stay where they were accepted, so an imbalance made at accept time (a burst of
connections while a peer was busy, a worker that was still starting) used to last as long as the client's
pool: 64 connections split 50/14 in most bursts on a loaded 2-core machine, and the p99 at c=64 followed the
busier worker. A worker holding far more than a live peer (SHED_SHIFT) therefore closes one kept-alive
connection after its answer, at most one every SHED_EVERY_MS (`Connection: close`, what Gunicorn does at
max_requests); the client reconnects and the board places the new connection. The shed connection is closed
as RFC 9112 (9.6) asks, FIN after the answer and then reading what the client still sends until it closes
(linger_close): Gunicorn's plain close() with a request the client had pipelined behind the answer still unread
made the kernel reset the connection, and the reset dropped the end of the answer still in the send buffer.

Used for WORKER_CLASS=gevent when more than one worker runs and FAST_PATH is on (argoproxy.serve.gunicorn_app picks it).
"""

from __future__ import annotations

import functools
import mmap
import os
import socket
import time
from types import FrameType
from typing import Protocol

import gevent
from gevent import socket as gsocket
from gevent.server import StreamServer
from gunicorn.workers import ggevent

from argoproxy.fastpath import gunicorn_response


class HasFileno(Protocol):  # a client's socket as Gunicorn hands it (gevent's)
    def fileno(self) -> int: ...

SLOTS = 256  # at most this many workers at once (live ones plus replacements still booting)
FIELDS = 3  # a slot: pid (0 free, -1 booting), open connections, heartbeat in monotonic ms
PID, OPEN, BEAT = range(FIELDS)
# A worker defers to a peer holding fewer than its own connections minus the larger of MARGIN and 1/8 of
# them (deferring costs a wait; a small relative imbalance costs nothing).
MARGIN = 1
SHIFT = 3
RECHECK = 0.001  # seconds between looks while deferring
PATIENCE = 0.010  # seconds a connection may wait for a less loaded peer
ACCEPT_BATCH = 64  # connections accepted in one loop turn at most
STALE_MS = 5000  # a heartbeat older than this: the worker is gone (killed without clearing its slot)
# A worker sheds a kept-alive connection while a live peer holds fewer than its own minus the larger of
# MARGIN + 1 and a quarter of them (wider than the accept rule: small imbalances are not worth a reconnect).
SHED_SHIFT = 2
SHED_EVERY_MS = 10
# No shedding for this long after a connection waited out PATIENCE: the peer is not accepting (stuck, busy, a
# stale heartbeat not yet STALE_MS old), so a shed connection only came back here, one every SHED_EVERY_MS.
SHED_PAUSE_MS = 1000
LINGER = 2.0  # seconds a shed connection waits for its client to close after the answer
LINGER_BYTES = 1 << 20  # what the client may still send meanwhile (read and dropped) at most

# Cell 0: how many slots have been used (readers look no further); then the slots.
_shared = memoryview(mmap.mmap(-1, (1 + SLOTS * FIELDS) * 8)).cast("q")


def _now_ms() -> int:
    return int(time.monotonic() * 1000)  # CLOCK_MONOTONIC: the same clock in every process


class Board:
    """The shared board, seen from one worker's slot."""

    def __init__(self, cells: memoryview = _shared) -> None:
        self.cells = cells
        self.base = self._claim()
        self.shed_at = 0  # when this worker last closed a connection to rebalance (monotonic ms)
        self.pid = 0  # set when the worker publishes its slot

    def _claim(self) -> int:
        """In the master, before the fork: a slot no live or booting worker holds."""
        c, stale = self.cells, _now_ms() - STALE_MS
        for slot in range(SLOTS):
            base = 1 + slot * FIELDS
            if c[base + PID] == 0 or c[base + BEAT] < stale:
                c[base + PID], c[base + OPEN], c[base + BEAT] = -1, 0, _now_ms()
                c[0] = max(c[0], slot + 1)
                return base
        raise RuntimeError(f"more than {SLOTS} gevent workers")

    def publish(self, pid: int) -> None:
        """The worker accepts from now on: peers may defer to it."""
        self.pid = pid
        self.cells[self.base + OPEN] = 0
        self.beat()
        self.cells[self.base + PID] = pid

    def release(self, pid: int) -> None:
        """Free the slot if worker pid still holds it (the master may already have given it to another)."""
        if self.cells[self.base + PID] == pid:
            self.cells[self.base + PID] = 0

    def beat(self) -> None:
        self.cells[self.base + BEAT] = _now_ms()

    def opened(self) -> None:
        if self._mine():
            self.cells[self.base + OPEN] += 1

    def closed(self) -> None:
        if self._mine():
            self.cells[self.base + OPEN] -= 1

    def _mine(self) -> bool:
        """Does this worker still hold its slot? A worker shutting down gracefully released it but still closes
        connections; after a reload the slot may be a new worker's, whose count they must not change."""
        return self.cells[self.base + PID] == self.pid

    def should_defer(self) -> bool:
        """True when a live peer holds clearly fewer connections than this worker (see MARGIN)."""
        mine = self.cells[self.base + OPEN]
        return self._peer_below(mine - max(MARGIN, mine >> SHIFT))

    def should_shed(self) -> bool:
        """True when this worker should close a kept-alive connection after its answer (see SHED_SHIFT)."""
        now = _now_ms()
        if now - self.shed_at < SHED_EVERY_MS:
            return False
        mine = self.cells[self.base + OPEN]
        if not self._peer_below(mine - max(MARGIN + 1, mine >> SHED_SHIFT)):
            return False
        self.shed_at = now
        return True

    def _peer_below(self, limit: int) -> bool:
        """Does a live peer hold fewer than `limit` connections?"""
        c, fresh = self.cells, _now_ms() - STALE_MS
        for base in range(1, 1 + c[0] * FIELDS, FIELDS):
            if c[base + OPEN] < limit and base != self.base and c[base + PID] > 0 and c[base + BEAT] >= fresh:
                return True
        return False


def linger_close(sock: HasFileno) -> None:
    """After a shed answer: send FIN behind it at once, and leave a greenlet reading (and dropping) what the client
    still sends until it closes, LINGER at most. It works on a duplicate of the descriptor, so Gunicorn's own
    close() that follows neither resets the connection nor waits (the worker's count drops at once), and a TLS
    socket keeps its session (its own shutdown() drops it)."""
    try:
        fd = os.dup(sock.fileno())
    except (OSError, ValueError):  # closed meanwhile
        return
    try:
        raw = gsocket.socket(fileno=fd)
    except BaseException:
        os.close(fd)
        raise
    try:
        raw.shutdown(gsocket.SHUT_WR)
    except OSError:  # the client is gone
        raw.close()
        return
    gevent.spawn(_drain, raw)


def _drain(raw: socket.socket) -> None:
    deadline, got = time.monotonic() + LINGER, 0
    try:
        while got < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
            raw.settimeout(left)
            data = raw.recv(65536)
            if not data:
                break  # the client closed: nothing unread, the close below is an orderly one
            got += len(data)
    except OSError:
        pass
    finally:
        raw.close()


class BalancedServer(StreamServer):
    """A StreamServer that accepts waiting connections in batches (one per loop turn starved a busy worker:
    1024 simultaneous streams took about 0.3 s longer to start), looking at the board before each one and
    leaving it to a less loaded worker for up to PATIENCE."""

    def __init__(self, *args: object, board: Board, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.board = board
        self.accepted = 0
        self.deferring_since: float | None = None

    def _do_read(self) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._defer():
                return
            before = self.accepted
            super()._do_read()  # accepts at most one: Gunicorn sets max_accept = 1 with several workers
            if self.accepted == before or self._watcher is None:
                if self.accepted == before:
                    self.deferring_since = None  # the queue is empty: the next connection gets its own PATIENCE
                return  # none waiting, or accepting stopped (pool full, accept errors)

    def _defer(self) -> bool:
        """Stop accepting for RECHECK when a less loaded peer should take the waiting connection."""
        if not self.board.should_defer():
            self.deferring_since = None
            return False
        now = time.monotonic()
        if self.deferring_since is None:
            self.deferring_since = now
        elif now - self.deferring_since >= PATIENCE:
            self.board.shed_at = _now_ms() + SHED_PAUSE_MS  # closing connections would not move them either
            return False  # no peer took it: accept, and keep accepting until the imbalance is gone
        self.stop_accepting()
        self._timer = self.loop.timer(RECHECK)
        self._timer.start(self._start_accepting_if_started)
        return True

    def do_handle(self, *args: object) -> None:
        self.board.opened()  # counted at accept, so the next look at the board sees it
        self.accepted += 1
        try:
            super().do_handle(*args)
        except BaseException:
            self.board.closed()
            raise


class BalancedGeventWorker(ggevent.GeventWorker):
    """Gunicorn's GeventWorker, counting its connections on the shared board."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # in the master, before the fork
        self.board = Board()

    def run(self) -> None:
        # GeventWorker.run builds its StreamServer by this module-level name (this process is this worker).
        ggevent.StreamServer = functools.partial(BalancedServer, board=self.board)
        gunicorn_response.shed_connection = self.board.should_shed
        gunicorn_response.shed_close = linger_close
        self.board.publish(self.pid)
        try:
            super().run()
        finally:
            self.board.release(self.pid)

    def notify(self) -> None:
        super().notify()
        if self.alive:
            self.board.beat()
        else:
            self.board.release(self.pid)  # stopping: it accepts no more

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.board.release(self.pid)
        super().handle_exit(sig, frame)

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        self.board.release(self.pid)
        super().handle_quit(sig, frame)

    def handle(self, listener: object, client: object, addr: object) -> None:  # Gunicorn's, passed on
        try:
            super().handle(listener, client, addr)
        finally:
            self.board.closed()  # opened by BalancedServer.do_handle
