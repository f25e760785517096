"""Ids in the vendors' style (a prefix and random hex digits), from the OS's randomness read 4 KiB at a time: one
read per id cost a Responses answer four system calls. The buffer is dropped in a forked child, so two workers
never hand out the same bytes. Its slices are handed out by an iterator over their offsets, whose next() the
interpreter runs whole, so two threads (gthread workers) never take the same slice without a lock: under gevent
a lock is gevent's, written in Python, and cost more than the id."""

from __future__ import annotations

import os
from typing import Iterator

_CHUNK = 4096
_SLICE = 16  # bytes each id may take of the buffer (at most; longer ones read the OS's randomness whole)
_state: tuple[bytes, Iterator[int]] = (b"", iter(()))


def _forget() -> None:
    global _state
    _state = (b"", iter(()))


os.register_at_fork(after_in_child=_forget)


def random_hex(nbytes: int) -> str:
    """`nbytes` random bytes (cryptographic, os.urandom's) as hex."""
    global _state
    if nbytes > _SLICE:
        return os.urandom(nbytes).hex()
    buffer, offsets = _state
    at = next(offsets, None)
    if at is None:  # a thread that meets the end too makes a buffer of its own: none is read twice
        buffer, offsets = os.urandom(_CHUNK), iter(range(0, _CHUNK, _SLICE))
        at = next(offsets)
        _state = (buffer, offsets)
    return buffer[at:at + nbytes].hex()


def new_id(prefix: str) -> str:
    """prefix + 24 hex digits."""
    return prefix + random_hex(12)
