"""The request log's page and detail times with 100,000 rows (issue 71: "with 100,000 journal lines, every
/admin/v1/ list answers within 200 ms at p95"), on SQLite (a key store file) and Redis (when redis-server is
installed), in-process: argoproxy.requestlog's RequestIndex fills the index in its batches, then pages are read
newest first with each filter, deep into the log by their cursors, and details read from a journal file.

    .venv/bin/python bench/request_log.py                 # 100,000 rows, 200 reads of each kind
    .venv/bin/python bench/request_log.py --rows 20000 --reads 50

Prints per store: the time to write the rows (batches of FLUSH_SECONDS' worth), and the p50 / p95 / max of a
first page (no filter, each filter alone, three together), a page 20 pages deep, and a detail.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import start_redis  # noqa: E402

from argoproxy.requestlog import Filters, LogRow, RequestIndex, detail, page  # noqa: E402
from argoproxy.teamkeys.store import SQLiteKeyStore  # noqa: E402

T0 = 1_900_000_000.0
DOORS = ("openai", "responses", "messages", "google", "ollama")
BATCH = 500  # rows a flush writes: 1,000 requests a second, flushed every 0.5 s


def rows(count: int, journal: str) -> list[LogRow]:
    rng = random.Random(71)
    line = b'{"request_id":"%s","input":{},"output":{}}\n'
    out, offset = [], 0
    with open(journal, "wb") as f:
        for n in range(count):
            rid = f"{n:032x}"
            data = line % rid.encode()
            f.write(data)
            out.append(LogRow(T0 + n * 0.05, rid, f"key{rng.randrange(1000)}", f"person{rng.randrange(100)}",
                              f"model{rng.randrange(20)}", rng.choice((200, 200, 200, 429, 500)), rng.choice(DOORS),
                              f"s{rng.randrange(5000)}", 100, 20, 1000, journal, offset, len(data)))
            offset += len(data)
    return out


def timed(work: Callable[[], Any], reads: int) -> str:
    times = []
    for _ in range(reads):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    p95 = statistics.quantiles(times, n=20)[-1]
    return f"p50 {statistics.median(times):6.2f} ms, p95 {p95:6.2f} ms, max {max(times):6.2f} ms"


def measure(name: str, store: Any, made: list[LogRow], reads: int) -> None:
    index = RequestIndex(store, len(made))
    index._start = lambda: None  # type: ignore[method-assign]  # flushed here, batch by batch
    began = time.perf_counter()
    for i in range(0, len(made), BATCH):
        for row in made[i:i + BATCH]:
            index.add(row)
        index.flush()
    took = time.perf_counter() - began
    print(f"{name}: {len(made):,} rows written in {took:.1f} s ({took / len(made) * 1e6:.0f} µs a row, in batches of "
          f"{BATCH})")
    rng = random.Random(1)
    some = made[len(made) // 2]
    cases: dict[str, Callable[[], Filters]] = {
        "no filter": lambda: Filters(),
        "person": lambda: Filters(owner=f"person{rng.randrange(100)}"),
        "key": lambda: Filters(key=f"key{rng.randrange(1000)}"),
        "model": lambda: Filters(model=f"model{rng.randrange(20)}"),
        "status 500": lambda: Filters(status=500),
        "door": lambda: Filters(door=rng.choice(DOORS)),
        "last hour": lambda: Filters(since=made[-1].time - 3600),
        "person+model+status": lambda: Filters(owner=f"person{rng.randrange(100)}", model=f"model{rng.randrange(20)}",
                                               status=200),
    }
    for case, filters in cases.items():
        print(f"  first page, {case:20} {timed(lambda: page(store, filters(), None), reads)}")
    cursor = None
    for _ in range(20):
        cursor = page(store, Filters(), cursor).cursor
    print(f"  page 21, no filter           {timed(lambda: page(store, Filters(), cursor), reads)}")
    print(f"  detail                       {timed(lambda: detail(store, rng.choice(made).request_id), reads)}")
    assert detail(store, some.request_id)["line"]["request_id"] == some.request_id


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--reads", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="request_log_") as directory:
        made = rows(args.rows, os.path.join(directory, "client_interaction.jsonl"))
        measure("SQLite", SQLiteKeyStore(os.path.join(directory, "keys.db")), made, args.reads)
        redis = start_redis(directory)
        if redis is None:
            print("Redis: redis-server is not installed")
            return 0
        proc, url = redis
        try:
            from argoproxy.teamkeys.redis_store import RedisKeyStore
            measure("Redis", RedisKeyStore(url), made, args.reads)
        finally:
            proc.terminate()
            proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
