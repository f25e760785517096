"""argoproxy/turns.py: a turn lets a gevent worker's other requests run with their sockets read. gevent.sleep(0)
runs only the greenlets already ready: a request waiting on its socket (a new connection, a /health probe)
was not served until the busy loop waited on a socket of its own (a fast stream of large events: a second)."""

from __future__ import annotations

import subprocess
import sys

from tests.proxy_process import ROOT

SCRIPT = r"""
from gevent import monkey; monkey.patch_all()
import socket, gevent
from argoproxy.turns import turn

def turns_until_served(step):
    a, b = socket.socketpair()
    got = []
    gevent.spawn(lambda: got.append(b.recv(10)))
    gevent.sleep(0)  # the other request starts and waits on its socket
    a.send(b"x")  # its data arrives while this one is busy
    for n in range(1, 50):
        step()
        if got:
            return n
    return None

print([turns_until_served(turn) for _ in range(5)])
"""


def test_a_turn_serves_a_request_waiting_on_its_socket():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(n in ("1", "2") for n in done.stdout.strip().strip("[]").split(", ")), done.stdout

