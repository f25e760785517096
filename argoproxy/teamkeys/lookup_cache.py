"""The worker's cache of looked-up team keys: known keys and unknown ones apart, each bounded with LRU eviction,
so a client sending random keys (each one unknown) pushes out only other unknown keys, never the records of the
keys in use (the cache used to be cleared whole at 4,096 entries, unknown keys included); and the store reads
under way, one per key, which callers needing the same key wait for together (Reads)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Generic, TypeVar

from argoproxy.teamkeys.records import KeyRecord

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
    """One store read of a key, begun at `started` (the monotonic clock): its record, or what it raised. `taken`
    once someone carries it out: a read begun beside the requests may wait for its turn of the loop (30-300 ms on
    a busy machine), and a request that needs the key meanwhile carries it out itself rather than wait for that."""

    def __init__(self, started: float, taken: bool) -> None:
        self.started = started
        self.taken = taken
        self.record: KeyRecord | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()  # gevent's under a patched worker: a waiting greenlet lets the others run

    def finish(self, record: KeyRecord | None = None, error: BaseException | None = None) -> None:
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
        as a cached one); else a new one. True: the caller must carry it out (a new one, or one not yet taken)."""
        with self._lock:
            read = self._under_way.get(key)
            if read is not None and now - read.started <= fresh_for:
                mine, read.taken = not read.taken, True
                return read, mine
            read = self._under_way[key] = Read(now, taken=True)
            return read, True

    def begin(self, key: str, now: float) -> Read | None:
        """A new read of the key, to be taken by whoever comes first (take); None when one is under way."""
        with self._lock:
            if key in self._under_way:
                return None
            read = self._under_way[key] = Read(now, taken=False)
            return read

    def take(self, read: Read) -> bool:
        """True: the caller carries `read` out; False: someone else does."""
        with self._lock:
            mine, read.taken = not read.taken, True
            return mine

    def end(self, key: str, read: Read) -> None:
        with self._lock:
            if self._under_way.get(key) is read:
                del self._under_way[key]
