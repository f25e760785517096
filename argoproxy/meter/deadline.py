"""A decoder's CPU budget: the bytes a library decodes (Pillow, pypdf), handed to it as a file whose reads stop it
once the thread has spent its budget. Neither library bounds the time it takes over a hostile file (a PDF of a
million cross-reference entries, a GIF of a million frames), and both read as they go, so the reads are where the
budget is checked; what either does between two reads is bounded by the limits each sets (pypdf's decompressed
stream size, Pillow's pixels). Thread CPU time: a gevent worker's other requests do not run while a decoder does,
and a gthread worker's do not count against it."""

from __future__ import annotations

import io
import time


class OutOfTime(BaseException):
    """The decoder spent its budget (a BaseException: the libraries' own `except Exception` do not swallow it)."""


class Budgeted(io.BytesIO):
    """`data` as a file, each read after `seconds` of this thread's CPU time raising OutOfTime."""

    CHECK_EVERY = 32  # reads between two looks at the clock (a look costs about a read)

    def __init__(self, data: bytes, seconds: float) -> None:
        super().__init__(data)
        self.until = time.thread_time() + seconds
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads % self.CHECK_EVERY == 0 and time.thread_time() > self.until:
            raise OutOfTime
        return super().read(size)
