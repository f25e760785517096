"""Two commits' CPU per request, alternated in one run: the latency section's request (chat at concurrency 1, 16
and 64) and the fronts section's (chat, Responses, Messages and the Google door, whole, at 1 and 16), each cell
measured for commit A and then commit B (B first in every other round), round after round.

    .venv/bin/python bench/cpu_commits.py e4fd04f HEAD                # A = e4fd04f, B = HEAD, 7 rounds
    .venv/bin/python bench/cpu_commits.py e4fd04f HEAD --rounds 9 --seconds 2
    .venv/bin/python bench/cpu_commits.py HEAD HEAD                   # the same tree twice: the instrument's spread

Each commit is checked out with `git worktree add --detach` into a temporary directory (the working tree you run
it from is never touched, nor are its uncommitted changes measured) and served by its own Gunicorn with default
settings and its own gunicorn.conf.py, both behind one fake upstream (bench/upstream.py) and loaded by this
tree's client (bench/client.py). The worktrees are removed at the end (`--keep` leaves them for the next run).

Per cell: the median CPU per request of each commit over the rounds and the median of the rounds' B/A ratios with
its quartiles; per section: the median over the rounds of the geometric mean of its cells' ratios, against
`--budget` (1.02: B at most 2 % above A). CPU is read as bench/run.py reads it (each thread's scheduler
statistics of the proxy's process tree), over one closed-loop window after a short warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import client  # noqa: E402
from client import Pool, build_request, chat_body  # noqa: E402
from run import FRONT_REQUESTS, log  # noqa: E402
from targets import HOST, ROOT, ForeignLoad, Proxy, Target, Upstream, raise_nofile  # noqa: E402

WARM_SECONDS = 0.3


def cells(port: int) -> dict[tuple[str, str, int], bytes]:
    """(section, request, concurrency) -> the request's bytes for the proxy on `port`."""
    out = {("latency", "chat", c): build_request("POST", "/v1/chat/completions", HOST, port, chat_body())
           for c in (1, 16, 64)}
    for front, path, body in FRONT_REQUESTS:
        for c in (1, 16):
            out[("fronts", front, c)] = build_request("POST", path(False, 100), HOST, port,
                                                      json.dumps(body(False, 100)).encode())
    return out


def window(loop: asyncio.AbstractEventLoop, target: Target, req: bytes, concurrency: int,
           seconds: float) -> tuple[float, float]:
    """(CPU seconds per request of the target's processes, the foreign load in cores) over one window."""
    pool = Pool(HOST, target.port, concurrency)
    meter = ForeignLoad([os.getpid()])  # this process's tree: the upstream and both proxies
    try:
        loop.run_until_complete(client.closed_loop(pool, req, WARM_SECONDS))
        gc.collect()
        gc.disable()
        f0 = meter.snapshot()
        cpu0 = target.tree.cpu_seconds()
        res = loop.run_until_complete(client.closed_loop(pool, req, seconds))
        cpu = target.tree.cpu_seconds() - cpu0
        foreign = meter.cores(f0, meter.snapshot())
    finally:
        gc.enable()
        pool.close()
    if res.errors or not res.count:
        raise RuntimeError(f"{target.name}: {res.errors} errors of {res.count}: {res.error_sample}")
    return cpu / res.count, foreign


