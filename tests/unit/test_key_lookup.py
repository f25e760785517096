"""How a worker looks team keys up (teamkeys/service.py, lookup_cache.py, store.py): requests that need a key
whose cached record expired wait for one store read together, a key in use is read again beside the requests so
that none waits, a revocation still reaches every worker within CACHE_SECONDS, and keys.db reads that need no
wait are made on the event loop. Under gevent, in a process of their own (the worker's kind): greenlets switch
only where they wait, so who reads when is decided by the code, not by the machine's load."""

from __future__ import annotations

import subprocess
import sys

from tests.proxy_process import ROOT

SETUP = r"""
from gevent import monkey; monkey.patch_all()
import dataclasses, gevent, gevent.event, time
from argoproxy.teamkeys import service
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.service import CACHE_SECONDS, READ_AHEAD_SECONDS, TeamKeys

class Store:
    "A store whose reads are round trips (other greenlets run meanwhile); `gate` holds them while cleared."
    path = "test"
    def __init__(self):
        self.record = KeyRecord("alice", digest("sk-alice"), "sk-ali", created=time.time())
        self.reads, self.gate, self.fail, self.readers = 0, gevent.event.Event(), False, []
        self.gate.set()
    def available(self): return True
    def find(self, key_digest):
        self.reads += 1
        self.readers.append(gevent.getcurrent())
        self.gate.wait()
        gevent.sleep(0.001)
        if self.fail: raise OSError("keys.db unreadable")
        return self.record

store = Store()
keys = TeamKeys(store)
clock = [1000.0]
keys.ticks = lambda: clock[0]
def at(seconds): clock[0] = 1000.0 + seconds
def lookup(): return keys.lookup(["sk-alice"])
def settle():  # every greenlet that can run runs, and every read let through ends
    for _ in range(5): gevent.sleep(0.002)
"""

ONE_READ = SETUP + r"""
lookups = [gevent.spawn(lookup) for _ in range(20)]
gevent.joinall(lookups)
assert all(g.value is store.record for g in lookups), [g.exception for g in lookups]
assert store.reads == 1, store.reads
at(CACHE_SECONDS + 0.01)  # expired for all at once, as at a worker's 64 concurrent requests
store.record = dataclasses.replace(store.record, revoked=time.time())
lookups = [gevent.spawn(lookup) for _ in range(20)]
gevent.joinall(lookups)
assert store.reads == 2, store.reads
assert all(g.value.revoked for g in lookups)
print("ok")
"""


def run(script: str) -> None:
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_requests_needing_an_expired_key_wait_for_one_read_together():
    """20 greenlets met the expired record at once: each read the key, one after another (with SQLite each a
    round trip through the thread pool: the last waited 0.3-0.6 s at 64 concurrent requests)."""
    run(ONE_READ)


READ_AHEAD = SETUP + r"""
lookup(); assert store.reads == 1
at(READ_AHEAD_SECONDS / 2); lookup(); settle()
assert store.reads == 1  # fresh: no read
store.gate.clear()  # the store is slow now: a read ahead must not hold the request that started it
at(READ_AHEAD_SECONDS + 0.01)
assert lookup() is store.record and not store.record.revoked
settle()
assert store.reads == 2  # the read ahead, beside the request
store.record = dataclasses.replace(store.record, revoked=time.time())
store.gate.set(); settle()
at(READ_AHEAD_SECONDS + 0.02)
assert lookup().revoked and store.reads == 2  # what the read ahead found, from the cache
print("ok")
"""


def test_a_key_in_use_is_read_again_beside_the_requests():
    run(READ_AHEAD)


TAKEN_OVER = SETUP + r"""
lookup()
at(READ_AHEAD_SECONDS + 0.01); lookup()  # a read ahead is begun beside: it waits for its turn of the loop
at(CACHE_SECONDS + 0.01)
store.record = dataclasses.replace(store.record, revoked=time.time())
assert lookup().revoked  # this request read the key itself rather than wait for the helper's turn
assert store.reads == 2 and store.readers[-1] is gevent.getcurrent(), store.readers
settle()
assert store.reads == 2  # the helper, run at last, found the read done
print("ok")
"""


def test_a_request_carries_out_a_read_ahead_that_has_not_begun():
    """A read begun beside the requests waited for its turn of the loop (30-300 ms on the busy VM), and the
    requests that came past CACHE_SECONDS meanwhile waited for it."""
    run(TAKEN_OVER)


