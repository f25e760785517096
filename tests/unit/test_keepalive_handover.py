"""The keepalive wrapper hands the first bytes to the request's side before decoding further (issue 22).

Under gevent the helper that produces the answer runs until it blocks; an upstream that sent its whole answer at
once would have it decode up to QUEUE_ITEMS events before the first byte is written. Checked in a gevent
process (cooperative scheduling makes the order deterministic) by recording who ran when."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from gevent import monkey; monkey.patch_all()
from argoproxy.edge import keepalive
from argoproxy.edge.http_objects import Answer

order = []

def make():
    def body():
        for i in range(10):
            order.append(f"made {i}")
            yield b"data: %d\n\n" % i
    return Answer(body(), 200, [("Content-Type", "text/event-stream")])

answer = keepalive.streamed(make, 15.0, [], lambda err: b"", lambda: None)
chunks = iter(answer.chunks)
order.append("written " + next(chunks).decode().split()[1])
rest = b"".join(chunks)
print(" | ".join(order))
print(rest.count(b"data:"))
"""


def test_the_first_event_is_written_before_the_helper_decodes_the_rest():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True).stdout.splitlines()
    order = out[0].split(" | ")
    assert order.index("written 0") < order.index("made 2"), order
    assert out[1] == "9"  # nothing lost behind the hand-over


def test_a_client_that_leaves_during_a_long_item_ends_the_helper():
    """An item longer than QUEUE_ITEMS pieces: the helper queued its pieces without looking at the stop, so a
    client that left mid-item left it blocked on a full queue for good (a thread or greenlet per stream, the
    item and the upstream response never closed)."""
    import threading

    from argoproxy.edge.http_objects import Answer
    from argoproxy.edge import keepalive

    closed = threading.Event()

    def make():
        def body():
            try:
                yield b"data: " + b"x" * (keepalive.PIECE_BYTES * keepalive.QUEUE_ITEMS * 2) + b"\n\n"
                yield b"data: more\n\n"
            finally:
                closed.set()
        return Answer(body(), 200, [("Content-Type", "text/event-stream")])

    answer = keepalive.streamed(make, 5.0, [], lambda err: b"", lambda: None)
    chunks = answer.chunks
    assert next(iter(chunks))
    chunks.close()  # the client went away after its first write
    assert closed.wait(5), "the helper is still blocked on the queue; the upstream body was never closed"
