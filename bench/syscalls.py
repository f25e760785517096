"""System calls per request: the product beside Gunicorn's floor (bench/bare_socket.py), counted by strace.

    .venv/bin/python bench/syscalls.py                          # c=1 and c=64, 2,000 requests each, about a minute
    .venv/bin/python bench/syscalls.py --requests 4000 --concurrency 1,16,64 --stream

Both run two Gunicorn gevent workers behind the same fake upstream (bench/upstream.py): cot_proxy with default
settings (bench/targets.py's Proxy), the floor with bench/bare_socket.py. Each gets a warm-up over the same kept-alive
client connections (imports, upstream pools, the first requests' lazy work), then `strace -f -c` is attached to its
workers (never the master), --requests non-streamed chat requests are sent in a closed loop of --concurrency
kept-alive connections, and strace is detached. The table gives each system call's count over the requests served,
both sides, and the total; the issue's bound is 15 a non-streamed chat request. The window also holds what the
workers do without a request (Gunicorn's heartbeat each second, gevent's timers): a few calls a second, under 0.01 a
request at these counts. Needs strace (Debian: `apt-get install -y strace`) and the right to ptrace the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import Pool, build_request, chat_body  # noqa: E402
from run import team_key_store  # noqa: E402
from targets import HOST, ROOT, BareForwarder, Proxy, Target, Upstream  # noqa: E402

sys.path.insert(0, str(ROOT))

WARM_UP = 200  # requests on each connection set before counting
BOUND = 15  # issue 70: system calls per non-streamed chat request
ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$")


def workers(target: Target) -> list[int]:
    """The Gunicorn master's children: the workers, found once they are up."""
    assert target.proc is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [p.pid for p in psutil.Process(target.proc.pid).children()]
        if len(found) >= 2:
            return found
        time.sleep(0.1)
    raise RuntimeError(f"{target.name}: its workers did not start")


def parse_summary(text: str) -> dict[str, int]:
    """strace -c's table: calls by system call name (the total row left out)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        m = ROW.match(line)
        if m and m.group(3) != "total":
            counts[m.group(3)] = int(m.group(1))
    return counts


async def send(pool: Pool, request: bytes, count: int) -> int:
    """`count` requests over the pool's connections, each sending its next when its answer is in; the 200s."""
    left = [count]
    ok = [0]

    async def one(i: int) -> None:
        while left[0] > 0:
            left[0] -= 1
            resp, _ = await pool.send(i, request)
            ok[0] += resp.status == 200

    await asyncio.gather(*(one(i) for i in range(pool.size)))
    return ok[0]


