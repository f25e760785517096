"""Caches keyed by what clients send (model names): bounded in entries and in the size of each key.

A count alone is not a bound when the key is client text: a model name may be as long as a request body, so
256 kept names of 32 MB each would be 8 GB. Keys longer than `key_chars` (in total, over a tuple's strings)
are built every time and never kept; the rest are kept until the cache is full, then it starts again
(rebuilding an entry costs microseconds).
"""

from __future__ import annotations

from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")
KEY_CHARS = 256  # model names in real use are well under 100 characters


class BoundedCache(Generic[V]):
    __slots__ = ("entries", "key_chars", "data")

    def __init__(self, entries: int, key_chars: int = KEY_CHARS) -> None:
        self.entries = entries
        self.key_chars = key_chars
        self.data: dict[Hashable, V] = {}

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        try:
            return self.data[key]
        except KeyError:
            pass
        value = build()
        if _size(key) <= self.key_chars:
            if len(self.data) >= self.entries:
                self.data.clear()
            self.data[key] = value
        return value

    def __len__(self) -> int:
        return len(self.data)


def _size(key: Hashable) -> int:
    if isinstance(key, str):
        return len(key)
    if isinstance(key, tuple):
        return sum(len(part) for part in key if isinstance(part, str))
    return 0
