"""Connections that arrive together are spread over the gevent workers (argoproxy.fastpath.balanced_worker): Gunicorn's
own gevent worker let whichever worker ran first accept them all (16 of 16 on one worker in 2 of 5 tries)."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from tests.proxy_process import running_proxy
from tests.reliability.support import wait_for_workers

pytestmark = pytest.mark.timeout(60)

CONNECTIONS = 32


def connections_per_worker(pids: set[int], port: int) -> dict[int, int]:
    return {pid: sum(1 for c in psutil.Process(pid).net_connections("tcp")
                     if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
            for pid in pids}


def burst(port: int, n: int, pids: set[int]) -> tuple[list[bytes], dict[int, int]]:
    """Open n connections at once, each sending a request at once (as a client's pool does); the status lines
    and how many connections each worker holds while they are all open."""

    async def one() -> tuple[asyncio.StreamWriter, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: it stays with its worker
        return writer, await asyncio.wait_for(reader.readline(), 10)

    async def run() -> tuple[list[bytes], dict[int, int]]:
        done = await asyncio.gather(*(one() for _ in range(n)))
        try:
            return [status for _, status in done], connections_per_worker(pids, port)
        finally:
            for writer, _ in done:
                writer.close()

    return asyncio.run(run())


def wait_until_both_accept(port: int, pids: set[int]) -> None:
    """Workers boot one after the other; until the second has loaded the app the first takes everything."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, spread = burst(port, 4, pids)
        if min(spread.values()) > 0:
            time.sleep(0.2)  # the closes reach the workers
            return
        time.sleep(0.2)
    raise AssertionError("the second worker never accepted a connection")


def test_a_burst_of_connections_is_spread_over_both_workers(fake) -> None:
    # The balanced worker is part of the fast path: with FAST_PATH=off Gunicorn's own gevent worker runs.
    with running_proxy(TARGET_BASE_URL=fake.base_url, WORKERS="2", FAST_PATH="on") as p:
        pids = wait_for_workers(p, 2)
        wait_until_both_accept(p.port, pids)
        for _ in range(3):
            statuses, spread = burst(p.port, CONNECTIONS, pids)
            assert statuses == [b"HTTP/1.1 200 OK\r\n"] * CONNECTIONS
            assert sum(spread.values()) == CONNECTIONS
            assert min(spread.values()) >= CONNECTIONS // 4, spread
            time.sleep(0.2)