class Strace:
    """`strace -f -c` attached to some processes until stop()."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.out = tempfile.NamedTemporaryFile(prefix="syscalls_", suffix=".txt", delete=False).name
        pids = list(pids)
        args = ["strace", "-f", "-c", "-o", self.out] + [a for pid in pids for a in ("-p", str(pid))]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        attached = 0
        assert self.proc.stderr is not None
        while attached < len(pids):  # "Process N attached" per process (and per thread, with -f)
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"strace did not attach: {self.proc.wait()}")
            attached += "attached" in line

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=30)
        text = Path(self.out).read_text()
        os.unlink(self.out)
        return parse_summary(text)


def count(target: Target, concurrency: int, requests: int, request: bytes) -> tuple[dict[str, int], int]:
    """(calls by name, requests answered 200) of `requests` requests at `concurrency`."""
    pool = Pool(HOST, target.port, concurrency)
    loop = asyncio.new_event_loop()  # one loop: the pool's kept-alive connections belong to it
    try:
        loop.run_until_complete(send(pool, request, max(WARM_UP, concurrency * 4)))
        tracer = Strace(workers(target))
        try:
            ok = loop.run_until_complete(send(pool, request, requests))
        finally:
            counts = tracer.stop()
    finally:
        pool.close()
        loop.close()
    return counts, ok


def table(concurrency: int, sides: list[tuple[str, dict[str, int], int]]) -> str:
    names = sorted({n for _, counts, _ in sides for n in counts},
                   key=lambda n: -max(counts.get(n, 0) / max(ok, 1) for _, counts, ok in sides))
    head = f"| c={concurrency} system call | " + " | ".join(f"{name} per request" for name, _, _ in sides) + " |"
    lines = [head, "| --- |" + " ---: |" * len(sides)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{counts.get(n, 0) / max(ok, 1):.2f}" for _, counts, ok in sides)
                     + " |")
    lines.append("| **total** | " + " | ".join(f"**{sum(counts.values()) / max(ok, 1):.2f}**"
                                              for _, counts, ok in sides) + " |")
    lines.append("| requests answered 200 | " + " | ".join(str(ok) for _, _, ok in sides) + " |")
    return "\n".join(lines)


def team_key(kind: str, directory: str) -> dict[str, str]:
    """The settings that make the bench client's key (sk-bench) a team key of a SQLite store in `directory`."""
    if kind == "none":
        return {}
    if kind == "limited":
        store = team_key_store(directory)
    else:
        from argoproxy.teamkeys.records import KeyRecord, digest
        from argoproxy.teamkeys.store import SQLiteKeyStore
        store = os.path.join(directory, "keys.db")
        SQLiteKeyStore(store).create(KeyRecord("bench", digest("sk-bench"), "sk-bench", created=time.time()))
    return {"ENABLE_AUTH": "true", "API_KEY_SECRET": "sk-admin", "KEYS_DB": store}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests counted at each concurrency")
    parser.add_argument("--concurrency", default="1,64", help="kept-alive client connections, comma-separated")
    parser.add_argument("--stream", action="store_true", help="also count streamed requests (10 events each)")
    parser.add_argument("--team-key", choices=("none", "plain", "limited"), default="none",
                        help="the client's key a team key (SQLite store): without limits, or with rpm, tpm and a "
                             "daily budget (bench/run.py's keys section)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree whose proxy is counted (another commit's "
                        "`git archive`, to compare)")
    parser.add_argument("settings", nargs="*", metavar="SETTING=VALUE",
                        help="the proxy's settings beyond defaults; UPSTREAM_PORT in a value: the fake upstream's port")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.settings)
    levels = [int(c) for c in args.concurrency.split(",")]
    kinds = [("chat", chat_body())] + ([("stream", chat_body(stream=True, chunks=10))] if args.stream else [])
    keys_dir = tempfile.mkdtemp(prefix="syscalls_keys_")
    upstream = Upstream.start()
    targets: list[Target] = []
    worst = 0.0
    try:
        settings = {k: v.replace("UPSTREAM_PORT", str(upstream.port)) for k, v in settings.items()}
        settings.update(team_key(args.team_key, keys_dir))
        targets = [Proxy.start(upstream.port, root=args.root.resolve(), **settings), BareForwarder.start(upstream.port, kind="socket")]
        for kind, body in kinds:
            for c in levels:
                sides = []
                for target in targets:
                    request = build_request("POST", "/v1/chat/completions", HOST, target.port, body)
                    counts, ok = count(target, c, args.requests, request)
                    sides.append((target.name, counts, ok))
                    print(f"{target.name} {kind} c={c}: {sum(counts.values()) / max(ok, 1):.2f} calls a request",
                          file=sys.stderr)
                if kind == "chat":
                    worst = max(worst, sum(sides[0][1].values()) / max(sides[0][2], 1))
                print(f"\n### {kind}, {args.requests} requests at c={c}\n\n{table(c, sides)}")
    finally:
        for target in targets:
            target.stop()
        upstream.stop()
        shutil.rmtree(keys_dir, ignore_errors=True)
    print(f"\ncot_proxy's most per non-streamed chat request: {worst:.2f} (bound {BOUND}: "
          f"{'met' if worst <= BOUND else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
