"""Two proxies' CPU per request compared in many short windows, alternated pair by pair: the ratio of each pair
(B over A) is two neighbouring measurements, so the machine's slow drift falls on both, and the median of many
pairs with its quartiles says how sure the figure is. docs/tracing.md, "What it costs" uses it.

    .venv/bin/python bench/cpu_pairs.py --b TRACING=on                      # untraced against traced
    .venv/bin/python bench/cpu_pairs.py --a TRACING=on --b TRACING=on       # the same twice: the instrument's own spread
    .venv/bin/python bench/cpu_pairs.py --b TRACING=on --b-floor            # against the tracing floor's proxy
    .venv/bin/python bench/cpu_pairs.py --a-socket-floor --pairs 7 --concurrency 1   # the product over the stack's floor

Both proxies run the default settings plus the given NAME=VALUE pairs, behind one fake upstream (bench/upstream.py)
and, with TRACING=on, one OTLP sink (bench/otlp_sink.py); `--b-floor` puts the floor's tracer
(bench/tracing_floor) on B's PYTHONPATH; `--a-socket-floor` makes A Gunicorn's floor (bench/bare_socket.py under the
same gevent workers: issue 70's "CPU per chat request at most 3.0x the stack's floor", read on the upper
quartile of the pairs' ratios). Small non-streamed chat requests in a closed loop; CPU is read as
bench/run.py reads it (each thread's scheduler statistics).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import client  # noqa: E402
from client import Pool, build_request, chat_body  # noqa: E402
from targets import BENCH, FLOOR_SAYS, HOST, ROOT, BareForwarder, OtlpSink, Proxy, Upstream  # noqa: E402


def settings(pairs: list[str], sink: OtlpSink) -> dict[str, str]:
    out = dict(pair.split("=", 1) for pair in pairs)
    if out.get("TRACING") == "on":
        out.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", nargs="*", default=[], metavar="NAME=VALUE", help="proxy A's settings")
    ap.add_argument("--b", nargs="*", default=[], metavar="NAME=VALUE", help="proxy B's settings")
    ap.add_argument("--b-floor", action="store_true", help="B's tracer the tracing floor's (bench/tracing_floor)")
    ap.add_argument("--a-socket-floor", action="store_true", help="A is Gunicorn's floor (bench/bare_socket.py)")
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=1.0, help="each window (default %(default)s)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--key-store", action="store_true", help="the client's key a team key of a SQLite store each "
                    "proxy has (ENABLE_AUTH, KEYS_DB)")
    ap.add_argument("--b-owner", action="store_true", help="with --key-store: B's key belongs to a person")
    args = ap.parse_args()
    if args.key_store:  # each its own store (the settings given after it win)
        from targets import key_store
        owner = "p-bench" if args.b_owner else ""
        args.a = [f"{k}={v}" for k, v in key_store(tempfile.mkdtemp(prefix="cot_proxy_pairs_")).items()] + args.a
        args.b = [f"{k}={v}" for k, v in key_store(tempfile.mkdtemp(prefix="cot_proxy_pairs_"), owner=owner).items()] \
            + args.b
    loop = asyncio.new_event_loop()
    upstream, sink = Upstream.start(), OtlpSink.start()
    b = settings(args.b, sink)
    if args.b_floor:
        b["PYTHONPATH"] = f"{BENCH / 'tracing_floor'}:{ROOT}"
    a = BareForwarder.start(upstream.port, kind="socket") if args.a_socket_floor else \
        Proxy.start(upstream.port, name="A", **settings(args.a, sink))
    proxies = [a, Proxy.start(upstream.port, name="B", **b)]
    loads = [(Pool(HOST, p.port, args.concurrency), build_request("POST", "/v1/chat/completions", HOST, p.port,
                                                                   chat_body())) for p in proxies]

    def window(i: int, seconds: float) -> float:
        pool, request = loads[i]
        before = proxies[i].tree.cpu_seconds()
        done = loop.run_until_complete(client.closed_loop(pool, request, seconds))
        if done.errors:
            raise RuntimeError(f"{proxies[i].name}: {done.error_sample}")
        return (proxies[i].tree.cpu_seconds() - before) / done.count

    try:
        for i in (0, 1):
            window(i, 2.0)  # warm
        cpu: list[list[float]] = [[], []]
        for n in range(args.pairs):
            for i in ((0, 1) if n % 2 == 0 else (1, 0)):  # which goes first alternates
                cpu[i].append(window(i, args.seconds))
        if args.b_floor and FLOOR_SAYS not in proxies[1].log_tail(1 << 24):  # else B was the product again
            raise RuntimeError("B's workers never took bench/tracing_floor's tracer")
        ratios = [y / x for x, y in zip(*cpu)]
        low, _, high = statistics.quantiles(ratios, n=4)
        print(f"A {statistics.median(cpu[0]) * 1e6:.1f} µs, B {statistics.median(cpu[1]) * 1e6:.1f} µs a request; "
              f"B/A median {statistics.median(ratios):.3f}, quartiles {low:.3f}-{high:.3f} "
              f"({args.pairs} pairs of {args.seconds:g} s at {args.concurrency} connections)")
    finally:
        for pool, _ in loads:
            pool.close()
        for target in (*proxies, sink, upstream):
            target.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
