"""A decoder's CPU budget, held whatever path the library takes: a watchdog (a real thread, one per decoding)
reads the decoding thread's CPU clock and, once it has spent its budget, raises OutOfTime in it
(PyThreadState_SetAsyncExc, delivered at the next bytecode). Neither pypdf nor Pillow bounds its time over a
hostile file, and neither reads the file at every step: pypdf looks for each object missing from a cross-reference
by copying and searching the whole buffer, never calling read(), so a check inside read() was walked around (two
requests of a 20 MB PDF naming 400 missing pages held a gevent worker 146 s). Only a single C call (one search of
the file, one decompressed stream, bounded by the file's size and the libraries' limits) runs past the budget.
Thread CPU time: a gevent worker's other requests do not run while a decoder does, and a gthread worker's do not
count against it. Nothing is paid on the decoding thread itself (a profile hook checking the clock made pypdf
2-3x slower)."""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

from argoproxy.sqlite_files import native_lock


class OutOfTime(BaseException):
    """The decoder spent its budget (a BaseException: the libraries' own `except Exception` do not swallow it)."""


@contextmanager
def cpu_bounded(seconds: float) -> Iterator[None]:
    """The block, stopped by OutOfTime once this thread has spent `seconds` of CPU in it. OutOfTime may also be
    raised as the block ends (a watchdog that fired just then): catch it around the `with`. Not nested (the
    inner block's end clears what the outer's watchdog fired)."""
    ident = _original("_thread", "get_ident")()
    clock = time.pthread_getcpuclockid(ident)
    running, firing, ended = native_lock(), native_lock(), [False]
    running.acquire()
    _original("_thread", "start_new_thread")(_watch, (ident, clock, time.clock_gettime(clock) + seconds,
                                                      running, firing, ended))
    try:
        yield
    finally:
        with firing:  # from here on the watchdog cannot fire
            ended[0] = True
        running.release()
        _async_raise(ident, None)  # one it fired that is still pending is cleared


def _watch(ident: int, clock: int, until: float, running: Any, firing: Any, ended: list[bool]) -> None:
    """Wait without CPU for the block to end, waking each time its CPU may be spent to read the clock."""
    while not running.acquire(True, max(until - time.clock_gettime(clock), 0.001)):
        if time.clock_gettime(clock) >= until:
            with firing:
                if not ended[0]:
                    _async_raise(ident, OutOfTime)
            return
    running.release()


def _async_raise(ident: int, exception: type[BaseException] | None) -> None:
    """`exception` raised in the thread `ident` at its next bytecode (None: a pending one cleared)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exception) if exception
                                               else ctypes.c_void_p(None))


def _original(module: str, name: str) -> Callable[..., Any]:
    """The function gevent's patching replaced (a real thread, a thread's own id), or the module's own."""
    try:
        from gevent.monkey import get_original
    except ImportError:
        return getattr(__import__(module), name)  # type: ignore[no-any-return]
    return get_original(module, name)  # type: ignore[no-any-return]
