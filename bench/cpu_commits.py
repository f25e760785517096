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

`--instructions` counts instead, under valgrind's callgrind, each commit's worker's instructions per request
(bench/worker_instructions.py's way: one worker each, both proxies loaded at once, counted between two marks after
a warm-up), door by door (`--doors`, default chat; with `--profile` it picks the doors profiled): the machine's load barely moves the counts, where it moves CPU
time by tens of per cent. `--callgrind-dir DIR` keeps the workers' callgrind files there for callgrind_annotate
(where the instructions went: `callgrind_annotate --inclusive=yes FILE`).

    .venv/bin/python bench/cpu_commits.py e4fd04f HEAD --instructions --doors chat,responses --requests 512

`--profile` says where the difference goes, in Python's terms: each commit's door is built in-process (as
bench/tracing_cost.py builds it, an in-process fake upstream behind it; what the proxy asks the upstream's address
itself is answered 404 on loopback, as the bench's upstream answers it), every door's request is sent `--requests`
times, the CPU time per request measured in two runs of each commit alternated (A, B, A, B), then once more under
cProfile; the functions whose calls a request changed are listed (by name, so that one moved to another module
is the same), by how much their own time moved.

    .venv/bin/python bench/cpu_commits.py e4fd04f HEAD --profile

`--opcodes` counts, in the same in-process door, the Python bytecodes each function runs per request (sys.settrace's
opcode events) and lists the functions whose count moved most: exact whatever the load, so a cut of a few tenths of
a per cent shows (Python's share only: the C under a bytecode, such as a dict's or a lock's, is not in it).

    .venv/bin/python bench/cpu_commits.py e06cde4 HEAD --opcodes --doors chat --requests 50
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
from targets import HOST, ROOT, ForeignLoad, Proxy, Target, Upstream, key_store, raise_nofile  # noqa: E402

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


PROFILE = r"""
import cProfile, gc, json, pstats, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from argoproxy.config.settings import load_settings
from argoproxy.edge.http_objects import Request
try:
    from argoproxy.serve.proxy import build_proxy
except ImportError:  # before the serve package's modules were renamed (e06cde4)
    from argoproxy.serve.build import build_proxy
from tests.fakes.fake_upstream import FakeUpstream

class NotHere(BaseHTTPRequestHandler):  # what the proxy asks the upstream itself (is it a local server?): no
    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), NotHere)
threading.Thread(target=server.serve_forever, daemon=True).start()
args = json.loads(sys.argv[1])
settings = load_settings({}, environ={"TARGET_BASE_URL": f"http://127.0.0.1:{server.server_port}/v1"})
out = {}
for door, path, body in args["requests"]:
    upstream = FakeUpstream()
    handle = build_proxy(settings, upstream).handle
    request = body.encode()

    def run(n):
        for _ in range(n):
            handle(Request.of("POST", path, request, {"Content-Type": "application/json"})).get_data()
        upstream.sent.clear()

    run(300)
    gc.collect()
    if args.get("opcodes"):  # Python's own count of the bytecodes each function ran: the machine's load moves none
        counted = {}

        def traced(frame, event, arg):
            frame.f_trace_opcodes, frame.f_trace_lines = True, False
            key = (frame.f_code.co_filename, frame.f_code.co_name)

            def each(frame, event, arg):
                if event == "opcode":
                    counted[key] = counted.get(key, 0) + 1
                return each
            return each
        n = args["n"]
        sys.settrace(traced)
        run(n)
        sys.settrace(None)
        own = {}
        for (file, name), count in counted.items():
            key = f"{file.split('site-packages/')[-1].replace(args['root'], '').lstrip('/')}:{name}"
            own[key] = own.get(key, 0) + count / n
        out[door] = {"own": own}
        continue
    n, rounds = args["n"], []
    for _ in range(3):
        started = time.process_time()
        run(n)
        rounds.append((time.process_time() - started) / n * 1e6)
    profile = cProfile.Profile()
    profile.enable()
    run(n)
    profile.disable()
    own = {}
    for (file, _, name), (_, calls, tottime, _, _) in pstats.Stats(profile).stats.items():
        key = name if file != "~" else name.replace(" object at", "")  # by name: a function moved keeps it
        time_, count = own.get(key, (0.0, 0.0))
        own[key] = (time_ + tottime / n * 1e6, count + calls / n)
    out[door] = {"us": rounds, "own": own}
print(json.dumps(out))
"""


def profile(trees: list[tuple[str, Path]], names: tuple[str, str], requests: int, doors: list[str]) -> list[str]:
    """In-process CPU per request of each door (`doors`, or every one), A and B alternated, and the functions whose
    own time moved most."""
    asked = [(front, path(False, 100), json.dumps(body(False, 100))) for front, path, body in FRONT_REQUESTS
             if not doors or front in doors]
    runs: list[list[dict]] = [[], []]
    for n in range(4):
        i = n % 2
        root = trees[i][1]
        home = tempfile.mkdtemp(prefix="cot_proxy_profile_")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
        env.update(HOME=home, PYTHONPATH=str(root), PYTHONHASHSEED="0")
        done = subprocess.run([sys.executable, "-c", PROFILE, json.dumps({"requests": asked, "n": requests})],
                              cwd=home, env=env, capture_output=True, text=True, timeout=3600)
        shutil.rmtree(home, ignore_errors=True)
        if done.returncode:
            raise RuntimeError(f"{names[i]}: {done.stderr[-2000:]}")
        runs[i].append(json.loads(done.stdout.strip().splitlines()[-1]))
        log(f"profile run {n + 1}/4 ({'AB'[i]}) done")
    lines = [f"# In-process CPU per request: B ({names[1]}) against A ({names[0]})", "",
             f"Each door's request {requests} times a round, three rounds a run, two runs of each commit alternated "
             "(the door and pipeline alone: no Gunicorn, no sockets).", "",
             "| door | A µs/req (median) | B µs/req (median) | B/A |", "| --- | --- | --- | --- |"]
    # each function's own time and calls a request, the mean over the doors and each commit's runs
    own: list[dict[str, list[float]]] = [{}, {}]
    for door, *_ in asked:
        a = statistics.median(x for run in runs[0] for x in run[door]["us"])
        b = statistics.median(x for run in runs[1] for x in run[door]["us"])
        lines.append(f"| {door} | {a:.1f} | {b:.1f} | {b / a:.3f} |")
        for i in (0, 1):
            for run in runs[i]:
                for key, (time_, calls) in run[door]["own"].items():
                    kept = own[i].setdefault(key, [0.0, 0.0])
                    kept[0] += time_ / len(asked) / len(runs[i])
                    kept[1] += calls / len(asked) / len(runs[i])
    moved = {key: [own[1].get(key, [0.0, 0.0])[0] - own[0].get(key, [0.0, 0.0])[0],
                   own[0].get(key, [0.0, 0.0])[1], own[1].get(key, [0.0, 0.0])[1]]
             for key in own[0].keys() | own[1].keys()}
    lines += ["", "Functions whose calls a request changed (counted, so the machine's load does not move them), by "
              "their own time under cProfile (the doors' mean; B minus A, which the load does move):", "",
              "| function | A calls/req | B calls/req | B - A own µs/req |", "| --- | --- | --- | --- |"]
    changed = [(key, d) for key, d in moved.items() if abs(d[2] - d[1]) >= 0.01]
    lines += [f"| `{key}` | {d[1]:.2f} | {d[2]:.2f} | {d[0]:+.2f} |"
              for key, d in sorted(changed, key=lambda kv: -abs(kv[1][0]))[:30]]
    total = [sum(t for t, _ in own[i].values()) for i in (0, 1)]
    lines += ["", f"Own time in all, under cProfile: A {total[0]:.1f}, B {total[1]:.1f} µs a request."]
    return lines + [""]


def opcodes(trees: list[tuple[str, Path]], names: tuple[str, str], requests: int, doors: list[str]) -> list[str]:
    """Each door's Python bytecodes per request in-process (sys.settrace's opcode events), A against B, and the
    functions whose count moved most: counted, so the machine's load moves nothing (Python's share of the CPU;
    what C does under a bytecode is not in it)."""
    asked = [(front, path(False, 100), json.dumps(body(False, 100))) for front, path, body in FRONT_REQUESTS
             if not doors or front in doors]
    runs = []
    for i, (_, root) in enumerate(trees):
        home = tempfile.mkdtemp(prefix="cot_proxy_opcodes_")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
        env.update(HOME=home, PYTHONPATH=str(root), PYTHONHASHSEED="0")
        done = subprocess.run([sys.executable, "-c", PROFILE, json.dumps({"requests": asked, "n": requests,
                                                                         "opcodes": True, "root": str(root)})],
                              cwd=home, env=env, capture_output=True, text=True, timeout=3600)
        shutil.rmtree(home, ignore_errors=True)
        if done.returncode:
            raise RuntimeError(f"{names[i]}: {done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    lines = [f"# Python bytecodes per request: B ({names[1]}) against A ({names[0]})", "",
             f"Each door's request {requests} times in-process (the door and pipeline alone: no Gunicorn, no "
             "sockets), every bytecode counted.", "",
             "| door | A bytecodes/req | B bytecodes/req | B/A |", "| --- | --- | --- | --- |"]
    moved: dict[str, float] = {}
    for door, *_ in asked:
        a, b = (runs[i][door]["own"] for i in (0, 1))
        lines.append(f"| {door} | {sum(a.values()):.0f} | {sum(b.values()):.0f} | "
                     f"{sum(b.values()) / sum(a.values()):.3f} |")
        for key in a.keys() | b.keys():
            moved[key] = moved.get(key, 0.0) + (b.get(key, 0.0) - a.get(key, 0.0)) / len(asked)
    lines += ["", "Functions whose bytecodes a request moved most (the doors' mean, B minus A; a function that "
              "moved to another module shows twice):", "", "| function | B - A |", "| --- | --- |"]
    lines += [f"| `{key}` | {d:+.0f} |" for key, d in sorted(moved.items(), key=lambda kv: -abs(kv[1]))[:40]
              if abs(d) >= 1]
    return lines + [""]


def instructions(trees: list[tuple[str, Path]], names: tuple[str, str], doors: list[str], requests: int,
                 concurrency: int, settings: list[dict[str, str]]) -> list[str]:
    """Each door's instructions per request of commit A's worker and B's, counted at once."""
    from worker_instructions import WARM_UP, Counted, closed_loop as counted_loop
    lines = [f"# Instructions per request: B ({names[1]}) against A ({names[0]})", "",
             f"One gevent worker each under callgrind, {WARM_UP} requests to warm up, then at least {requests} "
             f"counted at concurrency {concurrency}, both proxies loaded at once.", "",
             "| door | A M instructions/req | B M instructions/req | B/A |", "| --- | --- | --- | --- |"]
    upstream = Upstream.start()
    try:
        for door in doors:
            proxies = [Counted(f"{label} {door}", upstream.port, given, door, root=path)
                       for label, (_, path), given in zip("AB", trees, settings)]
            try:
                for p in proxies:
                    p.ready()

                async def measure(p: Counted) -> int:
                    await counted_loop(p, WARM_UP, concurrency)
                    await asyncio.to_thread(p.mark, "zero")
                    done = await counted_loop(p, requests, concurrency)
                    await asyncio.to_thread(p.mark, "dump")
                    return done

                async def both() -> list[int]:
                    return list(await asyncio.gather(*(measure(p) for p in proxies)))

                served = asyncio.run(both())
                per = [p.instructions() / n for p, n in zip(proxies, served)]
            finally:
                for p in proxies:
                    p.stop()
            log(f"{door}: A {per[0] / 1e6:.3f} M, B {per[1] / 1e6:.3f} M instructions a request")
            lines.append(f"| {door} | {per[0] / 1e6:.3f} | {per[1] / 1e6:.3f} | {per[1] / per[0]:.3f} |")
    finally:
        upstream.stop()
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
    ap.add_argument("--key-store", action="store_true", help="the client's key a team key of a SQLite store each "
                    "commit makes with its own code (ENABLE_AUTH, KEYS_DB)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="both proxies' settings besides")
    ap.add_argument("--b-set", nargs="*", default=[], metavar="NAME=VALUE", help="B's besides (one tree twice: a "
                    "setting's cost)")
    ap.add_argument("--b-owner", action="store_true", help="with --key-store: B's key belongs to a person")
    ap.add_argument("--instructions", action="store_true", help="count instructions per request under callgrind")
    ap.add_argument("--profile", action="store_true", help="in-process CPU per request and where it moved (cProfile)")
    ap.add_argument("--opcodes", action="store_true", help="in-process Python bytecodes per request and where they "
                    "moved (counted: the load moves nothing; --requests 50 is plenty)")
    ap.add_argument("--doors", default="", help="the doors: --instructions counts these (default chat), --profile "
                    "profiles these (default every door)")
    ap.add_argument("--requests", type=int, default=1024, help="--instructions and --profile: requests a door "
                                                               "(default %(default)s)")
    ap.add_argument("--concurrency", type=int, default=16, help="--instructions: connections (default %(default)s)")
    ap.add_argument("--callgrind-dir", default="", help="--instructions: keep the workers' callgrind files here")
    args = ap.parse_args()
    if args.callgrind_dir:
        os.environ["WORKER_CALLGRIND_DIR"] = str(Path(args.callgrind_dir).resolve())
    raise_nofile()
    into = Path(args.worktrees or tempfile.mkdtemp(prefix="cot_proxy_cpu_commits_"))
    into.mkdir(parents=True, exist_ok=True)
    trees = [worktree(rev, into) for rev in (args.a, args.b)]
    names = (f"{args.a} {trees[0][0][:10]}", f"{args.b} {trees[1][0][:10]}")
    if args.instructions or args.profile or args.opcodes:
        try:
            doors = [d for d in args.doors.split(",") if d]
            settings = [given(args, path, into / f"store-{label}") for label, (_, path) in zip("AB", trees)]
            text = "\n".join(instructions(trees, names, doors or ["chat"], args.requests, args.concurrency, settings)
                             if args.instructions else opcodes(trees, names, args.requests, doors) if args.opcodes
                             else profile(trees, names, args.requests, doors))
        finally:
            cleanup(trees, into, args.keep)
        print(text)
        if args.output:
            Path(args.output).write_text(text)
        return 0
    loop = asyncio.new_event_loop()
    upstream = Upstream.start()
    proxies: list[Proxy] = []
    try:
        proxies = [Proxy.start(upstream.port, name=label, root=path, **given(args, path, into / f"store-{label}"))
                   for label, (_, path) in zip("AB", trees)]
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
        cleanup(trees, into, args.keep)
    return 0


def given(args: argparse.Namespace, root: Path, directory: Path) -> dict[str, str]:
    """A proxy's settings: --set's, and with --key-store the store the tree at `root` made (and a LOG_DIR set
    relative, each its own)."""
    b = directory.name.endswith("-B")
    out = dict(pair.split("=", 1) for pair in args.set + (args.b_set if b else []))
    directory.mkdir(parents=True, exist_ok=True)
    if "LOG_DIR" in out:
        out["LOG_DIR"] = str(directory / out["LOG_DIR"])
    owner = "p-bench" if b and args.b_owner else ""
    return {**(key_store(str(directory), root, owner) if args.key_store else {}), **out}


def cleanup(trees: list[tuple[str, Path]], into: Path, keep: bool) -> None:
    if not keep:
        for _, path in trees:
            remove_worktree(path)
        shutil.rmtree(into, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
