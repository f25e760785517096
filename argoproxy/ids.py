"""Ids in the vendors' style (a prefix and random hex digits), from the OS's randomness read 4 KiB at a time: one
read per id cost a Responses answer four system calls. The buffer is dropped in a forked child, so two workers
never hand out the same bytes, and taken under a lock, so two threads (gthread workers) never take the same
slice."""

from __future__ import annotations

import os
import threading

_CHUNK = 4096
_buffer = b""
_at = 0
_lock = threading.Lock()


def _forget() -> None:
    global _buffer, _at, _lock
    _buffer, _at, _lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_forget)


def random_hex(nbytes: int) -> str:
    """`nbytes` random bytes (cryptographic, os.urandom's) as hex."""
    global _buffer, _at
    with _lock:
        if _at + nbytes > len(_buffer):
            _buffer, _at = os.urandom(_CHUNK), 0
        start, _at = _at, _at + nbytes
        return _buffer[start:_at].hex()


def new_id(prefix: str) -> str:
    """prefix + 24 hex digits."""
    return prefix + random_hex(12)
