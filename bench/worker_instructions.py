"""Instructions per request through a real Gunicorn worker, default settings against default settings plus some,
counted by valgrind's callgrind, for docs/tracing.md, "What it costs". The machine's load barely moves the counts: a
worker's timers run by the second and gevent's loop finds more or fewer requests ready at each turn, so the same
configuration moves by a few k instructions a request from run to run (some 20-45 k with several proxies under
callgrind at once on a loaded machine); run it twice.

    .venv/bin/python bench/worker_instructions.py TRACING=on            # about 5 minutes, both at once
    .venv/bin/python bench/worker_instructions.py --requests 4096 --concurrency 1 TRACING=on
    .venv/bin/python bench/worker_instructions.py --doors chat,responses --concurrency 1   # two doors, same settings
    .venv/bin/python bench/worker_instructions.py --a-socket-floor      # the product over Gunicorn's floor

Both proxies run under `valgrind --tool=callgrind --trace-children=yes` with one gevent worker each, behind the
same fake upstream (bench/upstream.py). Each gets WARM_UP requests, then callgrind's counts are zeroed in its worker
(bench/worker_marks/sitecustomize.py), then --requests small non-streamed chat requests in a closed loop of
--concurrency connections, then the counts are written: the worker's whole path (Gunicorn's parsing, gevent, the
app, the export of spans in the background), over the requests served. Gunicorn's C HTTP parser uses an
instruction valgrind cannot run (SSE 4.2's pcmpestri): both run its pure Python parser, which adds the same share
to both. With TRACING=on the spans go to bench/otlp_sink.py, exported in full batches only
(OTEL_BSP_SCHEDULE_DELAY raised): under valgrind's slowdown the 5-second timer would send a batch every few hundred
requests, where at full speed the batch fills first.

`--doors A,B` sends the first proxy door A's requests and the second door B's (bench/run.py's FRONT_REQUESTS, the
fronts section's non-streamed bodies: a Responses one is stored, as by default); the settings are then optional.
`--workers N` runs N workers in each proxy (bench/run.py's proxies run the default, 2): every worker is counted,
their instructions summed over the requests served.

Each proxy's garbage collections in the counted window are printed. WORKER_GC=off runs both with the collector
off in that window; WORKER_CALLGRIND_DIR=<dir> keeps the workers' callgrind files there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import client  # noqa: E402
from client import Pool, build_request  # noqa: E402
from run import FRONT_REQUESTS  # noqa: E402
from targets import (BENCH, HOST, ROOT, _SETTING_ENV, _SETTING_ENV_PREFIXES, OtlpSink, Upstream,  # noqa: E402
                     _stop, free_port)

WARM_UP = 300
NO_TIMER = "100000000"  # ms: spans exported when a batch is full


class Counted:
    """One proxy under callgrind, its worker's counts between two marks."""

    def __init__(self, name: str, upstream: int, settings: dict[str, str], door: str = "chat",
                 workers: int = 1, root: Path = ROOT, floor: bool = False) -> None:
        """`root`: the tree served (default this one; bench/cpu_commits.py --instructions counts another commit's);
        `floor`: Gunicorn's floor instead (bench/bare_socket.py under Gunicorn's gevent worker)."""
        self.name, self.tmp, self.port = name, tempfile.mkdtemp(prefix="cot_proxy_instr_"), free_port()
        self.door, self.workers = door, workers
        self.marks = os.path.join(self.tmp, "marks")
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_ENV_PREFIXES) and k not in _SETTING_ENV}
        env.update(HOME=self.tmp, PYTHONPATH=f"{BENCH / 'worker_marks'}:{root}", PYTHONHASHSEED="0",
                   HOST=HOST, PORT=str(self.port), WORKERS=str(workers), TIMEOUT="600", WORKER_MARKS=self.marks,
                   TARGET_BASE_URL=f"http://{HOST}:{upstream}/v1/", GUNICORN_CMD_ARGS="--http-parser python")
        env.update(settings)
        served = ["-c", str(root / "gunicorn.conf.py"), "cot_proxy:app"]
        if floor:
            env.update(PYTHONPATH=f"{BENCH / 'worker_marks'}:{BENCH}", BARE_TARGET=f"http://{HOST}:{upstream}")
            served = ["-k", "gevent", "-w", str(workers), "-b", f"{HOST}:{self.port}", "bare_socket:app"]
        self.out = os.path.join(self.tmp, "callgrind")
        with open(os.path.join(self.tmp, "log"), "wb") as log:
            self.proc = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--trace-children=yes", "--zero-before=os_getpgid",
                 "--dump-before=os_getsid", f"--callgrind-out-file={self.out}.%p", sys.executable, "-m", "gunicorn",
                 *served], cwd=self.tmp, env=env,
                stdout=subprocess.DEVNULL, stderr=log)

    def ready(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), 1).close()
                return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"{self.name} did not start")

    def mark(self, which: str) -> None:
        Path(f"{self.marks}.{which}").touch()
        time.sleep(3)  # the worker's thread looks every 0.2 s (slower under valgrind)

    def instructions(self, timeout: float = 120) -> int:
        """Every worker's count, summed (each writes its own file when told to): its `totals`, what was counted
        since the zero mark (`summary` also holds the start-up and warm-up: the marks' thread zeroes and writes
        the counts, not the thread running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = [re.search(r"^totals: (\d+)", path.read_text(errors="replace"), re.M)
                      for path in Path(self.tmp).glob("callgrind.*.1")]
            if len(counts) == self.workers and all(counts):
                return sum(int(found.group(1)) for found in counts if found)
            time.sleep(1)
        raise RuntimeError(f"{self.name}: no counts written")

    def stop(self) -> None:
        passes = Path(f"{self.marks}.gc")
        if passes.exists():
            young, middle, old, freed = passes.read_text().split()
            print(f"{self.name}: garbage collections counted {young}, {middle}, {old} (generations 0, 1, 2), "
                  f"{freed} objects freed by them")
        _stop(self.proc, signal.SIGINT, 30)
        kept = os.environ.get("WORKER_CALLGRIND_DIR")
        if kept:  # the worker's counts, for callgrind_annotate
            label = self.name.split("=")[0].replace(" ", "_")
            for path in Path(self.tmp).glob("callgrind.*.1"):
                shutil.copy(path, os.path.join(kept, f"{label}.{path.name}"))
        shutil.rmtree(self.tmp, ignore_errors=True)


async def closed_loop(proxy: Counted, requests: int, concurrency: int) -> int:
    """At least `requests` answered (in rounds of two seconds), every one a 200."""
    _, path, body = next(f for f in FRONT_REQUESTS if f[0] == proxy.door)
    req = build_request("POST", path(False, 100), HOST, proxy.port, json.dumps(body(False, 100)).encode())
    pool, done = Pool(HOST, proxy.port, concurrency), 0
    try:
        while done < requests:
            result = await client.closed_loop(pool, req, 2.0)
            if result.errors:
                raise RuntimeError(f"{proxy.name}: {result.error_sample}")
            done += result.count
    finally:
        pool.close()
    return done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("settings", nargs="*", help="NAME=VALUE added to the second proxy's environment")
    ap.add_argument("--requests", type=int, default=2048, help="requests counted (default %(default)s: two full "
                                                               "batches of spans with the default batch size)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--doors", default="chat", help="the door of both proxies' requests, or two (A,B): the first "
                                                    "proxy's and the second's (default %(default)s)")
    ap.add_argument("--workers", type=int, default=1, help="workers in each proxy (default %(default)s)")
    ap.add_argument("--a-socket-floor", action="store_true", help="the first is Gunicorn's floor (bench/bare_socket.py "
                                                                  "under its gevent worker), the second the product")
    args = ap.parse_args()
    doors = args.doors.split(",")
    doors = doors * 2 if len(doors) == 1 else doors
    known = {f[0] for f in FRONT_REQUESTS}
    if len(doors) != 2 or not set(doors) <= known:
        ap.error(f"--doors: one or two of {', '.join(sorted(known))}")
    if not args.settings and doors[0] == doors[1] and not args.a_socket_floor:
        ap.error("nothing to compare: give settings for the second proxy, or two doors")
    added = dict(s.split("=", 1) for s in args.settings)
    upstream, sink = Upstream.start(), None
    if added.get("TRACING") == "on":
        sink = OtlpSink.start()
        added.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url)
        added.setdefault("OTEL_BSP_SCHEDULE_DELAY", NO_TIMER)
    names = ["Gunicorn's floor" if args.a_socket_floor else "default", " ".join(args.settings) or "default"]
    if doors[0] != doors[1]:
        names = [f"{door} ({name})" for door, name in zip(doors, names)]
    proxies = [Counted(name, upstream.port, settings, door, args.workers, floor=args.a_socket_floor and i == 0)
               for i, (name, settings, door) in enumerate(zip(names, ({}, added), doors))]
    try:
        for p in proxies:
            p.ready()

        async def measure(p: Counted) -> int:
            await closed_loop(p, WARM_UP, args.concurrency)
            await asyncio.to_thread(p.mark, "zero")
            done = await closed_loop(p, args.requests, args.concurrency)
            await asyncio.to_thread(p.mark, "dump")
            return done

        async def both() -> list[int]:
            return list(await asyncio.gather(*(measure(p) for p in proxies)))

        served = asyncio.run(both())
        per = [p.instructions() / n for p, n in zip(proxies, served)]
    finally:
        for p in proxies:
            p.stop()
        if sink is not None:
            print(f"sink: {sink.counts()}")
            sink.stop()
        upstream.stop()
    for p, n, x in zip(proxies, served, per):
        print(f"{p.name}: {x / 1e6:.3f} M instructions a request ({n} requests, c={args.concurrency}, "
              f"{args.workers} worker{'s' if args.workers > 1 else ''})")
    print(f"difference {(per[1] - per[0]) / 1e3:+.1f} k a request, ratio {per[1] / per[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
