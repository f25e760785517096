"""Stored responses written just after their answers go out, several in one SQLite transaction (gevent workers
only): a write of its own, with its locks and log pages, cost a stored response more CPU than the door's whole
translation; a batch pays them once. Under gthread or sync workers, and for Redis, each is written before its
answer is sent, as before.

A response is kept before its answer goes out all the same, where every reader finds it: in this worker's
memory until its batch is in the file (`pending`, read first), and a reader on another worker or replica that
misses a fresh id (made in the last FRESH seconds: response ids carry their second) waits for the batch to
land, polling the file, instead of answering "not found" (service.py, StateService.load). A batch waits
FLUSH_DELAY, so that the answers finishing meanwhile join it; a worker stopping writes what it holds (atexit).
What is pending is bounded (MAX_PENDING_BYTES): past that, a response is written before its answer, as before.

What that changes: a whole answer that no longer fits the key's bound, or meets a store that fails, is sent and
not stored (the log says so), as a streamed one always was; the key's bound is still checked before the
upstream is asked, and after a batch fails the next answers are written first again (a 503 while it lasts).
"""

from __future__ import annotations

import atexit
import logging
import time
from typing import Any, Callable

from argoproxy.leaving import at_quick_exit
from argoproxy.sqlite_files import BUSY_SECONDS, within
from argoproxy.state.records import StoredResponse, encoded

log = logging.getLogger("cot_proxy")

FLUSH_DELAY = 0.004  # seconds a batch waits for the answers finishing meanwhile to join it
FRESH = 2.0  # seconds a response id counts as fresh: a reader that misses it waits for its batch
MAX_PENDING_BYTES = 16 * 1024 * 1024  # stored JSON a worker holds in memory, not yet in the file
KNOWN_OWNERS = 4096  # owners whose bytes in use are remembered from the last batch (check_room's read spared)
KNOWN_SECONDS = 1.0  # how long a remembered count stands in for a read
# Seconds the flusher sleeps, each time the file is locked (another worker's batch, a checkpoint), before it
# tries on the loop again; then gevent's thread pool, where it may wait. A batch holds the lock for a
# millisecond or two; the pool's hop cost each batch that met it more CPU than its write.
LOCKED_PAUSES = (0.002, 0.004, 0.008, 0.016, 0.032)
# How long a worker leaving at once (Gunicorn's quick stop: Ctrl+C, SIGINT, SIGQUIT) waits for what it holds to be
# written: the store's own wait for the file's lock
QUIT_WRITE_SECONDS = BUSY_SECONDS


class UnwrittenResponses:
    """Responses held in memory, not yet in the file: by id (in the order they came), their bytes in all and per
    owner (check_room's count)."""

    __slots__ = ("records", "bytes", "by_owner")

    def __init__(self) -> None:
        self.records: dict[str, tuple[StoredResponse, bytes]] = {}
        self.bytes = 0
        self.by_owner: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.records)

    def add(self, rec: StoredResponse, data: bytes) -> None:
        self.records[rec.id] = (rec, data)
        size = len(data)
        self.bytes += size
        by_owner = self.by_owner
        by_owner[rec.owner] = by_owner.get(rec.owner, 0) + size

    def remove(self, resp_id: str) -> bool:
        found = self.records.pop(resp_id, None)
        if found is None:
            return False
        owner, size = found[0].owner, len(found[1])
        self.bytes -= size
        left = self.by_owner[owner] - size
        if left:
            self.by_owner[owner] = left
        else:
            del self.by_owner[owner]
        return True


