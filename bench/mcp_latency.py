"""What the MCP gateway adds to a tool call: the same stdio server's `echo` tool called straight over its pipe (as
an agent that starts the server itself calls it) and through the proxy's `/mcp` (one kept HTTP connection, a
2025-11-25 session: Gunicorn's worker, the Unix socket to the supervisor, the server's pipe), one call at a time,
rounds alternated so that the machine's load falls on both alike.

    .venv/bin/python bench/mcp_latency.py                    # 7 rounds of 300 calls each way
    .venv/bin/python bench/mcp_latency.py --rounds 3 --calls 100

Prints per way the median, p90 and p99 of a call's round trip over all rounds, and what the proxy adds (the
difference of the medians, and of the p99s) against issue 58's bounds: at most 2 ms at the median and 10 ms at
p99. A `ping` the proxy answers itself is timed beside them: what any request to /mcp costs on this stack (Gunicorn,
Flask, the door) before a server is involved. The server is the tests' strict stdio fake (tests/fakes/fake_mcp_server.py); the proxy runs with its
default settings (auth off: the bench's client is on loopback) behind the bench's fake model upstream.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import HOST, ROOT, Proxy, Upstream  # noqa: E402

SERVER = [sys.executable, str(ROOT / "tests" / "fakes" / "fake_mcp_server.py")]
VERSION = "2025-11-25"
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
MEDIAN_BOUND_MS, P99_BOUND_MS = 2.0, 10.0


def echo(n: int, tool: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": tool, "arguments": {"text": "hi"}}}


class Direct:
    """The server's own process, spoken to over its stdin and stdout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.ask(INIT)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        assert self.proc.stdout is not None
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        assert answer.get("id") == message["id"] and "result" in answer, answer
        return answer

    def call(self, n: int) -> None:
        self.ask(echo(n, "echo"))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Through:
    """The proxy's /mcp, over one kept connection and one session."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        status, headers, _ = self.post(INIT)
        assert status == 200, status
        self.headers.update({"Mcp-Session-Id": headers["mcp-session-id"], "MCP-Protocol-Version": VERSION})
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, message: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        self.conn.request("POST", "/mcp", json.dumps(message).encode(), self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body

    def call(self, n: int) -> None:
        status, _, body = self.post(echo(n, "bench__echo"))
        assert status == 200 and b'"result"' in body, body[:300]

    def ping(self, n: int) -> None:
        """A `ping` the proxy answers itself: no server, no supervisor (any /mcp request's floor on this stack)."""
        status, _, body = self.post({"jsonrpc": "2.0", "id": n, "method": "ping"})
        assert status == 200 and b'"result"' in body, body[:300]

    def close(self) -> None:
        self.conn.close()


def timed(call: Callable[[int], None], calls: int, start: int) -> list[float]:
    times = []
    for n in range(start, start + calls):
        began = time.perf_counter()
        call(n)
        times.append((time.perf_counter() - began) * 1000)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300, help="calls each way per round")
    args = parser.parse_args()
    upstream = Upstream.start()
    servers = json.dumps({"bench": {"command": SERVER[0], "args": SERVER[1:]}})
    proxy = Proxy.start(upstream.port, MCP_SERVERS=servers)
    direct: Direct | None = None
    through: Through | None = None
    try:
        direct, through = Direct(), Through(proxy.port)
        timed(direct.call, 50, 1)  # warm-up: both paths' first calls (imports, the worker's first request)
        timed(through.call, 50, 1)
        ways: dict[str, list[float]] = {"direct": [], "through the proxy": [], "ping, answered by the proxy": []}
        for r in range(args.rounds):
            order = [("direct", direct.call), ("through the proxy", through.call),
                     ("ping, answered by the proxy", through.ping)]
            for name, call in order if r % 2 == 0 else order[::-1]:
                ways[name] += timed(call, args.calls, 1000 + r * args.calls)
            print(f"[mcp bench] round {r + 1}/{args.rounds}", file=sys.stderr)
    finally:
        for part in (through, direct):
            if part is not None:
                part.close()
        proxy.stop()
        upstream.stop()
    report(ways, args)
    return 0


def report(ways: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(f"\n{args.rounds} rounds of {args.calls} `tools/call` each way, one at a time, alternated\n")
    print("| way | median ms | p90 ms | p99 ms |\n| --- | --- | --- | --- |")
    for name, values in ways.items():
        print(f"| {name} | {statistics.median(values):.3f} | {pct(values, 0.9):.3f} | {pct(values, 0.99):.3f} |")
    d, t = ways["direct"], ways["through the proxy"]
    added_median = statistics.median(t) - statistics.median(d)
    added_p99 = pct(t, 0.99) - pct(d, 0.99)
    print("\n| added by the proxy | ms | bound | within |\n| --- | --- | --- | --- |")
    print(f"| median | {added_median:.3f} | {MEDIAN_BOUND_MS} | {'yes' if added_median <= MEDIAN_BOUND_MS else 'no'} |")
    print(f"| p99 | {added_p99:.3f} | {P99_BOUND_MS} | {'yes' if added_p99 <= P99_BOUND_MS else 'no'} |")


if __name__ == "__main__":
    sys.exit(main())
