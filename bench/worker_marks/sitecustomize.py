"""Loaded by bench/worker_instructions.py's proxies (on their PYTHONPATH), never by the product: in each forked
worker, an OS thread of its own (started before gevent patches threading) that calls os.getpgid once the file
$WORKER_MARKS.zero exists and os.getsid once $WORKER_MARKS.dump exists, so that callgrind, told
--zero-before=os_getpgid --dump-before=os_getsid, counts the worker between the two (neither Gunicorn nor the
proxy calls them)."""

import _thread
import os
import time

_start, _sleep, _exists = _thread.start_new_thread, time.sleep, os.path.exists  # the unpatched ones
_marks = os.environ.get("WORKER_MARKS", "")


def _watch() -> None:
    zeroed = False
    while True:
        _sleep(0.2)
        if not zeroed and _exists(_marks + ".zero"):
            zeroed = True
            os.getpgid(0)
        if zeroed and _exists(_marks + ".dump"):
            os.getsid(0)
            return


if _marks:
    os.register_at_fork(after_in_child=lambda: _start(_watch, ()))
