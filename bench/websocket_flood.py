"""One key floods the Responses WebSocket (issue 69 item 4): a team key created with `--max-parallel 1` opens up to
3,000 idle connections on `/v1/responses` against a proxy whose two gevent workers have an open-file limit of
1,024 (soft, as a common `ulimit -n`), while another key sends 5 plain chat requests and opens one WebSocket.

    .venv/bin/python bench/websocket_flood.py                    # this tree
    .venv/bin/python bench/websocket_flood.py --root /tmp/old    # another tree (git archive COMMIT | tar -x -C DIR)

Prints how many connections were upgraded (101) or refused (and with what), how long the flood took, what the
proxy's workers grew by (RSS, open files), how the other key fared, and whether the flooding key's places came
back once its connections closed. Loopback only; bounded by --connections and --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import ROOT, Proxy, Upstream, raise_nofile  # noqa: E402

OTHER = "sk-other-key-0123456789"


def team_key(root: Path, db: Path) -> str:
    made = subprocess.run([sys.executable, str(root / "cot_proxy.py"), "keys", "--keys-db", str(db), "create",
                           "flood", "--max-parallel", "1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(root)}, cwd=db.parent)
    if made.returncode != 0:
        raise RuntimeError(made.stderr)
    return made.stdout.strip()


def start_limited(upstream: Upstream, files: int, root: Path, db: Path) -> Proxy:
    """The proxy started while this process's soft open-file limit is `files`: its workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, hard))
    try:
        return Proxy.start(upstream.port, root=root, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=OTHER,
                           KEYS_DB=str(db))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def flood(url: str, key: str, count: int, seconds: float, at_once: int) -> tuple[list, Counter, float]:
    """Up to `count` connections of `key`, `at_once` handshakes at a time: those upgraded (left open), the outcome
    of each ("101", "426 websocket_not_served", an error's name), the seconds it took."""
    held: list = []
    outcomes: Counter = Counter()
    gate = asyncio.Semaphore(at_once)
    start = time.monotonic()

    async def one() -> None:
        async with gate:
            try:
                held.append(await connect(url, additional_headers={"Authorization": f"Bearer {key}"},
                                          open_timeout=10, ping_interval=None, close_timeout=1))
                outcomes["101"] += 1
            except InvalidStatus as refused:
                code = json.loads(refused.response.body or b"{}").get("error", {}).get("code", "")
                outcomes[f"{refused.response.status_code} {code}"] += 1
            except (OSError, asyncio.TimeoutError) as err:
                outcomes[type(err).__name__] += 1
    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    _, late = await asyncio.wait(tasks, timeout=seconds)
    for task in late:
        task.cancel()
    outcomes["not tried in time"] += len(late)
    return held, outcomes, time.monotonic() - start


def plain_requests(base: str, key: str, count: int = 5) -> list[str]:
    """`count` chat requests of `key`, one after another: each one's status and seconds."""
    said = []
    for _ in range(count):
        request = urllib.request.Request(base + "/v1/chat/completions", method="POST", data=json.dumps(
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        start = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = str(answer.status)
        except urllib.error.HTTPError as err:
            status = str(err.code)
        except OSError as err:
            status = type(err).__name__
        said.append(f"{status} in {time.monotonic() - start:.2f} s")
    return said


def workers_state(proxy: Proxy) -> tuple[int, list[int]]:
    """The workers' RSS together (bytes) and each one's open files."""
    kids = psutil.Process(proxy.proc.pid).children()
    return sum(k.memory_info().rss for k in kids), [k.num_fds() for k in kids]


async def probe(proxy: Proxy, key: str, args: argparse.Namespace) -> None:
    base, url = f"http://127.0.0.1:{proxy.port}", f"ws://127.0.0.1:{proxy.port}/v1/responses"
    plain_requests(base, OTHER, 2)  # both workers up (their first requests are not measured)
    rss_before, fds_before = workers_state(proxy)
    held, outcomes, took = await flood(url, key, args.connections, args.seconds, args.at_once)
    rss_after, fds_after = workers_state(proxy)
    print(f"| flood: {args.connections} connections of one key (--max-parallel 1), {args.at_once} at a time | "
          f"{dict(outcomes)} in {took:.1f} s |")
    print(f"| workers' RSS, open files | +{(rss_after - rss_before) / 2**20:.0f} MB; {fds_before} -> {fds_after} "
          f"(limit {args.files} each) |")
    plain = await asyncio.to_thread(plain_requests, base, OTHER)
    print(f"| another key's 5 plain requests meanwhile | {', '.join(plain)} |")
    other, other_outcome, _ = await flood(url, OTHER, 1, 20, 1)
    print(f"| another key's WebSocket meanwhile | {dict(other_outcome)} |")
    closing = time.monotonic()
    await asyncio.gather(*(ws.close() for ws in held + other), return_exceptions=True)
    again, outcome, _ = await flood(url, key, 16, 20, 1)
    print(f"| its connections closed ({time.monotonic() - closing:.1f} s), 16 more of it | {dict(outcome)} |")
    await asyncio.gather(*(ws.close() for ws in again), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree whose proxy runs (default: this one)")
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--at-once", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="the flood's bound")
    parser.add_argument("--files", type=int, default=1024, help="the workers' soft open-file limit")
    args = parser.parse_args()
    raise_nofile(args.connections * 2 + 1024)  # this process's own end of each connection
    upstream = Upstream.start()
    proxy = None
    try:
        db = Path(tempfile.mkdtemp(prefix="cot_proxy_flood_")) / "keys.db"
        key = team_key(args.root, db)
        proxy = start_limited(upstream, args.files, args.root, db)
        print(f"| {args.root} | {proxy.description.split(', ')[0]}, auth on |\n| --- | --- |")
        asyncio.run(probe(proxy, key, args))
    finally:
        if proxy is not None:
            proxy.stop()
        upstream.stop()


if __name__ == "__main__":
    main()