BOUND = SETUP + r"""
lookup()
store.gate.clear()  # the read ahead hangs
at(READ_AHEAD_SECONDS + 0.01); lookup(); settle()
assert store.reads == 2
at(CACHE_SECONDS + 0.01)  # the cached record is too old to serve: the request waits for the read under way
waiting = gevent.spawn(lookup); settle()
assert not waiting.ready() and store.reads == 2
store.record = dataclasses.replace(store.record, revoked=time.time())
store.gate.set(); waiting.join(5)
assert waiting.value.revoked and store.reads == 2
at(READ_AHEAD_SECONDS + CACHE_SECONDS + 0.02)  # that read began at READ_AHEAD_SECONDS + 0.01: too old now
lookup(); assert store.reads == 3
print("ok")
"""


def test_a_revocation_reaches_the_worker_within_cache_seconds_however_slow_the_read_ahead():
    run(BOUND)


FAILING = SETUP + r"""
lookup()
store.fail = True
at(READ_AHEAD_SECONDS + 0.01); lookup(); settle()
assert store.reads == 2
at(READ_AHEAD_SECONDS + 0.02); lookup(); settle()
assert store.reads == 2  # a read ahead that failed is not tried again for the same record
at(CACHE_SECONDS + 0.01)
assert lookup() is store.record and store.reads == 3  # read at once, failed: served for KEY_CACHE_SECONDS
at(service.KEY_CACHE_SECONDS + 0.01)
try:
    lookup()
except service.ProxyError as exc:
    assert exc.status == 503
else:
    raise AssertionError("a key not read for KEY_CACHE_SECONDS was served")
print("ok")
"""


def test_a_failing_store_is_not_read_ahead_again_and_the_cache_still_fails_closed():
    run(FAILING)


LOOP_READS = r"""
from gevent import monkey; monkey.patch_all()
import gevent, subprocess, sys, tempfile, os, time
from argoproxy import sqlite_files
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore

path = os.path.join(tempfile.mkdtemp(), "keys.db")
SQLiteKeyStore(path).create(KeyRecord("alice", digest("sk-alice"), "sk-ali", created=time.time()))
pooled = []
real = sqlite_files.off_loop
sqlite_files.off_loop = lambda work: (pooled.append(1), real(work))[1]
keys = SQLiteKeyStore(path)
assert keys.find(digest("sk-alice")).name == "alice"
assert pooled == [1]  # the first read opens the file: in the pool
for _ in range(50):
    assert keys.find(digest("sk-alice")).name == "alice"
assert pooled == [1], len(pooled)  # reads that need no wait: on the loop
# Another process holds a file in exclusive locking mode (taken while no one had it open): a read on the loop would
# wait for it, up to 5 s, every greenlet of the worker with it. It waits in the pool, the loop running. The file is
# one this process never opened: a connection of the stores above, held by a pool thread's last task until that
# thread runs another, would keep WAL's shared lock on theirs and the exclusive lock would never come.
locked = os.path.join(tempfile.mkdtemp(), "keys.db")
subprocess.run([sys.executable, "-c", (
    "import time\n"
    "from argoproxy.teamkeys.records import KeyRecord, digest\n"
    "from argoproxy.teamkeys.store import SQLiteKeyStore\n"
    f"SQLiteKeyStore({locked!r}).create(KeyRecord('alice', digest('sk-alice'), 'sk-ali', created=time.time()))\n")],
    check=True, timeout=30)
holder = subprocess.Popen([sys.executable, "-c", (
    "import sqlite3, sys\n"
    f"db = sqlite3.connect({locked!r}, isolation_level=None, timeout=20)\n"
    "db.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
    "db.execute('BEGIN EXCLUSIVE')\n"
    "db.execute('UPDATE keys SET rpm = 7')\n"
    "print('locked', flush=True)\n"
    "sys.stdin.readline()\n"
    "db.execute('COMMIT')\n"
    "db.close()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert holder.stdout.readline().strip() == "locked"
keys = SQLiteKeyStore(locked)
pooled.clear()
reading = gevent.spawn(keys.find, digest("sk-alice"))
for _ in range(5):  # the loop runs while the read waits for the lock
    gevent.sleep(0.01)
assert not reading.ready() and pooled == [1], (reading.ready(), pooled)
holder.stdin.write("go\n"); holder.stdin.flush()
assert reading.get(timeout=10).rpm == 7
holder.wait(10)
print("ok")
"""


def test_sqlite_reads_are_made_on_the_loop_unless_they_would_wait():
    """A read through gevent's thread pool took 0.1-0.4 s on a busy machine; one that needs no wait (WAL) is made
    on the loop. One that would wait for a lock waits in the pool, the worker's other requests running."""
    run(LOOP_READS)
