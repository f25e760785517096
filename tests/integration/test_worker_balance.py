"""Connections are spread over the gevent workers (argoproxy.fastpath.balanced_worker): Gunicorn's own gevent worker
lets whichever worker runs first accept (16 of 16 connections on one worker in 2 of 5 tries).

A loaded worker leaves a new connection to a less loaded peer for up to PATIENCE (10 ms) before it takes it
anyway. On a busy machine the peer is sometimes not scheduled within 10 ms, so how a burst splits depends on
the load. These tests run the workers with a PATIENCE of a minute instead, so that the outcome depends on the
mechanism alone: no peer here is stuck, a slow one only makes the wait longer. The stuck-peer fallback itself
is covered in-process (tests/unit/test_balanced_worker.py).

For the same reason the workers keep an idle connection a minute (Gunicorn's --keep-alive), not the product's
5 s: the tests hold two dozen kept-alive connections while they look up, connection by connection, which worker
holds each (psutil), and at a load of 20 that took longer than 5 s, so the worker had closed the first ones
before the test sent on them (a shed answer's test then read an empty socket until its 60 s timeout)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from contextlib import ExitStack

import psutil
import pytest

from tests.fakes.fake_openai import FakeOpenAI, Reply, chat_completion
from tests.proxy_process import ROOT, running_proxy
from tests.proxy_process import GUNICORN as PLAIN_GUNICORN
from tests.reliability.support import wait_for_workers

pytestmark = pytest.mark.timeout(60)

BURST = 32
# The workers, with PATIENCE raised before Gunicorn loads its worker class (the module is the same after the fork).
GUNICORN = [sys.executable, "-c",
            "import sys; import argoproxy.fastpath.balanced_worker as bw; bw.PATIENCE = 60.0; "
            "from gunicorn.app.wsgiapp import run; sys.argv[0] = 'gunicorn'; sys.exit(run())",
            "-c", str(ROOT / "gunicorn.conf.py"), "--keep-alive", "60", "cot_proxy:app"]


@pytest.fixture(scope="module")
def upstream():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def balanced(upstream):
    # The balanced worker is part of the fast path: with FAST_PATH=off Gunicorn's own gevent worker runs.
    with running_proxy(GUNICORN, TARGET_BASE_URL=upstream.base_url, WORKERS="2", WORKER_CLASS="gevent",
                       FAST_PATH="on") as p:
        yield p, wait_for_workers(p, 2)


def holder(pids: set[int], port: int, client_port: int) -> int | None:
    """The worker holding the proxy's end of the connection from client_port (None: no worker holds it)."""
    for pid in pids:
        for c in psutil.Process(pid).net_connections("tcp"):
            if c.laddr and c.laddr.port == port and c.raddr and c.raddr.port == client_port:
                return pid
    return None


def held(pids: set[int], port: int) -> dict[int, int]:
    """How many connections on the proxy's port each worker holds, closing ones included."""
    return {pid: sum(1 for c in psutil.Process(pid).net_connections("tcp")
                     if c.laddr and c.laddr.port == port and c.raddr and c.status != psutil.CONN_LISTEN)
            for pid in pids}


