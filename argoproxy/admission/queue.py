"""Admission: each deployment's concurrency limit, and a fair queue in front of it, shared by the workers.

A deployment with a limit (`max_concurrency` on its entry, or MAX_CONCURRENCY for all; `auto`: asked of the
server, routing/slots.py) is sent at most that many requests at once by this instance. A request that finds
every deployment of its pool full waits here, not in the server's own queue, and is let in by weighted fair
queueing between flows (a flow: the client's key, routing/flows.py): each request's start tag is
max(virtual time, its flow's last finish tag), its finish tag start + reservation / weight, and a slot that
frees goes to the waiter with the smallest finish tag. A key that floods the queue pushes only its own tags
forward, so another key's request overtakes its backlog. With ADMISSION_KEY_SHARE below 1, a key holds at most
that share of a pool's slots while another key was active in the last ACTIVE_SECONDS (a slot may then stay
free for the other key's next turn).

The wait is bounded: a request whose estimated wait (the queue ahead of it, times the pool's mean request
time, over its slots) passes ADMISSION_MAX_WAIT, or the client's own timeout, is answered 429 with Retry-After
at once; one that still waits that long is answered 503 with Retry-After.

The queue is fair in space too: its rows (ADMISSION_QUEUE_SIZE, one table for the instance) are shared between
the flows waiting by weight. When every row is taken, a request whose flow holds fewer rows than its share
(rows x its weight / the weights of the flows waiting, its own counted) takes the row of the newest waiter of the
flow furthest over its share, which is answered 429 queue_full naming its places and its share; a request whose
flow holds its share already is answered so itself.

Everything lives in cells the worker processes share (argoproxy/shared_cells.py; the layout:
admission/cells.py), under one flock: counts in flight, limits, flows and the waiters' table. A waiter
sleeps until the worker that changes its row (a slot granted, its place taken) wakes it
(admission/wakeups.py), its client's socket watched (or looked at every LOOK_SECONDS) meanwhile; so the
queue is one queue per instance, whichever worker a request arrived on. Across replicas each
instance keeps its own (docs/admission.md: the arithmetic). What each worker holds is also in a ledger of its
own, so that the master gives a killed worker's slots back (admission_cells.release_dead_worker).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Hashable, Mapping, Sequence, TypeVar

from argoproxy.errors import ProxyError
from argoproxy.admission.cells import (D_IN_FLIGHT, D_LIMIT, D_MEAN_MS, D_WIDTH, F_FINISH, F_HELD, F_POOL, F_ROWS,
                                       F_SEEN, F_WEIGHT, FREE, GRANTED, P_VTIME, P_WAITING, P_WIDTH, W_FINISH,
                                       W_FLOW, W_GRANTED, W_OUSTED, W_OUSTED_AFTER, W_OUSTED_HELD, W_OUSTED_SHARE,
                                       W_OWNER, W_POOL, W_PREFER, W_START, W_STATE, W_TICKET, WAITERS, WAITING,
                                       Layout, Ledgers, cells_name)
from argoproxy.admission.flow_table import MOST_UNITS, SCALE, FlowTable
from argoproxy.admission.waits import QueueWaits
from argoproxy.admission.wakeups import Wakeups
from argoproxy.per_process import pid as own_pid
from argoproxy.shared_cells import SharedCells

K = TypeVar("K", bound=Hashable)
Watch = Callable[[Callable[[], None]], "Callable[[], None] | None"]

ACTIVE_SECONDS = 10.0  # a key counts as active this long after its last request (ADMISSION_KEY_SHARE)
MEAN_WEIGHT = 0.2  # of each new duration in a deployment's mean request time
LOOK_SECONDS = 0.5  # a waiter looks at its client's socket this often (woken at once when its row changes)...
WATCHED_LOOK_SECONDS = 5.0  # ...or this often when the socket is watched (gevent: woken at once when it closes)
# A flow's start tag is at most AHEAD past the virtual time (refused and departed waiters push their flow's tags
# without being served; the tags' other bounds: flow_table.py).
AHEAD = 1 << 58


@dataclass
class Seat:
    """A slot of one deployment, held by one request until `release`."""
    pool: int
    dep: int
    flow: int
    started: float
    waited: float = 0.0
    released: bool = False


class QueueRefused(ProxyError):
    """Admission's refusal: the queue is too long for this request's bound."""


class Departed(Exception):
    """The client of a waiting request left: it is out of the queue."""


def fair_shares(rows: int, weights: Mapping[K, float]) -> dict[K, float]:
    """Each flow's share of the queue's `rows`: rows x its weight / the sum of the weights."""
    total = sum(weights.values())
    return {flow: rows * weight / total for flow, weight in weights.items()}


def furthest_over(held: Mapping[K, int], shares: Mapping[K, float]) -> K | None:
    """The flow holding the most rows past its share (None: none holds more than its share)."""
    over = {flow: held.get(flow, 0) - share for flow, share in shares.items() if held.get(flow, 0) > share}
    return max(over, key=lambda flow: over[flow]) if over else None


class Admission(FlowTable):
    """The deployments' slots and the queue before them; its flows' cells: flow_table.py."""

    def __init__(self, pools: Sequence[Sequence[int]], deployments: int, limits: Sequence[int],
                 key_share: float = 1.0, max_wait: float = 60.0, cells: SharedCells | None = None,
                 name: str = "", clock: Callable[[], float] = time.time,
                 pause: Callable[[threading.Event, float], object] | None = None, waiters: int = WAITERS) -> None:
        self.pools = [list(p) for p in pools]  # deployment indexes of each pool
        self.pool_of = {d: i for i, p in enumerate(self.pools) for d in p}
        self.n = deployments
        self.key_share = key_share
        self.max_wait = max_wait
        self.clock = clock
        self.pause = pause or (lambda event, seconds: event.wait(seconds))  # a waiter between two looks
        layout = Layout(deployments, len(self.pools), waiters)
        self.p0, self.f0, self.w0 = layout.p0, layout.f0, layout.w0
        self.rows, self.places = layout.rows(), waiters
        self.cells = cells or SharedCells(cells_name(name, waiters), layout.size)
        self.ledgers = Ledgers(self.cells, name, layout)  # what this worker holds, for the master if it dies
        self.wakeups = Wakeups(self.ledgers.directory, name, self._changed, self._tick)
        self.tickets = itertools.count(1)
        self.waits: QueueWaits | None = None  # what the status page shows of each key's waits (keep_waits)
        c = self.cells.cells
        for i, limit in enumerate(limits):
            if limit > 0 or c[i * D_WIDTH + D_LIMIT] == 0:
                c[i * D_WIDTH + D_LIMIT] = limit  # configured; 0 and auto (-1) until the server says

    # ------------------------------------------------------------ reading
    def limit(self, dep: int) -> int:
        """0: no limit; -1: asked of the server, not known yet (no limit meanwhile)."""
        return int(self.cells.cells[dep * D_WIDTH + D_LIMIT])

    def set_limit(self, dep: int, limit: int) -> None:
        self.cells.cells[dep * D_WIDTH + D_LIMIT] = limit

    def in_flight(self, dep: int) -> int:
        return int(self.cells.cells[dep * D_WIDTH + D_IN_FLIGHT])

    def waiting(self, pool: int) -> int:
        return int(self.cells.cells[self.p0 + pool * P_WIDTH + P_WAITING])

    def mean_seconds(self, dep: int) -> float:
        return self.cells.cells[dep * D_WIDTH + D_MEAN_MS] / 1000

    # ------------------------------------------------------------ entering
    def enter(self, pool: int, flow: str, cost: int, weight: float = 1.0, *, prefer: int = -1,
              tried: set[int] | frozenset[int] = frozenset(),
              usable: Callable[[int], bool] = lambda d: True, bound: float | None = None,
              gone: Callable[[], bool] | None = None, watch: Watch | None = None, label: str = "") -> Seat:
        """A seat on a deployment of `pool` (indexes in `self.pools[pool]`), now or after a fair wait; QueueRefused
        when the wait would pass `bound` (default max_wait). `prefer`: the deployment to seat it on while that
        has room (cache-aware routing: where its conversation is); `gone`:
        whether the client left, asked at each look at the queue (Departed then: it leaves the queue at once, and
        a slot granted meanwhile goes to the next waiter); `watch(wake)`: watches the client's socket, calls
        `wake` when it may have left, and returns what stops the watch (None: cannot; `gone` is asked every
        LOOK_SECONDS instead); `label`: the key its wait is kept under (keep_waits)."""
        bound = self.max_wait if bound is None else min(bound, self.max_wait)
        now = self.clock()
        cost_units = min(MOST_UNITS, max(1, int(cost * SCALE / max(weight, 1e-6))))
        with self.cells.lock() as c:
            self._rebase(c, pool)
            fslot = self._flow(c, pool, flow, now, weight)
            candidates = self._candidates(pool, tried, usable)
            vtime = c[self.p0 + pool * P_WIDTH + P_VTIME]
            start = max(vtime, min(c[fslot + F_FINISH], vtime + AHEAD))
            finish = start + cost_units
            if not c[self.p0 + pool * P_WIDTH + P_WAITING] and self._within_share(c, pool, fslot, now):
                dep = self._room(c, candidates, prefer)
                if dep >= 0:
                    c[fslot + F_FINISH] = finish
                    c[self.p0 + pool * P_WIDTH + P_VTIME] = max(c[self.p0 + pool * P_WIDTH + P_VTIME], start)
                    self._take(c, dep, fslot)
                    self.ledgers.add(dep, fslot, 1)
                    if self.waits is not None:
                        self.waits.count(label, 0.0, now)
                    return Seat(pool, dep, fslot, now)
            estimate = self._estimate(c, pool, finish, candidates)
            if estimate > bound:
                raise self._refused(429, "queue_full", estimate, bound)
            row, ousted = self._place(c, pool, fslot, finish, candidates)
            c[fslot + F_FINISH] = finish
            self.ledgers.mine()  # the master finds a dead worker's rows through its ledger
            ticket = own_pid() << 32 | next(self.tickets) & 0xFFFFFFFF
            for field, value in ((W_POOL, pool), (W_START, start), (W_FINISH, finish), (W_FLOW, fslot),
                                 (W_GRANTED, 0), (W_PREFER, prefer + 1), (W_OWNER, own_pid()),
                                 (W_TICKET, ticket)):
                c[row + field] = value
            c[row + W_STATE] = WAITING
            c[fslot + F_ROWS] += 1
            c[self.p0 + pool * P_WIDTH + P_WAITING] += 1
            woken = self._grant(c, pool, now)  # a free slot the share held back, or one freed meanwhile
        self.wakeups.wake(ousted + woken)
        return self._wait(row, ticket, pool, fslot, now, bound, gone, watch, label)

    def _wait(self, row: int, ticket: int, pool: int, fslot: int, since: float, bound: float,
              gone: Callable[[], bool] | None, watch: Watch | None, label: str) -> Seat:
        """Sleep until the row changes (woken by the worker that changed it), the bound passes, or a look at the
        client's socket finds it gone."""
        event = self.wakeups.register(ticket, row)
        deadline = since + bound
        unwatch = watch(event.set) if watch is not None else None
        look = LOOK_SECONDS if unwatch is None else WATCHED_LOOK_SECONDS
        try:
            while True:
                event.clear()  # before looking: a wake-up from here on ends the next pause at once
                now = self.clock()
                if gone is not None and gone():
                    raise Departed()  # its slot, granted or not, goes to the next waiter (below)
                if now >= deadline or self._changed(row, ticket):
                    with self.cells.lock() as locked:
                        if locked[row + W_TICKET] != ticket:  # another key's request took its place
                            raise self._ousted(locked, row, ticket)
                        if locked[row + W_STATE] == GRANTED:  # (past its bound: granted at the last moment)
                            return self._seated(locked, row, pool, fslot, since, label)
                        if now >= deadline:
                            self._leave_queue(locked, row, pool)
                            raise self._refused(503, "queue_timeout", bound, bound)
                self.pause(event, max(0.0, min(look, deadline - now)))
        except BaseException:  # its client left (or its greenlet was killed): out of the queue
            with self.cells.lock() as locked:
                woken = self._withdraw(locked, row, fslot, pool, self.clock()) \
                    if locked[row + W_TICKET] == ticket else []
            self.wakeups.wake(woken)
            raise
        finally:
            self.wakeups.unregister(ticket)
            if unwatch is not None:
                unwatch()

    def _changed(self, row: int, ticket: int) -> bool:
        """Whether the row no longer waits for this ticket's request (granted, or taken by another's)."""
        c = self.cells.cells
        return c[row + W_TICKET] != ticket or c[row + W_STATE] != WAITING

    def _tick(self) -> None:
        """A grant pass over the pools with waiters (a key's share expired, the master gave a dead worker's slots
        back): run by each worker's listener while it has waiters."""
        for pool in range(len(self.pools)):
            if self.waiting(pool):
                with self.cells.lock() as c:
                    woken = self._grant(c, pool, self.clock())
                self.wakeups.wake(woken)

    def _seated(self, c: memoryview, row: int, pool: int, fslot: int, since: float, label: str) -> Seat:
        dep = int(c[row + W_GRANTED]) - 1
        self.ledgers.add(dep, fslot, 1)  # the granting worker counted the seat: from now on it is this worker's
        c[row + W_STATE] = FREE
        now = self.clock()
        if self.waits is not None:
            self.waits.count(label, now - since, now)
        return Seat(pool, dep, fslot, now, waited=now - since)

    def keep_waits(self) -> QueueWaits:
        """Each key's waits, for the status page: written under this queue's lock as each request is seated (one
        flock a request, not two)."""
        if self.waits is None:
            self.waits = QueueWaits(guard=self.cells)
        return self.waits

    def _withdraw(self, c: memoryview, row: int, fslot: int, pool: int, now: float) -> list[int]:
        """A waiter that will not take its slot: out of the queue, or its granted slot to the next in line (the
        workers to wake)."""
        if c[row + W_STATE] == GRANTED:
            c[row + W_STATE] = FREE
            return self._give_back(c, int(c[row + W_GRANTED]) - 1, fslot, pool, now)
        if c[row + W_STATE] == WAITING:
            self._leave_queue(c, row, pool)
        return []

    def _leave_queue(self, c: memoryview, row: int, pool: int) -> None:
        c[row + W_STATE] = FREE
        c[int(c[row + W_FLOW]) + F_ROWS] -= 1
        c[self.p0 + pool * P_WIDTH + P_WAITING] -= 1

    # ------------------------------------------------------------ a place in the queue
    def _place(self, c: memoryview, pool: int, fslot: int, finish: int, candidates: list[int]) -> tuple[int, list[int]]:
        """A free row, or, every row taken, the row of the newest waiter of the flow furthest over its share
        while this request's flow holds fewer than its own (the workers to wake: that waiter's); QueueRefused 429
        when its flow holds its share already."""
        row = self._free_row(c)
        if row >= 0:
            return row, []
        held = {slot: int(c[slot + F_ROWS]) for slot in self._flow_slots() if c[slot + F_ROWS] > 0}
        weights = {slot: max(1, int(c[slot + F_WEIGHT])) / SCALE for slot in [*held, fslot]}
        shares = fair_shares(self.places, weights)
        victim = furthest_over(held, shares) if held.get(fslot, 0) < shares[fslot] else None
        row = -1 if victim is None else max(
            (r for r in self.rows if c[r + W_STATE] == WAITING and c[r + W_FLOW] == victim),
            key=lambda r: c[r + W_FINISH], default=-1)
        if row < 0:
            after = self._estimate(c, pool, finish, candidates)
            raise self._full(held.get(fslot, 0), shares[fslot], after, ousted=False)
        assert victim is not None
        owner, victim_pool = int(c[row + W_OWNER]), int(c[row + W_POOL])
        everyone = self._candidates(victim_pool, frozenset(), lambda d: True)
        after = self._estimate(c, victim_pool, c[row + W_FINISH], everyone)
        c[row + W_OUSTED], c[row + W_OUSTED_HELD] = c[row + W_TICKET], held[victim]
        c[row + W_OUSTED_SHARE], c[row + W_OUSTED_AFTER] = int(shares[victim] * SCALE), max(1, math.ceil(after))
        if c[victim + F_FINISH] == c[row + W_FINISH]:  # its newest request leaves: the flow's tags as before it
            c[victim + F_FINISH] = c[row + W_START]
        self._leave_queue(c, row, victim_pool)
        c[row + W_TICKET] = 0
        return row, [owner]

    def _ousted(self, c: memoryview, row: int, ticket: int) -> QueueRefused:
        """What a waiter whose row another key's request took is answered (the taker left a note in the row;
        a row taken again before its waiter looked has lost it)."""
        if c[row + W_OUSTED] != ticket:
            return self._full(-1, 0.0, 1.0, ousted=True)
        return self._full(int(c[row + W_OUSTED_HELD]), c[row + W_OUSTED_SHARE] / SCALE, c[row + W_OUSTED_AFTER],
                          ousted=True)

    def _full(self, held: int, share: float, after: float, ousted: bool) -> QueueRefused:
        share_text = f"{share:,.1f}".removesuffix(".0")
        if held < 0:
            why = ": another key's request took this one's place"
        elif ousted:
            why = (f": this key held {held:,} of the {self.places:,} places, past its share of {share_text}, and "
                   f"another key's request took this one's place")
        elif held >= share:
            why = f": this key holds {held:,} of the {self.places:,} places, its share being {share_text}"
        else:
            why = ""
        return QueueRefused(429, f"Every server of this model is busy and every place in its queue is taken{why}. Try "
                            "again later.", code="queue_full", headers={"Retry-After": str(max(1, math.ceil(after)))},
                       cause="queue")

    # ------------------------------------------------------------ leaving
    def release(self, seat: Seat) -> None:
        """The request's answer ended (or failed): its slot goes to the next waiter in fair order."""
        if seat.released:
            return
        seat.released = True
        now = self.clock()
        with self.cells.lock() as c:
            mean = seat.dep * D_WIDTH + D_MEAN_MS
            took = (now - seat.started) * 1000
            c[mean] = int(took if not c[mean] else c[mean] * (1 - MEAN_WEIGHT) + took * MEAN_WEIGHT)
            woken = self._give_back(c, seat.dep, seat.flow, seat.pool, now)
            self.ledgers.add(seat.dep, seat.flow, -1)
        self.wakeups.wake(woken)

    def _give_back(self, c: memoryview, dep: int, fslot: int, pool: int, now: float) -> list[int]:
        c[dep * D_WIDTH + D_IN_FLIGHT] = max(0, c[dep * D_WIDTH + D_IN_FLIGHT] - 1)
        c[fslot + F_HELD] = max(0, c[fslot + F_HELD] - 1)
        return self._grant(c, pool, now) if c[self.p0 + pool * P_WIDTH + P_WAITING] else []

    # ------------------------------------------------------------ under the lock
    def _grant(self, c: memoryview, pool: int, now: float) -> list[int]:
        """Free slots of `pool` to its waiters, smallest finish tag first (a key past its share skipped); the
        workers (pids) whose waiters were granted one, to wake."""
        candidates = self._candidates(pool, frozenset(), lambda d: True)
        woken: list[int] = []
        while c[self.p0 + pool * P_WIDTH + P_WAITING] > 0:
            if self._room(c, candidates, -1) < 0:
                return woken
            best, best_finish = -1, None
            for row in self.rows:
                if c[row + W_STATE] != WAITING or c[row + W_POOL] != pool:
                    continue
                if (best_finish is None or c[row + W_FINISH] < best_finish) and \
                        self._within_share(c, pool, int(c[row + W_FLOW]), now):
                    best, best_finish = row, c[row + W_FINISH]
            if best < 0:
                return woken  # every waiter's key holds its share: the free slot waits for another key
            dep = self._room(c, candidates, int(c[best + W_PREFER]) - 1)
            vtime = self.p0 + pool * P_WIDTH + P_VTIME
            c[vtime] = max(c[vtime], c[best + W_START])
            self._take(c, dep, int(c[best + W_FLOW]))
            c[best + W_GRANTED] = dep + 1
            c[self.p0 + pool * P_WIDTH + P_WAITING] -= 1
            c[int(c[best + W_FLOW]) + F_ROWS] -= 1
            c[best + W_STATE] = GRANTED
            woken.append(int(c[best + W_OWNER]))
        return woken

    def _candidates(self, pool: int, tried: set[int] | frozenset[int], usable: Callable[[int], bool]) -> list[int]:
        deps = [d for d in self.pools[pool] if d not in tried]
        up = [d for d in deps if usable(d)]
        return up or deps  # a pool whose every deployment cools down is still tried

    def _room(self, c: memoryview, candidates: list[int], prefer: int) -> int:
        """The deployment with room: `prefer` when it has some, else the least loaded; -1: every one is full."""
        best, best_load = -1, math.inf
        for dep in candidates:
            limit = c[dep * D_WIDTH + D_LIMIT]
            used = c[dep * D_WIDTH + D_IN_FLIGHT]
            if limit > 0 and used >= limit:
                continue
            if dep == prefer:
                return dep
            load = used / limit if limit > 0 else used / 1e6
            if load < best_load:
                best, best_load = dep, load
        return best

    def _take(self, c: memoryview, dep: int, fslot: int) -> None:
        c[dep * D_WIDTH + D_IN_FLIGHT] += 1
        c[fslot + F_HELD] += 1

    def _within_share(self, c: memoryview, pool: int, fslot: int, now: float) -> bool:
        """May this key take one more slot of the pool? Past its share only while no other key is active."""
        if self.key_share >= 1:
            return True
        total = sum(c[d * D_WIDTH + D_LIMIT] for d in self.pools[pool])
        if any(c[d * D_WIDTH + D_LIMIT] <= 0 for d in self.pools[pool]):
            return True  # an unlimited deployment: no share to keep
        if c[fslot + F_HELD] < max(1, int(total * self.key_share)):
            return True
        recent = int((now - ACTIVE_SECONDS) * 1000)
        for slot in self._flow_slots():
            if slot != fslot and c[slot + F_POOL] == pool + 1 and c[slot + F_SEEN] >= recent:
                return False
        return True

    def _estimate(self, c: memoryview, pool: int, finish: int, candidates: list[int]) -> float:
        """Seconds this request would wait: the waiters ahead of it (and itself) times the mean request time,
        over the pool's slots. 0 while no request has ended (nothing to go by)."""
        slots = sum(max(0, c[d * D_WIDTH + D_LIMIT]) for d in candidates)
        means = [c[d * D_WIDTH + D_MEAN_MS] for d in candidates if c[d * D_WIDTH + D_MEAN_MS]]
        if not slots or not means:
            return 0.0
        ahead = 1 + sum(1 for row in self.rows
                        if c[row + W_STATE] == WAITING and c[row + W_POOL] == pool and c[row + W_FINISH] <= finish)
        return float(ahead * (sum(means) / len(means) / 1000) / slots)

    def _free_row(self, c: memoryview) -> int:
        for row in self.rows:
            if c[row + W_STATE] == FREE:
                return row
        return -1

    def _refused(self, status: int, code: str, estimate: float, bound: float) -> QueueRefused:
        after = str(max(1, math.ceil(estimate)))
        if code == "queue_full":
            message = (f"Every server of this model is busy and the wait would be about {estimate:.0f} s, past "
                       f"this request's bound of {bound:.0f} s: try again later.")
        else:
            message = f"Every server of this model stayed busy for {bound:.0f} s: try again later."
        return QueueRefused(status, message, code=code, headers={"Retry-After": after}, cause="queue")

    def loads(self, deps: Sequence[int]) -> list[tuple[int, int]]:
        """(in flight, limit) of each."""
        c = self.cells.cells
        return [(int(c[d * D_WIDTH + D_IN_FLIGHT]), int(c[d * D_WIDTH + D_LIMIT])) for d in deps]
