"""The worker's cache of looked-up team keys: known keys and unknown ones apart, each bounded with LRU eviction,
so a client sending random keys (each one unknown) pushes out only other unknown keys, never the records of the
keys in use (the cache used to be cleared whole at 4,096 entries, unknown keys included); and the store reads
under way, one per key, which callers needing the same key wait for together (Reads)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    """At most `size` entries; the least recently used one goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            try:
                self._entries.move_to_end(key)
            except KeyError:  # popped meanwhile by another thread (gthread workers, a read ahead)
                pass
        return value

    def put(self, key: str, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class Read:
    """One store read of a key, begun at `started` (the monotonic clock): its record, or what it raised."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.record: Any = None
        self.error: BaseException | None = None
        self._done = threading.Event()  # gevent's under a patched worker: a waiting greenlet lets the others run

    def finish(self, record: Any = None, error: BaseException | None = None) -> None:
        self.record, self.error = record, error
        self._done.set()

    def wait(self) -> None:
        self._done.wait()


class Reads:
    """The reads under way, by key. A key's cached record expired for every request of a worker at once: each
    read it again, one after the other behind the store's lock (each a round trip through gevent's thread pool),
    and the last waited 0.3-0.6 s at 64 concurrent requests. Now the first begins the read, the others wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # held for dictionary steps only, never across a read
        self._under_way: dict[str, Read] = {}

    def join_or_begin(self, key: str, now: float, fresh_for: float) -> tuple[Read, bool]:
        """The key's read under way if it began within `fresh_for` seconds of `now` (its answer is then as good
        as a cached one); else a new one, which the caller must carry out (True)."""
        with self._lock:
            read = self._under_way.get(key)
            if read is not None and now - read.started <= fresh_for:
                return read, False
            read = self._under_way[key] = Read(now)
            return read, True

    def begin(self, key: str, now: float) -> Read | None:
        """A new read of the key, unless one is under way (None)."""
        with self._lock:
            if key in self._under_way:
                return None
            read = self._under_way[key] = Read(now)
            return read

    def end(self, key: str, read: Read) -> None:
        with self._lock:
            if self._under_way.get(key) is read:
                del self._under_way[key]
