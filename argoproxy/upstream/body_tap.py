"""What a journal keeps of a body it must not hold whole: the first JOURNAL_BODY_BYTES bytes, the total length
and the sha256, taken as the bytes pass. A stream of any size costs the same few bytes, and the hash still
identifies the whole body (compare it with a copy the client or the upstream kept)."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator


class BodyTap:
    """A body's bounded prefix, total length and sha256, fed piece by piece."""

    __slots__ = ("limit", "head", "size", "_sha")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.size = 0
        self._sha = hashlib.sha256()

    @classmethod
    def of(cls, data: bytes, limit: int) -> "BodyTap":
        tap = cls(limit)
        tap.add(data)
        return tap

    def add(self, data: bytes) -> None:
        self.size += len(data)
        self._sha.update(data)
        room = self.limit - len(self.head)
        if room > 0:
            self.head += data[:room]

    def tapped(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The chunks, unchanged, each fed to the tap on its way."""
        for data in chunks:
            self.add(data)
            yield data

    @property
    def over(self) -> bool:
        """The body is longer than the limit: a journal records summary() instead of the body."""
        return self.size > self.limit

    def summary(self) -> dict[str, Any]:
        """The journal's record of a body longer than its limit (the prefix as text; a character the cut split,
        or bytes that are not UTF-8, become U+FFFD)."""
        return {"truncated": True, "bytes": self.size, "sha256": self._sha.hexdigest(),
                "prefix": self.head.decode("utf-8", "replace")}
