"""fastpath/stall_timer.py: a streamed body under gevent is read with one timer for the stream, and still raises
socket.timeout from the read, as the socket's own timeout did, when a read waits longer than it.

Run in a gevent process (monkey-patched, as Gunicorn's gevent worker is), on a socket pair."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from gevent import monkey; monkey.patch_all()
import socket, time, gevent
from gevent import timeout as gevent_timeout
from argoproxy.fastpath.stall_timer import timed_reads

made = [0]
start_new = gevent_timeout.Timeout._start_new_or_dummy
def counting(*args, **kwargs):
    t = start_new(*args, **kwargs)
    if args and args[0] is not None:
        made[0] += 1
    return t
gevent_timeout.Timeout._start_new_or_dummy = staticmethod(counting)

def reads(sock):
    while True:
        data = sock.recv(100)
        if not data:
            return
        yield data

a, b = socket.socketpair()
a.settimeout(0.3)

def writer():
    for i in range(20):
        gevent.sleep(0.01)
        b.sendall(b"x%d;" % i)
    gevent.sleep(1.5)  # a stall, five times the read timeout
    b.sendall(b"late")
    b.close()

gevent.spawn(writer)
got, stalled = [], None
try:
    for chunk in timed_reads(a, reads(a)):
        got.append(chunk)
        if len(got) == 1:
            time.sleep(0.6)  # the consumer holds a chunk twice the timeout: its time is not the upstream's
        stalled = time.monotonic()
except socket.timeout:
    print("timeout after", round(time.monotonic() - stalled, 2))
print(b"".join(got).count(b";"), "of 20;", "per-read Timeouts:", made[0], "; socket timeout now", a.gettimeout())
"""


def test_one_timer_per_stream_and_a_stall_still_raises_socket_timeout():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True).stdout.splitlines()
    assert out[0].startswith("timeout after"), out
    assert 0.25 <= float(out[0].split()[-1]) < 1.4  # the stall was cut by the read timeout, not by the data
    count, rest = out[1].split(" of 20;")
    assert count == "20"  # every chunk before the stall arrived, the late one did not
    assert "per-read Timeouts: 0 " in rest  # gevent made no Timeout per read
    assert rest.endswith("socket timeout now None")


def test_outside_gevent_the_socket_keeps_its_own_timeout():
    import socket

    from argoproxy.fastpath.stall_timer import timed_reads
    a, b = socket.socketpair()
    a.settimeout(0.2)
    try:
        b.sendall(b"one")
        reads = timed_reads(a, iter([a.recv(10)]))
        assert list(reads) == [b"one"] and a.gettimeout() == 0.2
    finally:
        a.close()
        b.close()
