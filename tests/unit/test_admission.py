"""Admission's fair queue, in-process (admission/queue.py; cache-aware routing's choice: test_affinity.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from argoproxy.config.settings import SettingsError, load_settings
from argoproxy.admission.queue import Admission, Departed, QueueRefused
from argoproxy.admission.cells import release_dead_worker
from argoproxy.admission.wakeups import fifo_name
from argoproxy.shared_cells import SharedCells


def admission(limits, pools=None, **kw) -> Admission:
    pools = pools or [list(range(len(limits)))]
    size = 200_000
    return Admission(pools, len(limits), limits, cells=SharedCells("t", size, ""), **kw)


def wait_until(check, seconds=30.0):  # polled: a busy machine only makes it slower
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.002)


class Waiter(threading.Thread):
    def __init__(self, a, flow, cost=100, **kw):
        super().__init__(daemon=True)
        self.a, self.flow, self.cost, self.kw = a, flow, cost, kw
        self.seat = self.error = None

    def run(self):
        try:
            self.seat = self.a.enter(0, self.flow, self.cost, **self.kw)
        except Exception as err:  # noqa: BLE001
            self.error = err


def test_within_the_limit_requests_go_at_once_beyond_it_they_wait_for_a_slot():
    a = admission([2])
    first, second = a.enter(0, "k", 10), a.enter(0, "k", 10)
    assert (a.in_flight(0), a.waiting(0)) == (2, 0)
    third = Waiter(a, "k")
    third.start()
    wait_until(lambda: a.waiting(0) == 1)
    assert third.seat is None
    a.release(first)
    wait_until(lambda: third.seat is not None)
    assert a.in_flight(0) == 2 and a.waiting(0) == 0 and third.seat.waited > 0
    a.release(second), a.release(third.seat)
    assert a.in_flight(0) == 0


def test_a_key_flooding_the_queue_does_not_starve_another():
    a = admission([1])
    held = a.enter(0, "heavy", 1000)
    heavy = [Waiter(a, "heavy", 1000) for _ in range(5)]
    for i, w in enumerate(heavy):
        w.start()
        wait_until(lambda: a.waiting(0) == i + 1)
    light = Waiter(a, "light", 100)
    light.start()
    wait_until(lambda: a.waiting(0) == 6)
    a.release(held)
    wait_until(lambda: sum(w.seat is not None for w in [*heavy, light]) == 1)
    assert light.seat is not None, "the light key's request goes before the heavy key's backlog"
    order = []
    seat = light.seat
    for _ in heavy:
        a.release(seat)
        wait_until(lambda: sum(w.seat is not None and w not in order for w in heavy) == 1)
        granted = next(w for w in heavy if w.seat is not None and w not in order)
        order.append(granted)
        seat = granted.seat
    a.release(seat)
    assert a.in_flight(0) == 0 and a.waiting(0) == 0


def test_weights_give_a_key_a_larger_share():
    a = admission([1])
    held = a.enter(0, "x", 1)
    small = [Waiter(a, "small", 100, weight=1.0) for _ in range(3)]
    big = [Waiter(a, "big", 100, weight=4.0) for _ in range(3)]
    for i, w in enumerate([*small, *big]):
        w.start()
        wait_until(lambda: a.waiting(0) == i + 1)
    granted = []
    seat = held
    for _ in range(4):
        a.release(seat)
        wait_until(lambda: len([w for w in [*small, *big] if w.seat is not None and w not in granted]) == 1)
        w = next(w for w in [*small, *big] if w.seat is not None and w not in granted)
        granted.append(w)
        seat = w.seat
    assert sum(w in big for w in granted) == 3  # all three of the weight-4 key's before the second of the other's


def test_a_wait_past_the_bound_is_refused_at_once_with_retry_after():
    clock = [1000.0]
    a = admission([1], max_wait=5.0, clock=lambda: clock[0])
    seat = a.enter(0, "k", 1)
    clock[0] += 4.0
    a.release(seat)  # one request took 4 s: the mean a wait is estimated from
    held = a.enter(0, "k", 1)
    w = Waiter(a, "k")
    w.start()
    wait_until(lambda: a.waiting(0) == 1)
    with pytest.raises(QueueRefused) as caught:
        a.enter(0, "k", 1)  # its own key's waiter ahead, and itself: 8 s > 5 s
    assert caught.value.status == 429 and caught.value.code == "queue_full"
    assert caught.value.headers["Retry-After"] == "8"
    with pytest.raises(QueueRefused):
        a.enter(0, "other", 1, bound=2.0)  # another key goes first (4 s), past the client's own 2 s
    a.release(held)
    wait_until(lambda: w.seat is not None)


def test_a_waiter_still_waiting_at_its_bound_gets_503():
    a = admission([1], max_wait=0.05)
    held = a.enter(0, "k", 1)
    w = Waiter(a, "k")
    w.start()
    w.join(5)
    assert isinstance(w.error, QueueRefused) and w.error.status == 503 and w.error.code == "queue_timeout"
    assert a.waiting(0) == 0
    a.release(held)
    assert a.in_flight(0) == 0


def test_a_waiter_whose_client_left_leaves_the_queue_at_its_next_look():
    a = admission([1])
    held = a.enter(0, "k", 1)
    left = threading.Event()
    w = Waiter(a, "k", gone=left.is_set)
    w.start()
    wait_until(lambda: a.waiting(0) == 1)
    left.set()
    w.join(5)
    assert isinstance(w.error, Departed) and a.waiting(0) == 0
    a.release(held)
    assert a.in_flight(0) == 0


def test_a_slot_granted_to_a_waiter_whose_client_left_goes_back():
    looking = threading.Event()
    resume = threading.Event()

    def sleep(seconds: float) -> None:  # the waiter between two looks at the queue
        looking.set()
        resume.wait(5)
    a = admission([1], pause=lambda event, seconds: sleep(seconds))
    held = a.enter(0, "k", 1)
    left = threading.Event()
    w = Waiter(a, "k", gone=left.is_set)
    w.start()
    assert looking.wait(5) and a.waiting(0) == 1
    a.release(held)  # granted to the waiter, which has not looked yet...
    assert (a.in_flight(0), a.waiting(0)) == (1, 0)
    left.set()  # ...and whose client leaves before it does
    resume.set()
    w.join(5)
    assert isinstance(w.error, Departed)
    assert a.in_flight(0) == 0, "the slot went back"


def test_the_master_gives_back_what_a_killed_worker_held(tmp_path):
    """A worker killed with a slot and a place in the queue: its ledger says what to take off."""
    from argoproxy.admission.cells import Layout, cells_name
    layout = Layout(1, 1)

    def made() -> Admission:
        return Admission([[0]], 1, [1], cells=SharedCells(cells_name("t"), layout.size, str(tmp_path)),
                         name="t")
    a = made()
    pids = []
    for role in ("seated", "waiting"):
        pid = os.fork()
        if pid == 0:  # a worker: takes the slot, or queues behind it, and is killed there
            try:
                mine = made()
                if role == "seated":
                    mine.enter(0, "k", 1)
                else:
                    threading.Thread(target=mine.enter, args=(0, "k", 1), daemon=True).start()
                    pipe = tmp_path / fifo_name("t", os.getpid())  # made just after it counts as waiting
                    wait_until(lambda: mine.waiting(0) == 1 and pipe.exists())
                os.kill(os.getpid(), signal.SIGKILL)
            finally:
                os._exit(1)
        wait_until(lambda: a.in_flight(0) == 1 and a.waiting(0) == len(pids))
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == signal.SIGKILL
    assert (a.in_flight(0), a.waiting(0)) == (1, 1)
    assert len(list(tmp_path.glob("admission-wake-*.fifo"))) == 1, "the waiting worker's wake-up pipe"
    assert [release_dead_worker(pid, str(tmp_path)) for pid in pids] == [1, 1]
    assert (a.in_flight(0), a.waiting(0)) == (0, 0)
    assert not list(tmp_path.glob("admission-ledger-*")), "the ledgers are gone with their workers"
    assert not list(tmp_path.glob("admission-wake-*")), "and their wake-up pipes"
    assert a.enter(0, "k", 1).dep == 0


def test_a_key_share_keeps_a_slot_for_another_active_key():
    a = admission([2], key_share=0.5)
    light = a.enter(0, "light", 1)  # the light key was active
    a.release(light)
    heavy = a.enter(0, "heavy", 1)
    second = Waiter(a, "heavy")
    second.start()
    wait_until(lambda: a.waiting(0) == 1)
    assert a.in_flight(0) == 1, "one slot stays free for the light key"
    assert a.enter(0, "light", 1).dep == 0
    a.release(heavy)
    wait_until(lambda: second.seat is not None)


def test_deployments_fill_least_loaded_first_and_a_preferred_one_while_it_has_room():
    a = admission([2, 2])
    s1 = a.enter(0, "k", 1)
    s2 = a.enter(0, "k", 1)
    assert {s1.dep, s2.dep} == {0, 1}
    s3 = a.enter(0, "k", 1, prefer=1)
    assert s3.dep == 1
    s4 = a.enter(0, "k", 1, prefer=1)
    assert s4.dep == 0  # 1 is full


def test_tags_stay_within_their_cells_whatever_the_reservations_weights_and_departures():
    # The tags are int64 cells: 8,400 reservations of 2^40 tokens at weight 1 (a client's max_tokens=1e300), or
    # one at a weight of 1e-6, overflowed them (a 500 for that flow, and the pool's virtual time left at the top).
    a = admission([1])
    a.release(a.enter(0, "tiny", 2**40, weight=1e-9))
    for _ in range(9000):
        a.release(a.enter(0, "flood", 2**40))
    held = a.enter(0, "flood", 2**40)
    for _ in range(50):  # each queued and refused at its bound: its tags pushed forward without being served
        with pytest.raises(QueueRefused):
            a.enter(0, "flood", 2**40, weight=1e-9, bound=0.001)
    flood, light = Waiter(a, "flood", 2**40), Waiter(a, "light", 100)
    flood.start()
    wait_until(lambda: a.waiting(0) == 1)
    light.start()
    wait_until(lambda: a.waiting(0) == 2)
    a.release(held)
    wait_until(lambda: light.seat is not None or flood.seat is not None)
    assert light.seat is not None and flood.seat is None, "the other key still goes before the flood's backlog"
    a.release(light.seat)
    wait_until(lambda: flood.seat is not None)
    a.release(flood.seat)
    assert a.in_flight(0) == 0 and a.waiting(0) == 0 and flood.error is light.error is None


def test_a_flow_named_by_a_clients_user_field_holding_a_lone_surrogate_queues():
    # seating.flow_of names a keyless request's flow by its body's `user`, which JSON lets hold "\ud800": the
    # flow's digest could not encode it (a 500 on every door once admission was on)
    a = admission([1])
    a.release(a.enter(0, "user:a\ud800", 1))
    assert a.in_flight(0) == 0


@pytest.mark.parametrize("env", [{"MAX_CONCURRENCY": "99999999999999999999"},
                                 {"MODELS": '[{"name": "m", "backend": "openai", "base_url": "http://h:1/v1", '
                                            '"max_concurrency": 99999999999999999999}]'}])
def test_a_limit_past_what_a_cell_holds_is_a_bad_setting(env):
    # the workers' cells are int64: such a limit stopped every worker with a traceback instead of one line
    settings = {"MODELS": '[{"name": "m", "backend": "openai", "base_url": "http://h:1/v1"}]', **env}
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ=settings)
    assert "max_concurrency" in str(err.value).lower() and "at most 100000" in str(err.value)


def test_slots_a_server_states_are_bounded():
    from argoproxy.routing.slots import _from_props
    assert _from_props({"total_slots": 10**30}) == 100_000 and _from_props({"total_slots": 4}) == 4


def test_a_servers_slots_are_read_from_props_or_slots_as_llama_server_states_them():
    from argoproxy.routing.slots import _from_props, _from_slots, server_root
    assert server_root("http://gpu1:8080/v1/") == server_root("http://gpu1:8080") == "http://gpu1:8080/"
    assert _from_props({"total_slots": 4, "default_generation_settings": {}}) == 4
    assert _from_slots([{"id": i, "n_ctx": 2048, "speculative": False, "is_processing": False} for i in (0, 1)]) == 2
    # nothing usable: unknown (no limit meanwhile)
    for props in ({"total_slots": 0}, {"total_slots": True}, {"total_slots": "4"}, [], None):
        assert _from_props(props) is None, props
    assert _from_slots([]) is None and _from_slots({"id": 0}) is None
