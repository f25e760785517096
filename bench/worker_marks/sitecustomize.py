"""Loaded by bench/worker_instructions.py's proxies (on their PYTHONPATH), never by the product: in each forked
worker, an OS thread of its own (started before gevent patches threading) that calls os.getpgid once the file
$WORKER_MARKS.zero exists and os.getsid once $WORKER_MARKS.dump exists, so that callgrind, told
--zero-before=os_getpgid --dump-before=os_getsid, counts the worker between the two (neither Gunicorn nor the
proxy calls them). Between the two it counts the garbage collector's passes (written to $WORKER_MARKS.gc);
WORKER_GC=off turns the collector off for that window."""

import _thread
import gc
import os
import time

_start, _sleep, _exists = _thread.start_new_thread, time.sleep, os.path.exists  # the unpatched ones
_marks = os.environ.get("WORKER_MARKS", "")


_collections = [0, 0, 0, 0]  # passes over generations 0, 1 and 2; the objects they freed


def _count(phase: str, info: dict) -> None:
    if phase == "stop":
        _collections[info["generation"]] += 1
        _collections[3] += info["collected"]


def _watch() -> None:
    zeroed = False
    while True:
        _sleep(0.2)
        if not zeroed and _exists(_marks + ".zero"):
            zeroed = True
            if os.environ.get("WORKER_GC") == "off":
                gc.disable()
            _collections[:] = [0, 0, 0, 0]
            gc.callbacks.append(_count)
            os.getpgid(0)
        if zeroed and _exists(_marks + ".dump"):
            os.getsid(0)
            with open(_marks + ".gc", "w") as out:
                out.write(" ".join(map(str, _collections)))
            return


if _marks:
    os.register_at_fork(after_in_child=lambda: _start(_watch, ()))
