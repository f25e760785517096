"""CPU per request of each front door against the chat door of the same proxy, whole and streamed, in rounds that
alternate over the doors (docs/performance.md, "The last run": the front doors against the chat path).

    .venv/bin/python bench/fronts_cost.py [--rounds 5] [--seconds 1.5] [--chunks 20] [--concurrency 16]

One fake upstream (bench/upstream.py) and one proxy with default settings (so the Responses door stores every
answer: `store` defaults to true). Each round measures every door whole and streamed (a `--chunks`-chunk stream
with no gaps) in turn, each for `--seconds` after a short warm-up, the order reversed every other round, so that a
busy moment of the shared machine touches every door alike. Per door and mode: the median CPU ms per request of
the proxy's processes over the rounds, their spread (min-max), and the median of the rounds' ratios to chat.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import client  # noqa: E402
from client import Pool, build_request  # noqa: E402
from run import FRONT_REQUESTS, log  # noqa: E402
from targets import HOST, Proxy, Target, Upstream, raise_nofile  # noqa: E402


def window(loop: asyncio.AbstractEventLoop, target: Target, req: bytes, seconds: float, concurrency: int) -> float:
    """CPU seconds per request of the target's processes over one closed-loop window (after a short warm-up)."""
    pool = Pool(HOST, target.port, concurrency)
    try:
        loop.run_until_complete(client.closed_loop(pool, req, 0.2))
        gc.collect()
        gc.disable()
        cpu0 = target.tree.cpu_seconds()
        res = loop.run_until_complete(client.closed_loop(pool, req, seconds))
        cpu = target.tree.cpu_seconds() - cpu0
    finally:
        gc.enable()
        pool.close()
    if res.errors or not res.count:
        raise RuntimeError(f"{res.errors} errors: {res.error_sample}")
    return cpu / res.count


def requests_by_case(port: int, chunks: int) -> dict[tuple[str, str], bytes]:
    out = {}
    for front, path, body in FRONT_REQUESTS:
        for mode, stream in (("whole", False), ("streamed", True)):
            out[(front, mode)] = build_request("POST", path(stream, chunks), HOST, port,
                                               json.dumps(body(stream, chunks)).encode())
    return out


def measure(target: Target, rounds: int, seconds: float, chunks: int,
            concurrency: int) -> dict[tuple[str, str], list[float]]:
    loop = asyncio.new_event_loop()
    cases = requests_by_case(target.port, chunks)
    order = list(cases)
    found: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for r in range(rounds):
        for case in (order if r % 2 == 0 else order[::-1]):
            found[case].append(window(loop, target, cases[case], seconds, concurrency))
        log(f"round {r + 1}/{rounds}: " + ", ".join(f"{f} {m} {v[-1] * 1000:.3f}" for (f, m), v in found.items()))
    loop.close()
    return found


def report(found: dict[tuple[str, str], list[float]], args: Any) -> str:
    lines = [f"CPU ms per request, c={args.concurrency}, {args.rounds} rounds of {args.seconds} s per door and mode; "
             f"streamed: {args.chunks} chunks, no gaps. × chat: the median of each round's ratio.", "",
             "| door | mode | CPU ms/req median | min-max | × chat |", "| --- | --- | ---: | ---: | ---: |"]
    for (front, mode), values in found.items():
        chat = found[("chat", mode)]
        ratio = statistics.median(v / c for v, c in zip(values, chat))
        lines.append(f"| {front} | {mode} | {statistics.median(values) * 1000:.3f} | "
                     f"{min(values) * 1000:.3f}-{max(values) * 1000:.3f} | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args(argv)
    raise_nofile()
    upstream = Upstream.start()
    proxy = None
    try:
        proxy = Proxy.start(upstream.port)
        log(f"cot_proxy on port {proxy.port} ({proxy.description})")
        print(report(measure(proxy, args.rounds, args.seconds, args.chunks, args.concurrency), args))
    finally:
        if proxy is not None:
            proxy.stop()
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
