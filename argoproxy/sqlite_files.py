"""What the embedded SQLite stores (the team keys' keys.db, the stored responses' responses.db) share: how a
connection is opened, a write transaction, and how a call is kept off a gevent worker's event loop.

SQLite waits for a lock another process holds inside C, where no greenlet can run: a call made on the loop
stopped every request of the worker, /health included. Under gevent such calls go to gevent's thread pool (the
greenlet that asked waits, the others run); with threads each thread waits on its own.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol, TypeVar

T = TypeVar("T")
BUSY_SECONDS = 5.0  # how long a statement waits for another process's lock before it fails ("database is locked")


class Executes(Protocol):
    def execute(self, sql: str, args: tuple = ...) -> Any: ...


def connect(path: Any) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit: `immediate`), shareable by the threads of
    gevent's pool (each store serialises its use with its own lock)."""
    return sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)


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


def off_loop(work: Callable[[], T]) -> T:
    """`work` in gevent's thread pool when this worker runs under gevent, else here; what it raises is raised
    here, in the caller (the pool would print the thread's traceback to stderr)."""
    global _GEVENT
    if _GEVENT is None:
        try:
            from gevent import get_hub, monkey
            _GEVENT = get_hub if monkey.is_module_patched("socket") else False
        except ImportError:
            _GEVENT = False
    if _GEVENT:
        done, value = _GEVENT().threadpool.apply(_caught, (work,))
        if done:
            return value
        raise value
    return work()


def _caught(work: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, work()
    except Exception as exc:  # noqa: BLE001 - handed to the greenlet that asked
        return False, exc


def native_lock() -> Any:
    """A lock real threads can share: threading.Lock is gevent's (greenlets only) once gevent patched it."""
    try:
        from gevent.monkey import get_original
    except ImportError:
        return threading.Lock()
    return get_original("_thread", "allocate_lock")()
