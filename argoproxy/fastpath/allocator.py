"""glibc's allocator told to keep large freed blocks in each worker (mallopt(3)), instead of handing them back to
the kernel after every request.

A long request body passes through several large buffers (the bytes read, their text, the parsed strings,
the body sent on), each a fresh allocation of its whole size. glibc serves blocks over its mmap threshold with
their own mmap and unmaps them when freed, and trims the top of its heap when more than its trim threshold is
free there (both start at 128 KiB and adapt up to 32 MiB and 64 MiB); so each big request faulted in its
pages again, one at a time. Profiled on a 5 MiB chat request: more time in those page faults than in the
JSON parse (28 ms a request; 17.5 ms with blocks up to 16 MiB kept in the heap).

A worker keeps at most TRIM_THRESHOLD of free memory at the top of its heap; anything above it is returned as
before, and blocks of MMAP_THRESHOLD or more still get their own mapping. Not applied when the environment
already tunes glibc's allocator (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_..., or glibc.malloc.* in
GLIBC_TUNABLES), nor on another C library.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 16 * 1024 * 1024  # blocks smaller than this come from the heap and are reused there
TRIM_THRESHOLD = 32 * 1024 * 1024  # free memory a worker's heap keeps at its top
USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_large_blocks() -> bool:
    """Set the two thresholds in this process; False when left alone (not glibc, or set by the user)."""
    if not _glibc() or any(name in os.environ for name in USER_VARIABLES) or \
            "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):  # the name is unknown outside glibc
        return False
