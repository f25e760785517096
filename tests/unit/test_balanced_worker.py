"""The shared board behind the balanced gevent worker (argoproxy.fastpath.balanced_worker): slots claimed in the
master, peers that are booting, gone or released never attract connections, and a worker defers only when
a live peer holds clearly fewer connections."""

from __future__ import annotations

import mmap
import time

import pytest

from argoproxy.fastpath import balanced_worker as bw


@pytest.fixture
def cells() -> memoryview:
    return memoryview(mmap.mmap(-1, (1 + bw.SLOTS * bw.FIELDS) * 8)).cast("q")


def live(cells: memoryview, pid: int, connections: int = 0) -> bw.Board:
    board = bw.Board(cells)
    board.publish(pid)
    for _ in range(connections):
        board.opened()
    return board


def test_slots_are_claimed_once_and_reused_when_free(cells) -> None:
    a, b = bw.Board(cells), bw.Board(cells)  # b claimed while a still boots
    assert a.base != b.base and cells[0] == 2
    a.publish(100)
    a.release(100)
    assert bw.Board(cells).base == a.base


def test_a_slot_given_to_another_worker_is_not_released_by_the_old_one(cells) -> None:
    """The master reaps a worker (child_exit) possibly after its slot went to a new worker."""
    a = live(cells, 100)
    a.release(100)  # the worker itself, on its way out
    c = live(cells, 200)  # the master gave the slot to a new worker
    assert c.base == a.base
    a.release(100)  # child_exit for the old one
    assert cells[c.base + bw.PID] == 200


def test_a_stale_slot_is_reused(cells, monkeypatch) -> None:
    a = live(cells, 100)
    monkeypatch.setattr(bw, "_now_ms", lambda: cells[a.base + bw.BEAT] + bw.STALE_MS + 1)
    assert bw.Board(cells).base == a.base  # its worker was killed without clearing it


def test_defers_only_to_a_clearly_less_loaded_live_peer(cells) -> None:
    me, peer = live(cells, 100, connections=2), live(cells, 101, connections=1)
    assert not me.should_defer()  # 2 vs 1: within the margin
    me.opened()
    assert me.should_defer() and not peer.should_defer()  # 3 vs 1
    peer.opened()
    assert not me.should_defer()  # 3 vs 2


def test_the_margin_grows_with_the_load(cells) -> None:
    me, peer = live(cells, 100, connections=400), live(cells, 101, connections=360)
    assert not me.should_defer()  # 40 fewer is within 1/8 of 400
    for _ in range(20):
        peer.closed()
    assert me.should_defer()


def test_booting_released_and_stale_peers_do_not_count(cells, monkeypatch) -> None:
    me = live(cells, 100, connections=10)
    booting = bw.Board(cells)
    assert not me.should_defer()
    booting.publish(101)
    assert me.should_defer()
    booting.release(101)
    assert not me.should_defer()
    booting.publish(101)
    later = cells[booting.base + bw.BEAT] + bw.STALE_MS + 1
    cells[me.base + bw.BEAT] = later
    monkeypatch.setattr(bw, "_now_ms", lambda: later)
    assert not me.should_defer()  # the peer stopped beating


def test_connections_are_counted_both_ways(cells) -> None:
    me = live(cells, 100)
    me.opened(), me.opened(), me.closed()
    assert cells[me.base + bw.OPEN] == 1


def test_patience_starts_again_once_no_connection_waits(cells, monkeypatch) -> None:
    """After a deferral whose PATIENCE ran out, the worker accepts while the imbalance lasts; once the queue is
    empty, the next connection is left to the less loaded peer again (one slow peer must not end balancing
    for the rest of a burst)."""
    me, _peer = live(cells, 100, connections=3), live(cells, 101, connections=0)
    server = bw.BalancedServer(("127.0.0.1", 0), handle=lambda *args: None, board=me)
    monkeypatch.setattr(bw.StreamServer, "_do_read", lambda self: None)  # nothing waiting to be accepted
    server.deferring_since = time.monotonic() - 1  # an earlier episode's patience ran out
    server._do_read()
    assert server.deferring_since is None


def test_sheds_only_far_above_a_live_peer_and_at_most_once_per_interval(cells, monkeypatch) -> None:
    """A worker holding far more than a live peer closes one kept-alive connection after its answer, so the
    client's reconnection can be placed again; at most one every SHED_EVERY_MS, and not for a small imbalance."""
    now = [1_000_000]
    monkeypatch.setattr(bw, "_now_ms", lambda: now[0])
    me, peer = live(cells, 100, connections=34), live(cells, 101, connections=30)
    assert not me.should_shed()  # 34 against 30: within a quarter
    for _ in range(16):
        peer.closed()
    assert me.should_shed()  # 34 against 14
    assert not me.should_shed()  # the same millisecond: one at a time
    now[0] += bw.SHED_EVERY_MS
    assert me.should_shed()
    assert not peer.should_shed()  # the less loaded worker never sheds
    peer.release(101)
    now[0] += bw.SHED_EVERY_MS
    assert not me.should_shed()  # no live peer to take the connection


def test_the_shedding_check_is_asked_before_each_answer_head(monkeypatch) -> None:
    """CoalescingResponse asks the worker's check before rendering a head, and a yes closes the connection."""
    from argoproxy.fastpath import gunicorn_response as gr

    class Req:
        version, method, headers = (1, 1), "GET", []

        def should_close(self) -> bool:
            return False

    class Sock:
        def __init__(self) -> None:
            self.sent = b""

        def sendall(self, data: bytes) -> None:
            self.sent += data

        def send(self, data: bytes) -> int:
            self.sent += data
            return len(data)

    class Cfg:
        is_ssl, secure_scheme_headers, forwarded_allow_ips, header_map = False, {}, [], "drop"

    for shed in (False, True):
        monkeypatch.setattr(gr, "shed_connection", lambda shed=shed: shed)
        sock = Sock()
        resp = gr.CoalescingResponse(Req(), sock, Cfg())
        resp.start_response("200 OK", [("Content-Length", "2")])
        resp.write(b"{}")
        assert (b"Connection: close" in sock.sent) is shed and resp.should_close() is shed


def test_a_released_slot_is_not_counted_by_its_old_worker(cells) -> None:
    """A worker shutting down gracefully released its slot but still closes connections; after a reload the
    slot may already be a new worker's, whose count must not go down (peers would defer and shed towards it)."""
    old = live(cells, 100, connections=5)
    old.release(100)
    new = bw.Board(cells)
    assert new.base == old.base
    new.publish(200)
    new.opened()
    for _ in range(5):
        old.closed()
    assert cells[new.base + bw.OPEN] == 1