class WriteBehind:
    """`io(fn, *args)`: the state's store call (service.py's StateService.io); `store`: its SQLite store."""

    def __init__(self, io: Callable[..., Any], store: Any) -> None:
        self.io, self.store = io, store
        # Two generations, so that a batch leaves memory whole once written (no per-response bookkeeping after
        # its write): those the next batch takes, and the batch being written (readable until it is in the file).
        self.pending = UnwrittenResponses()
        self.writing = UnwrittenResponses()
        self.known: dict[str, tuple[int, float]] = {}  # owner -> (bytes in the store after a batch, when)
        self.wake: Any = None  # the flusher's event (gevent), made with it
        self.deleted: list[str] = []  # of the batch being written, those deleted meanwhile: deleted once written
        self.exiting = False
        # False after a batch failed (the store locked past its wait, the disk full): responses are written before
        # their answers again, so that those answers are 503s rather than sent unstored, until a write succeeds.
        self.healthy = True
        self._active: bool | None = None

    def active(self) -> bool:
        """Writing behind needs the gevent loop (its flusher is a greenlet); known once the worker runs."""
        if self._active is None:
            from argoproxy.turns import under_gevent
            self._active = under_gevent()
        return self._active

    # ---------------------------------------------------------------- writing
    def put(self, rec: StoredResponse) -> None:
        """Keep `rec` (a new response, not a background run's): in the next batch, or now (no gevent, too much
        pending). Past MAX_RESPONSE_BYTES, StoreFull now, before its answer is sent."""
        if self.exiting or not self.healthy or not self.active() or \
                self.pending.bytes + self.writing.bytes > MAX_PENDING_BYTES:
            self.io(self.store.put_response, rec)  # StoreFull or a 503 here: the answer is not sent unstored
            self.healthy = True
            return
        self.pending.add(rec, encoded(rec))
        if self.wake is None:
            self._start()
        self.wake.set()

    def _start(self) -> None:
        import gevent
        self.wake = gevent.event.Event()
        gevent.spawn(self._run)
        atexit.register(self.at_exit)
        HOLDING.append(self)
        at_quick_exit(write_held)  # no atexit runs then (Gunicorn's quick stop)

    def _run(self) -> None:
        import gevent
        while True:
            self.wake.wait()
            gevent.sleep(FLUSH_DELAY)
            self.wake.clear()
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the flusher must outlive a bad batch
                log.warning("response store: a batch of stored responses failed (%s)", type(exc).__name__)

    def flush(self) -> None:
        """The pending responses written in one transaction; they stay readable from memory until it is done."""
        if not self.pending:
            return
        writing = self.writing = self.pending
        self.pending = UnwrittenResponses()
        try:  # the batch read at each try: one dropped while a try waited out another's lock is left out
            totals = self.io(lambda: self.store.put_encoded(list(writing.records.values())), pauses=LOCKED_PAUSES)
        except Exception as exc:  # noqa: BLE001 - the store away: these are lost, as an unsaved stream is
            log.warning("response store: %d responses not stored (%s)", len(writing),
                        getattr(exc, "message", type(exc).__name__))
            self.healthy = False
            totals = {}
        finally:
            self.writing = UnwrittenResponses()
        deleted, self.deleted = self.deleted, []
        for resp_id in deleted:
            self.io(self.store.delete_response, resp_id)
        now = time.monotonic()
        if len(self.known) > KNOWN_OWNERS:
            self.known.clear()
        self.known.update((owner, (used, now)) for owner, used in totals.items())

    def held(self) -> dict[str, tuple[StoredResponse, bytes]]:
        """Every response held in memory: the batch being written and the next one."""
        return {**self.writing.records, **self.pending.records}

    def at_quick_exit(self) -> None:
        """What at_exit does, said first (the log line comes before the write: a stuck write is seen waiting)."""
        if self.pending or self.writing:
            log.info("response store: writing the %d responses held in memory before the worker leaves",
                     len(self.held()))
        self.at_exit()

    def at_exit(self) -> None:
        """A stopping worker writes what it holds (the loop no longer runs: straight to the file), a batch cut
        short in its write included (written again: the same rows), and deletes again those of that batch
        deleted meanwhile: its write may have gone through without its flusher resuming to do so."""
        self.exiting = True
        held = self.held()
        deleted, self.deleted = self.deleted, []
        if held:
            try:
                self.store.put_encoded(list(held.values()))
            except Exception as exc:  # noqa: BLE001
                log.warning("response store: %d responses not stored at exit (%s)", len(held), type(exc).__name__)
            self.pending, self.writing = UnwrittenResponses(), UnwrittenResponses()
        for resp_id in deleted:
            try:
                self.store.delete_response(resp_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("response store: a deleted response not deleted again at exit (%s)", type(exc).__name__)

    # ---------------------------------------------------------------- reading
    def get(self, resp_id: str) -> StoredResponse | None:
        found = self.pending.records.get(resp_id) or self.writing.records.get(resp_id)
        return found[0] if found is not None else None

    def get_many(self, ids: list[str]) -> dict[str, StoredResponse]:
        found: dict[str, StoredResponse] = {}
        for generation in (self.pending.records, self.writing.records):
            found.update((i, generation[i][0]) for i in ids if i in generation)
        return found

    def drop(self, resp_id: str) -> None:
        """A held response deleted: it is not written after all (deleted again once its batch is written)."""
        self.pending.remove(resp_id)
        if self.writing.remove(resp_id):
            self.deleted.append(resp_id)

    def used(self, owner: str) -> int | None:
        """The owner's bytes in use, from the last batch and what is held, while that is recent; else None."""
        known = self.known.get(owner)
        if known is None or time.monotonic() - known[1] > KNOWN_SECONDS:
            return None
        return known[0] + self.pending.by_owner.get(owner, 0) + self.writing.by_owner.get(owner, 0)


HOLDING: list[WriteBehind] = []  # this process's, their flushers started (a forked worker starts its own)


def write_held() -> None:
    """A worker leaving at once (argoproxy/leaving.py's hooks, run by serve/gunicorn_app.py's _quit_now from a
    signal handler before os._exit: no atexit runs) writes the responses it holds, answered already, in a thread of its own (the loop cannot run
    there, and the code the signal interrupted may hold the store), for QUIT_WRITE_SECONDS at most."""
    mine = [behind for behind in HOLDING if behind.pending or behind.writing]
    if mine:
        def write() -> None:
            for behind in mine:
                behind.at_quick_exit()
        within(QUIT_WRITE_SECONDS, write)
