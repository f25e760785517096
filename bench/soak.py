"""The bounded soak (issue 7, part 7): minutes of mixed streamed and non-streamed traffic through the real
app under Gunicorn, with random client disconnects and upstream faults injected. Not a test and not run in
CI: a script that prints its figures and exits non-zero when a request was lost or hung or when memory or
file descriptors grew.

    .venv/bin/python bench/soak.py                          # 5 minutes, 64 clients, 2 gevent workers
    .venv/bin/python bench/soak.py --duration 60 --concurrency 32

Each client loops: a streamed or whole chat completion (half each), sometimes leaving mid-stream on purpose.
The fake upstream answers most requests normally and injects, at --fault-rate: 503 + Retry-After: 0 (the
proxy retries it), a 500 HTML page, a stream cut without [DONE], a stream stalling past the read timeout,
a whole answer slower than the read timeout, truncated JSON, and a 200 carrying an error object.

Every request must end in one of: a complete answer, an OpenAI error (HTTP error JSON, or an SSE error event
for a stream that had begun), or the client's own disconnect. Anything else is "lost"; a request with no
answer within --client-timeout is "hung". RSS and open fds of the master and workers are sampled after a
warm-up and again after the traffic stops (with a short settle), and written to bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion  # noqa: E402
from tests.proxy_process import running_proxy  # noqa: E402

READ_TIMEOUT = 2.0
MSG = [{"role": "user", "content": "soak"}]
FAULTS = ["retry_503", "html_500", "cut", "stall", "slow_whole", "truncated", "error_200"]


class FaultyUpstream(FakeOpenAI):
    """A fake that answers normally except at fault_rate, where it injects one of FAULTS."""

    def __init__(self, fault_rate: float, seed: int) -> None:
        super().__init__()
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()

    def default_answer(self, method, path, body):
        if not path.endswith("/chat/completions"):
            return super().default_answer(method, path, body)
        stream = b'"stream":true' in body or b'"stream": true' in body
        with self._lock:
            fault = self.rng.choice(FAULTS) if self.rng.random() < self.fault_rate else None
            pieces = self.rng.randint(3, 30)
            if fault:
                self.injected[fault] += 1
        words = [f"w{i} " for i in range(pieces)]
        if fault == "retry_503":
            return Reply({"error": {"message": "busy", "type": "server_error"}}, status=503, headers={"Retry-After": "0"})
        if fault == "html_500":
            return Reply(b"<html><h1>500</h1></html>", status=500, headers={"Content-Type": "text/html"})
        if fault == "error_200":
            return Reply({"error": {"message": "overloaded", "type": "server_error"}})
        if fault == "truncated" and not stream:
            return Reply(b'{"id": "chatcmpl-x", "choi')
        if fault == "slow_whole" and not stream:
            return Reply(chat_completion("late"), delay=READ_TIMEOUT + 1)
        if stream:
            if fault == "cut":
                return Stream(chat_chunks(words), delay=0.01, cut_after=max(2, pieces // 2))
            if fault == "stall":
                return Stream(chat_chunks(words), delay=0.01, pause_at={2: READ_TIMEOUT + 1})
            return Stream(chat_chunks(words, usage=True), delay=0.01)
        return Reply(chat_completion(" ".join(words)))


def proxy_processes(proxy) -> list[psutil.Process]:
    master = psutil.Process(proxy.proc.pid)
    return [master, *master.children()]


def snapshot(proxy) -> dict:
    procs = proxy_processes(proxy)
    return {"rss_mb": round(sum(p.memory_info().rss for p in procs) / 2 ** 20, 1),
            "worker_rss_mb": [round(p.memory_info().rss / 2 ** 20, 1) for p in procs[1:]],
            "fds": sum(p.num_fds() for p in procs), "worker_pids": [p.pid for p in procs[1:]]}


def diagnose(proxy, fake) -> dict:
    """When no request finished for a while: which side still answers, and the state of the sockets."""
    out: dict = {}
    for name, url in (("fake_direct", fake.base_url + "models"), ("proxy_metrics", proxy.url + "/metrics"),
                      ("proxy_models", proxy.base_url + "/models")):
        start = time.monotonic()
        try:
            out[name] = f"{requests.get(url, timeout=2).status_code} in {time.monotonic() - start:.2f}s"
        except requests.RequestException as exc:
            out[name] = type(exc).__name__
    states: Counter[str] = Counter()
    for conn in psutil.net_connections("tcp"):
        if conn.raddr and conn.raddr.port == fake.port:
            states[f"to_fake_{conn.status}"] += 1
        elif conn.raddr and conn.raddr.port == proxy.port:
            states[f"to_proxy_{conn.status}"] += 1
    out["sockets"] = dict(states)
    out["fake_open_connections"] = fake.open_connections
    out["threads_here"] = threading.active_count()
    return out


class Client(threading.Thread):
    def __init__(self, proxy, until: float, disconnect_rate: float, timeout: float, seed: int,
                 tally: Counter, lock: threading.Lock, latencies: list) -> None:
        super().__init__(daemon=True)
        self.proxy, self.until, self.disconnect_rate, self.timeout = proxy, until, disconnect_rate, timeout
        self.rng = random.Random(seed)
        self.tally, self.lock, self.latencies = tally, lock, latencies
        self.session = requests.Session()

    def count(self, outcome: str, took: float | None = None) -> None:
        with self.lock:
            self.tally[outcome] += 1
            if took is not None:
                self.latencies.append(took)

    def run(self) -> None:
        while time.monotonic() < self.until:
            stream = self.rng.random() < 0.5
            start = time.monotonic()
            try:
                if stream and self.rng.random() < self.disconnect_rate:
                    self.disconnect()
                    self.count("client_disconnect")
                    continue
                outcome = self.streamed() if stream else self.whole()
            except requests.Timeout:
                outcome = "hung"
            except requests.ConnectionError as exc:
                outcome = "hung" if "timed out" in str(exc) else "lost"  # a read timeout mid-stream is a hang
                if outcome == "lost":
                    print(f"lost: {type(exc).__name__}: {exc}", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001 - every other failure is a lost request
                outcome = "lost"
                print(f"lost: {type(exc).__name__}: {exc}", file=sys.stderr)
            self.count(outcome, time.monotonic() - start)

    def body(self, stream: bool) -> dict:
        return {"model": "soak", "messages": MSG, "stream": stream}

    def whole(self) -> str:
        r = self.session.post(self.proxy.base_url + "/chat/completions", json=self.body(False), timeout=self.timeout)
        obj = r.json()
        if r.status_code == 200 and obj.get("choices"):
            return "ok"
        if r.status_code >= 400 and isinstance(obj.get("error"), dict) and obj["error"].get("message"):
            return f"error_{r.status_code}"
        print(f"lost: whole answer {r.status_code} {r.text[:200]}", file=sys.stderr)
        return "lost"

    def streamed(self) -> str:
        with self.session.post(self.proxy.base_url + "/chat/completions", json=self.body(True), stream=True,
                               timeout=self.timeout) as r:
            if r.status_code != 200:
                return f"error_{r.status_code}" if r.json().get("error") else "lost"
            last = None
            for line in r.iter_lines():
                if line.startswith(b"data: "):
                    last = line[6:]
        if last == b"[DONE]":
            return "ok"
        if last and b'"error"' in last:
            return "stream_error_event"
        print(f"lost: stream ended with {last[:200] if last else last!r}", file=sys.stderr)
        return "lost"

    def disconnect(self) -> None:
        data = json.dumps(self.body(True)).encode()
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=self.timeout) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
            s.recv(self.rng.choice([1, 512, 4096]))  # leave at once, after the headers, or mid-stream


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of traffic (default 300)")
    parser.add_argument("--concurrency", type=int, default=64, help="simultaneous clients (default 64)")
    parser.add_argument("--workers", type=int, default=2, help="Gunicorn workers (default 2)")
    parser.add_argument("--worker-class", default="gevent")
    parser.add_argument("--fault-rate", type=float, default=0.1, help="share of upstream answers that misbehave")
    parser.add_argument("--disconnect-rate", type=float, default=0.05, help="share of streams the client abandons")
    parser.add_argument("--client-timeout", type=float, default=20.0, help="seconds before a request counts as hung")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak.json"))
    args = parser.parse_args()

    tally: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    with FaultyUpstream(args.fault_rate, args.seed) as fake, \
            running_proxy(TARGET_BASE_URL=fake.base_url, TIMEOUT=str(READ_TIMEOUT), WORKERS=str(args.workers),
                          WORKER_CLASS=args.worker_class, MAX_RETRIES="2") as proxy:
        # Warm-up: every worker has imported everything and opened its pools before the first sample.
        warm_until = time.monotonic() + min(10.0, max(3.0, args.duration / 10))
        warm = [Client(proxy, warm_until, 0.0, args.client_timeout, args.seed * 1000 + i, Counter(), lock, [])
                for i in range(args.concurrency)]
        for c in warm:
            c.start()
        for c in warm:
            c.join()
        time.sleep(1.0)
        start_snap = snapshot(proxy)
        print(f"start: {start_snap}", flush=True)

        began = time.monotonic()
        until = began + args.duration
        clients = [Client(proxy, until, args.disconnect_rate, args.client_timeout, args.seed + i, tally, lock,
                          latencies) for i in range(args.concurrency)]
        for c in clients:
            c.start()
        peak_rss = start_snap["rss_mb"]
        last_done = -1
        while any(c.is_alive() for c in clients):
            time.sleep(2.0)
            peak_rss = max(peak_rss, snapshot(proxy)["rss_mb"])
            done = sum(tally.values())
            print(f"  {time.monotonic() - began:6.0f}s  {done} requests  rss {peak_rss} MB peak", flush=True)
            if done == last_done and time.monotonic() < until:
                print(f"  no progress: {diagnose(proxy, fake)}", flush=True)
            last_done = done
        for c in clients:
            c.join(args.client_timeout + 5)
        elapsed = time.monotonic() - began
        time.sleep(READ_TIMEOUT + 2)  # stalled upstream answers and abandoned streams finish closing
        end_snap = snapshot(proxy)
        upstream_open = fake.open_connections
        injected = dict(fake.injected)
        log = proxy.stop()

    total = sum(tally.values())
    lat = sorted(latencies)
    report = {
        "duration_s": round(elapsed, 1), "concurrency": args.concurrency, "workers": args.workers,
        "worker_class": args.worker_class, "fault_rate": args.fault_rate, "disconnect_rate": args.disconnect_rate,
        "requests": total, "requests_per_s": round(total / elapsed, 1), "outcomes": dict(sorted(tally.items())),
        "faults_injected": injected, "lost": tally["lost"], "hung": tally["hung"],
        "latency_s": {"p50": round(lat[len(lat) // 2], 3), "p99": round(lat[int(len(lat) * 0.99)], 3),
                      "max": round(lat[-1], 3)} if lat else {},
        "rss_mb": {"start": start_snap["rss_mb"], "end": end_snap["rss_mb"], "peak": peak_rss},
        "fds": {"start": start_snap["fds"], "end": end_snap["fds"]},
        "workers_same": start_snap["worker_pids"] == end_snap["worker_pids"],
        "upstream_connections_open_at_end": upstream_open,
        "tracebacks_in_log": log.count("Traceback"),
    }
    print(json.dumps(report, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")

    problems = []
    if report["lost"] or report["hung"]:
        problems.append(f"{report['lost']} lost and {report['hung']} hung requests")
    if end_snap["rss_mb"] - start_snap["rss_mb"] > max(20.0, 0.2 * start_snap["rss_mb"]):
        problems.append(f"RSS grew from {start_snap['rss_mb']} to {end_snap['rss_mb']} MB")
    if end_snap["fds"] - start_snap["fds"] > 8:
        problems.append(f"open fds grew from {start_snap['fds']} to {end_snap['fds']}")
    if not report["workers_same"]:
        problems.append("a worker died during the soak")
    if report["tracebacks_in_log"]:
        problems.append("tracebacks in the proxy's log")
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    if problems:
        print("---- end of the proxy's log ----\n" + log[-6000:], file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
