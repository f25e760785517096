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
    def record_usage(self, *args, op=None):
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


HUNG = r"""
import time
from argoproxy.teamkeys import failover
failover.RETRY_SECONDS = 0.0
class Timeout(Exception): pass
class Hung:  # a Redis that hung: every write it received is carried out (later), yet the writer saw a timeout
    path = "redis://x"
    def __init__(self): self.hung, self.done = True, {}
    def record_usage(self, *args, op=None):
        if op not in self.done:  # the store carries a numbered write out once (redis_store.RECORD_ONCE)
            self.done[op] = args[2]
        if self.hung: raise Timeout()
primary = Hung()
store = failover.FailoverStore(primary, "local", errors=(Timeout,))
for i in range(5):
    store.record_usage("k", "m", i, 0, time.time(), None)
primary.hung = False
store.record_usage("k", "m", 99, 0, time.time(), None)
assert sorted(primary.done.values()) == [0, 1, 2, 3, 4, 99], primary.done
assert len({token for token, _ in primary.done}) == 1 and len(primary.done) == 6
print("ok")
"""


def test_writes_that_timed_out_but_were_carried_out_are_not_counted_again():
    """A Redis that hangs (not one that goes away) carries out, once it goes on, the writes that timed out;
    each is sent again under the same number, which the store carries out once."""
    done = subprocess.run([sys.executable, "-c", HUNG], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_tool_calls_price_is_held_in_the_workers_windows_while_redis_is_away():
    """Redis away (REDIS_OUTAGE=local): the price is held in this worker's windows of the key, from what it last
    saw, refused once they are held, and given back (spent when answered) as each call ends; a key it had not seen
    gets one call, as it gets one request."""
    import time

    from argoproxy.teamkeys import failover, windows
    from argoproxy.teamkeys.records import KeyRecord, MoneyBudget, digest

    class Down(Exception):
        pass

    class Away:
        path = "redis://x"

        def hold_money(self, *args):
            raise Down()

        release_money = record_usage = ping = hold_money

    payer = KeyRecord("payer", digest("payer"), "p", budget_usd=MoneyBudget(300, "day"))
    now = time.time()
    seen = list(windows.NEW_STATE)  # what the worker last saw of the key in Redis: nothing spent yet
    seen[windows.MONEY_START] = windows.period_bounds("day", now)[0]
    Away.seen = {payer.name: seen}
    blind = KeyRecord("blind", digest("blind"), "b", budget_usd=MoneyBudget(300, "day"))
    store = failover.FailoverStore(Away(), "local", errors=(Down,))
    assert store.hold_money(blind, now, 100)[1] == "" and store.hold_money(blind, now, 100)[1] == "budget_usd"
    first, second = store.hold_money(payer, now, 100), store.hold_money(payer, now, 100)
    assert first == second == (0.0, "", failover.LOCAL)
    assert store.hold_money(payer, now, 200)[1] == "budget_usd"  # $200 of $300 held: no room for 200 more
    store.release_money(payer, failover.LOCAL, 100, 0, now)  # never answered: given back, nothing spent
    store.release_money(payer, failover.LOCAL, 100, 100, now)  # answered: spent
    assert store.hold_money(payer, now, 200) == (0.0, "", failover.LOCAL)
    assert store.hold_money(payer, now, 1)[1] == "budget_usd"
