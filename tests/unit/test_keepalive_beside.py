"""Under gevent, with the server's write(), a kept-alive stream's body is read on the request's own greenlet and
keepalives are written beside it while it waits (edge/keepalive._Beside). Checked in a gevent process:
who reads the body, the order of the last write and the stream's bookkeeping, keepalives during a pause, and a client gone during a keepalive (the upstream is cut, the relay ends quietly)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from gevent import monkey; monkey.patch_all()
import gevent
from argoproxy.edge import keepalive
from argoproxy.edge.http_objects import Answer

def run(pause=0.0, fail_write=False):
    order, written, aborted = [], [], []
    def make():
        def body():
            try:
                for i in range(4):
                    order.append(f"made {i} {'request' if gevent.getcurrent() is main else 'helper'}")
                    if i == 2 and pause:
                        gevent.sleep(pause)
                    yield b"data: %d\n\n" % i
            finally:
                order.append("bookkeeping")
        return Answer(body(), 200, [("Content-Type", "text/event-stream")])

    def write(data):
        if fail_write:
            raise BrokenPipeError("client gone")
        written.append(data)

    def abort():
        aborted.append(True)

    answer = keepalive.streamed(make, 0.1, [], lambda err: b"", abort, b": keepalive\n\n",
                                lambda: write)
    for data in answer.chunks:
        order.append("written " + data.decode().split()[1])
    return order, written, aborted

main = gevent.getcurrent()
order, written, aborted = run()
print(" | ".join(order))
order, written, aborted = run(pause=0.35)
print(len(written), "|", set(written) == {b": keepalive\n\n"}, "|", [o for o in order if o.startswith("written")])
order, written, aborted = run(pause=0.35, fail_write=True)
print(len(written), aborted, [o for o in order if o.startswith("written")], order[-1])
"""


def test_the_body_is_read_on_the_request_greenlet_with_keepalives_beside_it():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True).stdout.splitlines()
    order = out[0].split(" | ")
    assert all(o.endswith("request") for o in order if o.startswith("made ")), order  # the helper made the head
    assert order.index("written 3") < order.index("bookkeeping"), order  # the last event is out first
    beats, only_beats, events = out[1].split(" | ")
    assert int(beats) >= 2 and only_beats == "True", out[1]
    assert events == "['written 0', 'written 1', 'written 2', 'written 3']"
    assert out[2] == "0 [True] ['written 0', 'written 1'] bookkeeping"  # cut off, quietly, the body closed