def answered(port: int) -> socket.socket:
    """A keep-alive connection that has had its answer (so a worker accepted and counted it); left open."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 "), "no answer"
    return s


def burst(port: int, n: int, pids: set[int]) -> tuple[list[bytes], dict[int, int]]:
    """Open n connections at once, each sending a request at once (as a client's pool does); the status lines
    and how many connections each worker holds while they are all open."""

    async def one() -> tuple[asyncio.StreamWriter, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")  # keep-alive: it stays with its worker
        return writer, await asyncio.wait_for(reader.readline(), 30)

    async def run() -> tuple[list[bytes], dict[int, int]]:
        done = await asyncio.gather(*(one() for _ in range(n)))
        try:
            return [status for _, status in done], held(pids, port)
        finally:
            for writer, _ in done:
                writer.close()

    return asyncio.run(run())


def wait_until_closed(pids: set[int], port: int) -> None:
    """Until the workers' handlers have seen their clients close (and counted the connections as closed)."""
    deadline = time.monotonic() + 10
    while any(held(pids, port).values()):
        assert time.monotonic() < deadline, f"connections still held: {held(pids, port)}"
        time.sleep(0.02)


def test_connections_opened_one_by_one_go_to_the_less_loaded_worker(balanced) -> None:
    """Each worker takes turns while they are even; when one worker's connections all close, the next ones
    all go to it, although the other worker is just as idle (Gunicorn's own worker: whichever wins the race)."""
    p, pids = balanced
    with ExitStack() as stack:
        opened: dict[int, list[socket.socket]] = {pid: [] for pid in pids}
        deadline = time.monotonic() + 20  # the second worker may still be loading the app
        while min(map(len, opened.values())) == 0 or sum(map(len, opened.values())) < 24:
            assert time.monotonic() < deadline, f"one worker takes every connection: {held(pids, p.port)}"
            s = stack.enter_context(answered(p.port))
            opened[holder(pids, p.port, s.getsockname()[1])].append(s)
        loaded = max(pids, key=lambda pid: len(opened[pid]))
        (idle,) = pids - {loaded}
        assert len(opened[loaded]) >= 12
        for s in opened[idle]:
            s.close()
        wait_until_closed({idle}, p.port)
        # The loaded worker defers while the idle one holds fewer than its own count minus a margin of one.
        took = [holder(pids, p.port, stack.enter_context(answered(p.port)).getsockname()[1]) for _ in range(10)]
        assert took == [idle] * 10, f"{took.count(loaded)} of 10 went to the worker holding {len(opened[loaded])}"
    wait_until_closed(pids, p.port)


def test_a_burst_of_connections_is_spread_over_both_workers(balanced) -> None:
    p, pids = balanced
    wait_until_closed(pids, p.port)
    for _ in range(3):
        statuses, spread = burst(p.port, BURST, pids)
        assert statuses == [b"HTTP/1.1 200 OK\r\n"] * BURST
        assert sum(spread.values()) == BURST
        assert min(spread.values()) >= BURST // 4, spread
        wait_until_closed(pids, p.port)


def test_a_worker_holding_far_more_hands_kept_alive_connections_back(balanced) -> None:
    """Connections kept alive stay with the worker that accepted them. When one worker holds far more than
    its peer (here: the peer's connections all closed), it answers some requests with `Connection: close`
    (one every SHED_EVERY_MS at most), and the client's reconnections go to the peer until they are even."""
    p, pids = balanced
    wait_until_closed(pids, p.port)
    with ExitStack() as stack:
        loaded, idle, held_by_loaded = loaded_worker(p, pids, stack)
        conns, closed = list(held_by_loaded), 0
        deadline = time.monotonic() + 30
        while held(pids, p.port)[idle] < len(conns) // 3:  # a client using all its connections, as a pool does
            assert time.monotonic() < deadline, f"still {held(pids, p.port)} after {closed} connections closed"
            for i, s in enumerate(conns):
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                head = s.recv(65536)
                assert head.startswith(b"HTTP/1.1 200 "), head[:100]
                if b"\r\nconnection: close\r\n" in head.lower():
                    closed += 1
                    s.close()
                    conns[i] = stack.enter_context(answered(p.port))
        spread = held(pids, p.port)
        assert closed >= spread[idle] and spread[loaded] >= spread[idle], (closed, spread)
    wait_until_closed(pids, p.port)


def loaded_worker(p, pids: set[int], stack: ExitStack) -> tuple[int, int, list[socket.socket]]:
    """24 kept-alive connections, then those of one worker closed: (the worker holding the rest, the idle one,
    the connections it holds), so that the loaded worker's next answer sheds its connection."""
    opened: dict[int, list[socket.socket]] = {pid: [] for pid in pids}
    while sum(map(len, opened.values())) < 24:
        s = stack.enter_context(answered(p.port))
        opened[holder(pids, p.port, s.getsockname()[1])].append(s)
    loaded = max(pids, key=lambda pid: len(opened[pid]))
    (idle,) = pids - {loaded}
    for s in opened[idle]:
        s.close()
    wait_until_closed({idle}, p.port)
    return loaded, idle, opened[loaded]


def test_a_shed_answer_arrives_whole_when_the_client_already_sent_its_next_request(balanced, upstream) -> None:
    """The answer that sheds its connection goes out whole and the connection ends with a FIN. Gunicorn's plain
    close() with the client's next request (pipelined behind a large answer) still unread made the kernel reset
    the connection: the end of the answer still in the send buffer was dropped (6 of 8 MB arrived), or the client
    read it all and then a reset instead of the end of the connection (RFC 9112, 9.6)."""
    p, pids = balanced
    wait_until_closed(pids, p.port)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    big = chat_completion("x" * 8_000_000)  # more than the socket buffers hold: the worker is still sending
    with ExitStack() as stack:
        _, _, conns = loaded_worker(p, pids, stack)
        s = conns[0]
        upstream.add(Reply(big), Reply(big))
        s.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = s.recv(65536)
            assert data, f"the connection closed before the answer's head: {answer[:200]!r}"
            answer += data
        s.sendall(request)  # the next request, before the rest of the answer was read (pipelining)
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert b"\r\nconnection: close\r\n" in head.lower() + b"\r\n", head  # this answer sheds
        length = int(next(line.split(b":")[1] for line in head.lower().split(b"\r\n")
                          if line.startswith(b"content-length:")))
        try:
            while chunk := s.recv(1 << 20):
                rest += chunk
        except ConnectionResetError:
            pytest.fail(f"reset after {len(rest)} of the answer's {length} bytes")
        assert len(rest) == length and json.loads(rest) == big
    wait_until_closed(pids, p.port)


def test_a_stuck_peer_does_not_make_the_loaded_worker_close_connection_after_connection(upstream) -> None:
    """A peer holding few connections but not accepting (stuck: here stopped) took none of the connections the
    loaded worker shed: each came back after PATIENCE, and the next answer shed again, one every SHED_EVERY_MS
    (about 80 closes a second for the 5 s until the peer's heartbeat went stale). Once a connection waited out
    PATIENCE, shedding pauses (SHED_PAUSE_MS). Stock PATIENCE here: the stuck peer is the point."""
    with running_proxy(PLAIN_GUNICORN, TARGET_BASE_URL=upstream.base_url, WORKERS="2", WORKER_CLASS="gevent",
                       FAST_PATH="on") as p, ExitStack() as stack:
        pids = wait_for_workers(p, 2)
        deadline = time.monotonic() + 20  # both workers serving (one may still be loading the app)
        while len({holder(pids, p.port, stack.enter_context(answered(p.port)).getsockname()[1]) for _ in range(4)}) < 2:
            assert time.monotonic() < deadline, "one worker takes every connection"
        loaded, idle, conns = loaded_worker(p, pids, stack)
        os.kill(idle, signal.SIGSTOP)
        try:
            closed, end = 0, time.monotonic() + 1.5
            while time.monotonic() < end:
                for i, s in enumerate(conns):
                    try:
                        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        head = s.recv(65536)
                    except (ConnectionResetError, BrokenPipeError):  # its keep-alive timeout crossed the request
                        head = b""  # (a loaded machine left it idle for 5 s): no answer, so not a shed one
                    assert head.startswith(b"HTTP/1.1 200 ") or not head, head[:100]
                    if not head or b"\r\nconnection: close\r\n" in head.lower():
                        closed += bool(head)
                        s.close()
                        conns[i] = stack.enter_context(answered(p.port))  # back on the loaded worker
        finally:
            os.kill(idle, signal.SIGCONT)
        assert closed <= 20, f"{closed} connections closed in 1.5 s, none of them could move"  # 87 before
