"""teamkeys.failover: usage kept while Redis was away is written once when it is back, though many greenlets
reach the store at that moment (each answer of a key with token limits writes its usage as it ends)."""

from __future__ import annotations

import subprocess
import sys

from tests.proxy_process import ROOT

SCRIPT = r"""
from gevent import monkey; monkey.patch_all()
import gevent, time
from argoproxy.teamkeys import failover
failover.RETRY_SECONDS = 0.0
class Down(Exception): pass
class Primary:
    path = "redis://x"
    def __init__(self): self.down, self.written = True, []
    def record_usage(self, *args):
        gevent.sleep(0.002)  # a round trip: other greenlets run meanwhile
        if self.down: raise Down()
        self.written.append(args[2])
primary = Primary()
store = failover.FailoverStore(primary, "local", errors=(Down,))
for i in range(20):
    store.record_usage("k", "m", i, 0, time.time(), None)
primary.down = False
greenlets = [gevent.spawn(store.record_usage, "k", "m", 1000 + i, 0, time.time(), None) for i in range(10)]
gevent.joinall(greenlets)
assert all(g.successful() for g in greenlets), [g.exception for g in greenlets]
assert sorted(primary.written) == list(range(20)) + list(range(1000, 1010)), primary.written
print("ok")
"""


def test_usage_kept_in_an_outage_is_written_once_by_greenlets_racing_at_the_return():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
