"""Int64 cells shared by the workers of one instance: a file mapped into every worker's memory.

Under Gunicorn each worker is its own process; what must add up across them (requests per minute of a client
key, which deployment is cooling down) lives in a small file in a directory the master makes before forking
(SHARED_DIR_ENV, removed when the master exits; argoproxy/serve/gunicorn_hooks.py), mapped with MAP_SHARED by every
worker. Without that directory (unit tests, a bare Flask app) the cells are private to the process.

Single cells are read and written with plain 8-byte stores (atomic on the platforms we run on); a
read-modify-write over several cells holds `lock()`: a lock of the process's own, then an flock on the file (two
system calls, ~2 us). An flock belongs to the open file, which a process's threads share: it keeps other
processes out, not another thread of the same gthread worker.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import tempfile
import threading
from contextlib import nullcontext

SHARED_DIR_ENV = "COT_PROXY_SHARED_DIR"
OWNER_ENV = "COT_PROXY_SHARED_DIR_OWNER"
CELL = 8


class SharedCells:
    """`count` int64 cells; `cells[i]` reads and writes one. `guard`: cells of the same directory whose lock this
    one's lock() takes, so that one critical section writes both (one flock where each file would take its own)."""

    _threads: threading.Lock
    _lock_fd: int  # the file whose flock lock() takes: its own, or its guard's

    def __init__(self, name: str, count: int, directory: str | None = None, guard: SharedCells | None = None) -> None:
        directory = os.environ.get(SHARED_DIR_ENV) if directory is None else directory
        size = max(1, count) * CELL
        self.count = count
        if directory:
            self.path = os.path.join(directory, name)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)  # new bytes read as zero; a peer truncating to the same size is harmless
            self._map = mmap.mmap(self._fd, size)
        else:
            self.path = ""
            self._fd = -1
            self._map = mmap.mmap(-1, size)
        self.cells = memoryview(self._map).cast("q")
        self._threads = threading.Lock() if guard is None else guard._threads
        self._lock_fd = self._fd if guard is None else guard._lock_fd

    def close(self) -> None:
        """Unmap and close (the master reading a dead worker's cells once)."""
        self.cells.release()
        self._map.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._lock_fd = -1 if self._lock_fd == self._fd else self._lock_fd
            self._fd = -1

    def lock(self) -> Locked | nullcontext[memoryview]:
        """Exclusive access across the workers (nothing to hold for process-private cells): `with cells.lock() as c`."""
        return Locked(self._threads, self._lock_fd, self.cells) if self._lock_fd >= 0 else nullcontext(self.cells)


# lock()'s two holds are classes, not a generator: a contextlib.contextmanager costs some 70 Python bytecodes a use
# (the status page takes two locks a request).
class Locked:
    """The process's own lock, then the file's flock, until the block ends."""

    __slots__ = ("threads", "fd", "cells")

    def __init__(self, threads: threading.Lock, fd: int, cells: memoryview) -> None:
        self.threads, self.fd, self.cells = threads, fd, cells

    def __enter__(self) -> memoryview:
        self.threads.acquire()
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.threads.release()
            raise
        return self.cells

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.threads.release()


def prepare_shared_dir() -> str:
    """In the Gunicorn master, before the fork: a fresh directory for this run's shared cells."""
    pid = str(os.getpid())
    current = os.environ.get(SHARED_DIR_ENV)
    if current and os.environ.get(OWNER_ENV) == pid and os.path.isdir(current):
        return current  # a reload in the same master keeps the counts
    path = tempfile.mkdtemp(prefix="cot_proxy_shared_")
    os.environ[SHARED_DIR_ENV] = path
    os.environ[OWNER_ENV] = pid
    return path


def remove_shared_dir() -> None:
    """When the master that made the directory exits."""
    import shutil
    path = os.environ.get(SHARED_DIR_ENV)
    if path and os.environ.get(OWNER_ENV) == str(os.getpid()):
        shutil.rmtree(path, ignore_errors=True)
