"""The kept-alive stream's handoff (edge/handoff.py): a plain queue and thread without gevent; under gevent a
bounded channel on the hub. The gevent cases run in a monkey-patched subprocess (cooperative scheduling makes
the order of events deterministic there)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
from pathlib import Path

from argoproxy.edge import handoff

ROOT = Path(__file__).resolve().parents[2]


def test_without_gevent_a_standard_queue():
    assert not handoff.under_gevent()
    assert isinstance(handoff.channel(4, 1.0), queue.Queue)


SCRIPT = r"""
from gevent import monkey; monkey.patch_all()
import json, queue, time, gevent
from argoproxy.edge import handoff

out = {"green": handoff.under_gevent(), "type": type(handoff.channel(2, 1.0)).__name__}

# order and backpressure: a producer of 10 items into 3 places waits for the reader
order = []
ch = handoff.channel(3, 5.0)
def produce():
    for i in range(10):
        ch.put(i)
        order.append(f"put {i}")
    ch.put(None)
handoff.start_helper(produce)
got = []
while True:
    item = ch.get(timeout=5.0)
    if item is None:
        break
    order.append(f"got {item}")
    got.append(item)
out["got"] = got
out["order"] = order

# a get on an empty channel gives up after its timeout; an item put later is still there after it
ch = handoff.channel(3, 0.05)
t0 = time.monotonic()
try:
    ch.get(timeout=0.05)
    out["timed_out"] = False
except queue.Empty:
    out["timed_out"] = True
out["waited"] = time.monotonic() - t0
ch.put("late")
out["late"] = ch.get(timeout=0.05)

# two puts before the reader runs wake it once and lose nothing
ch = handoff.channel(8, 5.0)
def two():
    ch.put(1)
    ch.put(2)
gevent.spawn(two)
out["two"] = [ch.get(), ch.get()]

# a reader killed while it waits leaves no timer behind to wake a dead waiter
ch = handoff.channel(3, 0.05)
reader = gevent.spawn(ch.get, 0.05)
gevent.sleep(0)
reader.kill()
gevent.sleep(0.1)  # past the timeout: a timer left running would switch into the dead greenlet
ch.put("after")
out["after_kill"] = ch.get()

try:
    ch.get(timeout=1.0)
    out["other_timeout"] = "accepted"
except ValueError:
    out["other_timeout"] = "refused"
print(json.dumps(out))
"""


def test_under_gevent_a_green_channel():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    out = json.loads(result.stdout)
    assert out["green"] and out["type"] == "GreenChannel"
    assert out["got"] == list(range(10))
    order = out["order"]
    assert order.index("put 3") > order.index("got 0")  # the fourth put waited for a place
    assert out["timed_out"] and out["waited"] >= 0.04 and out["late"] == "late"
    assert out["two"] == [1, 2]
    assert out["after_kill"] == "after"
    assert out["other_timeout"] == "refused"
