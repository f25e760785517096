"""The admission queue's places shared by weight (issue 55), in-process: the share arithmetic, which waiter gives
its place to whom, and a waiter woken at once when a seat frees, without looking (admission/queue.py,
admission_wakeups.py)."""

from __future__ import annotations

import threading
import time

import pytest

from argoproxy.admission.queue import Admission, QueueRefused, fair_shares, furthest_over
from argoproxy.shared_cells import SharedCells


def admission(limits, waiters, **kw) -> Admission:
    return Admission([list(range(len(limits)))], len(limits), limits, cells=SharedCells("t", 400_000, ""),
                     waiters=waiters, **kw)


def wait_until(check, seconds=5.0):
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.002)


class Waiter(threading.Thread):
    def __init__(self, a, flow, weight=1.0, **kw):
        super().__init__(daemon=True)
        self.a, self.flow, self.weight, self.kw = a, flow, weight, kw
        self.seat = self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            self.seat = self.a.enter(0, self.flow, 100, self.weight, **self.kw)
        except Exception as err:  # noqa: BLE001
            self.error = err
        self.done.set()


STARTED: list[Waiter] = []


def settled(a) -> bool:
    """Each waiter started is waiting in its own row or has its answer (one whose place was taken has noticed)."""
    waiters = dict(a.wakeups.waiters)
    return len(waiters) == sum(not x.done.is_set() for x in STARTED if x.a is a) and \
        not any(a._changed(row, ticket) for ticket, (row, _) in waiters.items())


def queue(a, flows: list[tuple[str, float]]) -> list[Waiter]:
    """Waiters started one after the other, each in its place (or refused) before the next starts."""
    waiters = []
    for flow, weight in flows:
        w = Waiter(a, flow, weight)
        w.start()
        waiters.append(w)
        STARTED.append(w)
        wait_until(lambda: settled(a))
    return waiters


def test_a_share_is_the_places_times_the_weight_over_the_weights_waiting():
    assert fair_shares(1024, {"a": 1.0, "b": 1.0}) == {"a": 512, "b": 512}
    assert fair_shares(12, {"a": 1.0, "b": 2.0, "c": 3.0}) == {"a": 2, "b": 4, "c": 6}
    assert fair_shares(4, {"alone": 0.5}) == {"alone": 4}
    # the key furthest over its share gives a place; none over: nobody does
    assert furthest_over({"a": 10, "b": 2}, {"a": 6, "b": 6, "c": 0}) == "a"
    assert furthest_over({"a": 7, "b": 5}, {"a": 4, "b": 1, "c": 7}) == "b"  # 4 past its share, against 3
    assert furthest_over({"a": 6, "b": 6}, {"a": 6, "b": 6}) is None


def test_a_light_key_takes_the_newest_place_of_the_key_furthest_over_its_share():
    a = admission([1], waiters=4)
    held = a.enter(0, "heavy", 100)
    heavy = queue(a, [("heavy", 1.0)] * 4)
    light = queue(a, [("light", 1.0)])[0]
    heavy[3].done.wait(5)
    assert isinstance(heavy[3].error, QueueRefused), "the newest heavy request gave its place"
    err = heavy[3].error
    assert (err.status, err.code, err.headers["Retry-After"]) == (429, "queue_full", "1")
    assert "this key held 4 of the 4 places, past its share of 2" in err.message
    assert all(w.error is None for w in heavy[:3]) and a.waiting(0) == 4
    a.release(held)
    wait_until(lambda: light.seat is not None)
    assert all(w.seat is None for w in heavy[:3]), "the light key is seated next"


def test_weights_set_the_shares_of_the_places():
    """Weight 3 against 1 over 8 places: shares of 6 and 2. The light key takes places until it holds 6 of them;
    the heavy key, at its 2, takes none back."""
    a = admission([1], waiters=8)
    held = a.enter(0, "heavy", 100)
    heavy = queue(a, [("heavy", 1.0)] * 8)
    light = queue(a, [("priority", 3.0)] * 7)
    assert [w.error is None for w in light] == [True] * 6 + [False]
    assert "this key holds 6 of the 8 places, its share being 6" in light[6].error.message
    assert [w.error is None for w in heavy] == [True] * 2 + [False] * 6, "the newest six gave their places"
    assert all("past its share of" in w.error.message for w in heavy[2:])
    back = queue(a, [("heavy", 1.0)])[0]
    back.done.wait(5)
    assert "this key holds 2 of the 8 places, its share being 2" in back.error.message
    a.release(held)
    wait_until(lambda: sum(w.seat is not None for w in [*heavy, *light]) == 1)


def test_a_key_at_its_share_when_every_place_is_taken_is_refused_with_its_places_and_share():
    a = admission([1], waiters=2)
    held = a.enter(0, "a", 100)
    queue(a, [("a", 1.0), ("b", 1.0)])
    with pytest.raises(QueueRefused) as caught:
        a.enter(0, "b", 100)
    assert caught.value.code == "queue_full" and "Retry-After" in caught.value.headers
    assert "this key holds 1 of the 2 places, its share being 1" in caught.value.message
    assert "wait would be about" not in caught.value.message
    a.release(held)


def test_a_waiter_is_seated_as_soon_as_a_slot_frees_without_looking():
    """The waiter sleeps without a timer short enough to matter; the release wakes it."""
    pauses = []

    def pause(event: threading.Event, seconds: float) -> None:
        pauses.append(seconds)
        event.wait(seconds)
    a = admission([1], waiters=4, pause=pause)
    held = a.enter(0, "k", 100)
    w = queue(a, [("k", 1.0)])[0]
    time.sleep(0.05)
    a.release(held)
    started = time.monotonic()
    wait_until(lambda: w.seat is not None)
    assert time.monotonic() - started < 0.25
    assert len(pauses) <= 2 and min(pauses) >= 0.4, pauses  # no polling: one pause, ended by the wake-up


def test_a_look_at_a_waiting_clients_socket_holds_past_descriptor_1023():
    """A worker holding a thousand waiting clients has sockets past descriptor 1023, which select() refuses: the
    look took every such client for gone (its request ended 499 at once)."""
    import socket
    from argoproxy.edge.keepalive import has_left
    pairs = []
    try:
        while not pairs or pairs[-1][0].fileno() < 1100:
            pairs.append(socket.socketpair())
        mine, peer = pairs[-1]
        assert not has_left(mine)
        peer.close()
        assert has_left(mine)
    finally:
        for a, b in pairs:
            a.close(), b.close()
