"""What the embedded SQLite stores (the team keys' keys.db, the stored responses' responses.db) share: how a
connection is opened, a write transaction, and how a call is kept off a gevent worker's event loop.

SQLite waits for a lock another process holds inside C, where no greenlet can run: a call made on the loop
stopped every request of the worker, /health included. Under gevent such calls go to gevent's thread pool (the
greenlet that asked waits, the others run); with threads each thread waits on its own. A hop to the pool costs
a gevent worker tens of microseconds of CPU, so a store whose calls are short tries each on the loop first,
without waiting (`first_here`): only a call that meets a lock is made again in the pool, where it may wait.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, Protocol, TypeVar

T = TypeVar("T")
BUSY_SECONDS = 5.0  # how long a statement waits for another process's lock before it fails ("database is locked")


class Executes(Protocol):
    def execute(self, sql: str, args: tuple[Any, ...] = ...) -> Any: ...


def connect(path: Any) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit: `immediate`), shareable by the threads of
    gevent's pool (each store serialises its use with its own lock)."""
    return sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)


def wal(db: sqlite3.Connection) -> None:
    """The file in WAL mode. Two connections that convert a new file at once: the second reads the header, then
    must upgrade its read to a write, and SQLite calls no busy handler there (it could deadlock), so it fails with
    "database is locked" at once (a CI run's `keys create` x 8). It then waits for the first's lock the way that
    does wait (BEGIN IMMEDIATE, up to BUSY_SECONDS) and asks again: the file is WAL by then."""
    for _ in range(3):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
                raise
        with immediate(db):
            pass
    db.execute("PRAGMA journal_mode=WAL")


@contextmanager
def immediate(db: Executes) -> Iterator[Any]:
    """A write transaction, its lock taken at the start (BEGIN IMMEDIATE: no deadlock between two writers that
    both read first); rolled back when the body raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


_GEVENT: Any = None  # gevent's hub getter once the worker is patched; False without gevent
_HERE: ContextVar[bool] = ContextVar("sqlite_here", default=False)  # a call tried on the loop: it must not wait


class Busy(Exception):
    """A call tried on the loop met a lock (its connection in use by a pool thread, or another process writing):
    it is made again off the loop, where it may wait."""


def _hub() -> Any:
    global _GEVENT
    if _GEVENT is None:
        if "gevent.monkey" not in sys.modules:
            return False  # nothing patched, gevent not imported (a command line); not kept: a worker patches later
        try:
            from gevent import get_hub, monkey
            _GEVENT = get_hub if monkey.is_module_patched("socket") else False
        except ImportError:
            _GEVENT = False
    return _GEVENT


def off_loop(work: Callable[[], T]) -> T:
    """`work` in gevent's thread pool when this worker runs under gevent, else here; what it raises is raised
    here, in the caller (the pool would print the thread's traceback to stderr)."""
    hub = _hub()
    if hub:
        done, value = hub().threadpool.apply(_caught, (work,))
        if done:
            result: T = value  # work's own, back from the pool
            return result
        raise value
    return work()


def first_here(work: Callable[[], T], pauses: tuple[float, ...] = ()) -> T:
    """`work` tried here on the event loop, where it must not wait: a lock it meets (Busy, or SQLite's own
    "database is locked" with no busy timeout) sends it to the pool (off_loop), from the start. Its writes are
    whole transactions, rolled back when they fail, so running it again is safe. `pauses`: for a caller no
    client waits on (the write-behind's flusher), seconds to sleep (gevent's: the worker's requests go on)
    before trying here again, each time a lock is met, before the pool: two workers' batches meet at the
    file's lock, and the pool's hop and its thread's turns at the interpreter's lock cost more CPU than the
    write."""
    if not _hub():
        return work()
    try:
        return here(work)
    except Busy:
        pass
    for pause in pauses:
        _sleep(pause)
        try:
            return here(work)
        except Busy:
            pass
    return off_loop(work)


def here(work: Callable[[], T]) -> T:
    """`work` on the event loop, never waiting for a lock: Busy when it meets one."""
    token = _HERE.set(True)
    try:
        return work()
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise
        raise Busy() from None
    finally:
        _HERE.reset(token)


def _sleep(seconds: float) -> None:
    from gevent import sleep  # only under gevent (_hub)
    sleep(seconds)


def waits() -> bool:
    """May this call wait for a lock (off the loop, or without gevent)?"""
    return not _HERE.get()


@contextmanager
def held(lock: Any) -> Iterator[None]:
    """A native lock, taken without waiting on the loop (Busy when another thread holds it)."""
    if not lock.acquire(waits()):
        raise Busy()
    try:
        yield
    finally:
        lock.release()


def busy_timeout(db: Executes, was: bool) -> bool:
    """The connection's busy timeout set for this call: BUSY_SECONDS when it may wait, none on the loop (a lock is
    "database is locked" at once). `was`: the connection's mode; returns the mode now set."""
    wait = waits()
    if wait != was:
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000) if wait else 0}")
    return wait


class ReadConnection:
    """A store's connection for reads alone (WAL: a reader waits for no writer, this worker's or another
    process's), with a native lock of its own, so a write waiting for the file's lock holds no read behind it.
    Opened off the loop (Busy there) once `prepare` made the file and its schema."""

    def __init__(self, path: Any, prepare: Callable[[], Any]) -> None:
        self.path, self.prepare = path, prepare
        self._lock: Any = None  # made in the worker: threads of gevent's pool share the connection
        self._db: sqlite3.Connection | None = None
        self._waits = True  # the connection's busy-timeout mode (busy_timeout)

    @contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        if self._lock is None:
            self._lock = native_lock()
        with held(self._lock):
            if self._db is None:
                if not waits():
                    raise Busy()
                self.prepare()
                self._db = connect(self.path)
            self._waits = busy_timeout(self._db, self._waits)
            yield self._db


def _caught(work: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, work()
    except Exception as exc:  # noqa: BLE001 - handed to the greenlet that asked
        return False, exc


def native_lock() -> Any:
    """A lock real threads can share: threading.Lock is gevent's (greenlets only) once gevent patched it."""
    if "gevent.monkey" not in sys.modules:  # nothing patched: threading's is the native one (gevent not imported)
        return threading.Lock()
    try:
        from gevent.monkey import get_original
    except ImportError:
        return threading.Lock()
    return get_original("_thread", "allocate_lock")()


def within(seconds: float, work: Callable[[], Any]) -> bool:
    """`work` in a real thread of its own, waited for `seconds` at most (False: it had not finished). For a process
    leaving from a signal handler: gevent's loop cannot run there, and the code the signal interrupted may hold a
    store's lock, which the thread then waits for while the process leaves without it."""
    try:
        from gevent.monkey import get_original
        start = get_original("_thread", "start_new_thread")
    except ImportError:
        import _thread
        start = _thread.start_new_thread
    done = native_lock()
    done.acquire()

    def run() -> None:
        try:
            work()
        finally:
            done.release()
    start(run, ())
    return bool(done.acquire(True, seconds))