def worktree(rev: str, into: Path) -> tuple[str, Path]:
    """(the commit's id, a detached worktree of it under `into`, made unless there already)."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"], check=True,
                         capture_output=True, text=True).stdout.strip()
    path = into / sha[:12]
    if not (path / "gunicorn.conf.py").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), sha], check=True,
                       capture_output=True, text=True)
    return sha, path


def remove_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    low, _, high = statistics.quantiles(values, n=4)
    return low, high


def report(names: tuple[str, str], cpu: dict[tuple[str, str, int], list[list[float]]], foreign: list[float],
           rounds: int, seconds: float, budget: float) -> list[str]:
    a, b = names
    lines = [f"# CPU per request: B ({b}) against A ({a}), alternated", "",
             f"{rounds} rounds; each cell one window of {seconds:g} s per commit and round (after {WARM_SECONDS:g} s "
             f"of warm-up), A first in even rounds and B first in odd ones. Foreign load (other processes on the "
             f"machine): mean {statistics.fmean(foreign):.2f} cores, max {max(foreign):.2f}.", "",
             "| section | request | concurrency | A µs/req (median) | B µs/req (median) | B/A median of rounds "
             "| quartiles |", "| --- | --- | --- | --- | --- | --- | --- |"]
    per_round: dict[str, list[list[float]]] = {}
    for (section, request, c), (xs, ys) in cpu.items():
        ratios = [y / x for x, y in zip(xs, ys)]
        low, high = quartiles(ratios)
        lines.append(f"| {section} | {request} | {c} | {statistics.median(xs) * 1e6:.1f} | "
                     f"{statistics.median(ys) * 1e6:.1f} | {statistics.median(ratios):.3f} | {low:.3f}-{high:.3f} |")
        per_round.setdefault(section, []).append(ratios)
    lines += ["", "| section | B/A (median over rounds of the cells' geometric mean) | quartiles | rounds "
              f"| within {budget:g}x |", "| --- | --- | --- | --- | --- |"]
    for section, columns in per_round.items():
        means = [math.exp(statistics.fmean(math.log(r) for r in row)) for row in zip(*columns)]
        low, high = quartiles(means)
        median = statistics.median(means)
        lines.append(f"| {section} | {median:.3f} | {low:.3f}-{high:.3f} | {' / '.join(f'{m:.3f}' for m in means)} "
                     f"| {'yes' if median <= budget else '**no**'} |")
    return lines + [""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", help="commit A (the reference), e.g. e4fd04f")
    ap.add_argument("b", help="commit B, e.g. HEAD")
    ap.add_argument("--rounds", type=int, default=7, help="rounds (default %(default)s; at least 7 for a verdict)")
    ap.add_argument("--seconds", type=float, default=1.0, help="each window (default %(default)s)")
    ap.add_argument("--budget", type=float, default=1.02, help="the most B/A a section may be (default %(default)s)")
    ap.add_argument("--worktrees", default="", help="where the worktrees go (default: a new temporary directory)")
    ap.add_argument("--keep", action="store_true", help="leave the worktrees (and reuse them next time)")
    ap.add_argument("--output", default="", help="also write the Markdown here")
    args = ap.parse_args()
    raise_nofile()
    into = Path(args.worktrees or tempfile.mkdtemp(prefix="cot_proxy_cpu_commits_"))
    into.mkdir(parents=True, exist_ok=True)
    trees = [worktree(rev, into) for rev in (args.a, args.b)]
    names = (f"{args.a} {trees[0][0][:10]}", f"{args.b} {trees[1][0][:10]}")
    loop = asyncio.new_event_loop()
    upstream = Upstream.start()
    proxies: list[Proxy] = []
    try:
        proxies = [Proxy.start(upstream.port, name=label, root=path) for label, (_, path) in zip("AB", trees)]
        requests = [cells(p.port) for p in proxies]
        cpu: dict[tuple[str, str, int], list[list[float]]] = {cell: [[], []] for cell in requests[0]}
        foreign: list[float] = []
        for cell in cpu:  # warm: each door's first requests, each concurrency's connections
            for i in (0, 1):
                window(loop, proxies[i], requests[i][cell], cell[2], 0.3)
        for n in range(args.rounds):
            for cell in cpu:
                for i in ((0, 1) if n % 2 == 0 else (1, 0)):
                    per_request, load = window(loop, proxies[i], requests[i][cell], cell[2], args.seconds)
                    cpu[cell][i].append(per_request)
                    foreign.append(load)
            log(f"round {n + 1}/{args.rounds}: " + ", ".join(
                f"{s[0]}/{r}/{c} {ys[-1] / xs[-1]:.3f}" for (s, r, c), (xs, ys) in cpu.items()))
        text = "\n".join(report(names, cpu, foreign, args.rounds, args.seconds, args.budget))
        print(text)
        if args.output:
            Path(args.output).write_text(text)
    finally:
        for target in (*proxies, upstream):
            target.stop()
        if not args.keep:
            for _, path in trees:
                remove_worktree(path)
            shutil.rmtree(into, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
