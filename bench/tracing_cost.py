"""What tracing costs a request in the worker's own terms (docs/tracing.md, "What it costs"): the door built
in-process, untraced and traced, a non-streamed chat request against an in-process upstream, the CPU time of the
process (the batch processor's export thread included, sending to bench/otlp_sink.py) alternated round by round.
A machine loaded by other work moves a whole request's CPU through Gunicorn by more than tracing adds: this
measures tracing's part alone, as a worker tunes its collector (gc.freeze, larger young generation).

    .venv/bin/python bench/tracing_cost.py
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argoproxy.config.settings import load_settings  # noqa: E402
from argoproxy.edge.http_objects import Request  # noqa: E402
from argoproxy.serve.proxy import build_proxy  # noqa: E402
from tests.fakes.fake_upstream import FakeUpstream  # noqa: E402

ROUNDS, REQUESTS = 9, 3000
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5,
                   "max_tokens": 20}).encode()


def door(tracing: str, endpoint: str) -> Any:
    settings = load_settings({}, environ={"TRACING": tracing, "TARGET_BASE_URL": "http://upstream.test/v1",
                                          "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    return build_proxy(settings, FakeUpstream())


def requests(d: Any, n: int) -> float:
    """CPU µs per request over n requests."""
    started = time.process_time()
    for _ in range(n):
        d.handle(Request.of("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})).get_data()
    return (time.process_time() - started) / n * 1e6


def measure(rounds: int = ROUNDS, each: int = REQUESTS) -> dict[str, Any]:
    """CPU µs per request untraced and traced, and what tracing adds: the medians of `rounds` alternated rounds of
    `each` requests."""
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "otlp_sink.py")], stdout=subprocess.PIPE, text=True)
    try:
        endpoint = f"http://127.0.0.1:{int(sink.stdout.readline().split()[1])}"
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint  # the SDK's exporter reads it
        # The loop below keeps the GIL busy: the export thread may fall behind, and no span may be dropped unpaid
        os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(2 * rounds * each)
        doors = {"off": door("off", endpoint), "on": door("on", endpoint)}
        for d in doors.values():
            requests(d, 300)
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        runs: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(rounds):
            for name, d in doors.items():
                runs[name].append(requests(d, each))
        added = sorted(b - a for a, b in zip(runs["off"], runs["on"]))
        return {"untraced": sorted(runs["off"])[rounds // 2], "traced": sorted(runs["on"])[rounds // 2],
                "added": added[rounds // 2]}
    finally:
        from argoproxy.tracing import tracer as tracing
        tracing.shutdown()  # what is queued goes to the sink before it stops (no retries against a closed port)
        sink.terminate()


def main() -> None:
    row = measure()
    print(f"in-process CPU per request: untraced {row['untraced']:.1f} µs, traced {row['traced']:.1f} µs, "
          f"added {row['added']:.1f} µs (median of {ROUNDS} alternated rounds of {REQUESTS})")


if __name__ == "__main__":
    main()
