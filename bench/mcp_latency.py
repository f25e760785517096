"""What the MCP gateway adds to a tool call: the same stdio server's `echo` tool called straight over its pipe (as
an agent that starts the server itself calls it) and through the proxy's `/mcp` (one kept HTTP connection, a
2025-11-25 session: Gunicorn's worker, the Unix socket to the supervisor, the server's pipe), one call at a time,
rounds alternated so that the machine's load falls on every way alike.

    .venv/bin/python bench/mcp_latency.py                    # 7 rounds of 300 calls each way
    .venv/bin/python bench/mcp_latency.py --rounds 3 --calls 100

Prints per way the median, p90 and p99 of a call's round trip over all rounds, and what the proxy adds (the
difference of the medians, and of the p99s) against issue 58's bounds: at most 2 ms at the median and 10 ms at
p99. Beside them, what the addition is made of, each timed the same way:
- a `ping` the proxy answers itself: what any request to /mcp costs on this stack (Gunicorn, the door, the
  session asked of the supervisor) before a server is involved;
- the supervisor alone: the same server behind a supervisor of the bench's own (argoproxy/mcp/supervisor.py, as
  the Gunicorn master starts it), called over its Unix socket as a worker calls it, without HTTP;
- Gunicorn's floor: a chat request relayed to the bench's fake model upstream by bench/bare_socket.py (the same
  Gunicorn gevent worker, a raw socket, no Flask, no proxy) against the same request sent to it straight, and
  through the proxy.
The supervisor's hop (supervisor alone less direct) and Gunicorn's floor (relayed less straight) are printed, and
what is left of the addition: the proxy's own request handling (the door and the MCP endpoint; /mcp skips Flask), beside a chat
request's (through the proxy less relayed).

With auth on (a second proxy, the same defaults otherwise: bench/mcp_signin.py), the same call is timed with each
credential issue 72 names: a team key, a JWT from the suite's OpenID provider (verified against its JWKS) and an
opaque token (introspected at the provider, the answer kept: the steady state); and apart, what a cache miss costs:
`--misses` calls each with a new opaque token, paced within the proxy's introspection bound. Without the provider
(npm's oidc-provider, tools/build_oidc_provider.sh) the bench says so and measures the key alone.

The server is the tests' strict stdio fake (tests/fakes/fake_mcp_server.py); the proxies run with their default
settings behind the bench's fake model upstream.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from client import chat_body  # noqa: E402
from targets import HOST, ROOT, BareForwarder, Proxy, Target, Upstream  # noqa: E402

sys.path.insert(0, str(ROOT))
from argoproxy.mcp.link import Link  # noqa: E402
from argoproxy.signin.introspection import RATE  # noqa: E402
from mcp_signin import SignedIn  # noqa: E402

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

    def __init__(self, port: int, credential: str = "") -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        self.credential = credential
        if credential:  # a key or an access token (auth on)
            self.headers["Authorization"] = f"Bearer {credential}"
        status, headers, _ = self.post(INIT)
        assert status == 200, status
        self.headers.update({"Mcp-Session-Id": headers["mcp-session-id"], "MCP-Protocol-Version": VERSION})
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, message: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        self.conn.request("POST", "/mcp", json.dumps(message).encode(), self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body

    def renew(self) -> None:
        """A new connection, one untimed call on it: a connection idle past the keep-alive timeout (while the other
        ways ran) is closed by the server."""
        self.conn.close()
        self.ping(0)

    def call(self, n: int) -> None:
        status, _, body = self.post(echo(n, "bench__echo"))
        assert status == 200 and b'"result"' in body, body[:300]

    def ping(self, n: int) -> None:
        """A `ping` the proxy answers itself: no server, no supervisor (any /mcp request's floor on this stack)."""
        status, _, body = self.post({"jsonrpc": "2.0", "id": n, "method": "ping"})
        assert status == 200 and b'"result"' in body, body[:300]

    def close(self) -> None:
        self.conn.close()


class Supervised:
    """The same server behind a supervisor of the bench's own, called over its Unix socket as a worker calls it
    (link.py, in a session of its owner's): the supervisor's hop without HTTP."""

    def __init__(self) -> None:
        self.rundir = tempfile.mkdtemp(prefix="cot_proxy_mcp_bench_")
        path = os.path.join(self.rundir, "supervisor.sock")
        self.proc = subprocess.Popen([sys.executable, "-m", "argoproxy.mcp.supervisor", path, self.rundir],
                                     stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps([{"name": "bench", "command": SERVER[0], "args": SERVER[1:]}]).encode()
                              + b"\n{}\n")
        self.proc.stdin.flush()  # kept open: its end stops the supervisor
        deadline = time.monotonic() + 30
        while not os.path.exists(path) or not self._ready(path):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the bench's supervisor did not start its server")
            time.sleep(0.05)
        self.link = Link(path)
        self.session = str(self.link.session("new", owner="local", version=VERSION, asks=[])["id"])

    @staticmethod
    def _ready(path: str) -> bool:
        return any(s.get("state") == "ready" for s in Link(path).status())

    def call(self, n: int) -> None:
        answer, _ = self.link.relaying("bench", echo(n, "echo"), 60.0, self.session, "local", relay={"relay": True})
        assert "result" in answer, answer

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        subprocess.run(["rm", "-rf", self.rundir], check=False)


class Http:
    """A chat request over one kept HTTP connection: to the fake model upstream straight, or through a relay."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)
        self.body = chat_body()

    def renew(self) -> None:
        """As Through.renew."""
        self.conn.close()
        self.call(0)

    def call(self, n: int) -> None:
        self.conn.request("POST", "/v1/chat/completions", self.body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status

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


WAYS = {"direct": "direct", "proxy": "through the proxy", "key": "through the proxy, auth on: a team key",
        "jwt": "through the proxy, auth on: a JWT", "opaque": "through the proxy, auth on: an opaque token (kept)",
        "ping": "ping, answered by the proxy",
        "supervisor": "the supervisor alone (no HTTP)", "http": "HTTP to the fake upstream, straight",
        "floor": "HTTP to it through Gunicorn's floor", "chat": "HTTP to it through the proxy (a chat request)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300, help="calls each way per round")
    parser.add_argument("--misses", type=int, default=30, help="calls with a new opaque token (a cache miss each)")
    args = parser.parse_args()
    upstream = Upstream.start()
    servers = json.dumps({"bench": {"command": SERVER[0], "args": SERVER[1:]}})
    targets: list[Target] = [upstream]
    parts: list[Any] = []
    signed: SignedIn | None = None
    try:
        proxy = Proxy.start(upstream.port, MCP_SERVERS=servers)
        targets.append(proxy)
        floor = BareForwarder.start(upstream.port, kind="socket")
        targets.append(floor)
        signed = SignedIn(upstream.port, servers, "bench__*")
        calls, renew, parts = started(proxy, floor, upstream, signed)
        ways = measured(calls, renew, args)
        opaque = next((p for p in parts if isinstance(p, Through) and p.credential == signed.opaque), None)
        misses = cache_misses(signed, opaque, args.misses) if opaque and signed.opaque and args.misses > 0 else []
    finally:
        for part in reversed(parts):
            part.close()
        if signed is not None:
            signed.close()
        for target in reversed(targets):
            target.stop()
    report(ways, args)
    report_auth(ways, misses, signed.missing)
    return 0


def started(proxy: Proxy, floor: Target, upstream: Target, signed: SignedIn
            ) -> tuple[dict[str, Callable[[int], None]], dict[str, Callable[[], None]], list[Any]]:
    """Every way's call and, for those over HTTP, its renewal; the parts to close."""
    direct, through, supervised = Direct(), Through(proxy.port), Supervised()
    straight, relayed, chat = Http(upstream.port), Http(floor.port), Http(proxy.port)
    assert signed.proxy is not None
    auth = {name: Through(signed.proxy.port, credential) for name, credential in
            (("key", signed.key), ("jwt", signed.jwt), ("opaque", signed.opaque)) if credential}
    calls: dict[str, Callable[[int], None]] = {
        "direct": direct.call, "proxy": through.call, **{name: way.call for name, way in auth.items()},
        "ping": through.ping, "supervisor": supervised.call, "http": straight.call, "floor": relayed.call,
        "chat": chat.call}
    renew = {"proxy": through.renew, "ping": through.renew, "http": straight.renew, "floor": relayed.renew,
             "chat": chat.renew, **{name: way.renew for name, way in auth.items()}}
    return calls, renew, [direct, through, supervised, straight, relayed, chat, *auth.values()]


def measured(calls: dict[str, Callable[[int], None]], renew: dict[str, Callable[[], None]],
             args: argparse.Namespace) -> dict[str, list[float]]:
    for name, call in calls.items():  # warm-up: every way's first calls (imports, the workers' first requests)
        if name in renew:  # the ways before it may have kept this connection idle past the keep-alive timeout
            renew[name]()
        timed(call, 50, 1)
    ways: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(args.rounds):
        order = list(calls.items())
        for name, call in order if r % 2 == 0 else order[::-1]:
            if name in renew:
                renew[name]()
            ways[name] += timed(call, args.calls, 1000 + r * args.calls)
        print(f"[mcp bench] round {r + 1}/{args.rounds}", file=sys.stderr)
    return ways


def cache_misses(signed: SignedIn, opaque: Through, count: int) -> list[float]:
    """`count` tool calls, each with a new opaque token of the person's (its first use: one introspection), in the
    kept token's session, one every 1.5 / RATE seconds (within the proxy's introspection bound per worker)."""
    tokens = [signed.opaque_token() for _ in range(count)]
    kept, times = opaque.headers["Authorization"], []
    opaque.renew()  # (its token asked again if its answer aged out of the cache, 60 s: before the count)
    before = signed.introspections()
    for n, token in enumerate(tokens):
        time.sleep(1.5 / RATE)
        opaque.headers["Authorization"] = f"Bearer {token}"
        times += timed(opaque.call, 1, 90_000 + n)
    opaque.headers["Authorization"] = kept
    asked = signed.introspections() - before
    if asked != count:
        print(f"[mcp bench] {count} new tokens made {asked} introspections", file=sys.stderr)
    return times


def report(ways: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(f"\n{args.rounds} rounds of {args.calls} calls each way, one at a time, alternated\n")
    print("| way | median ms | p90 ms | p99 ms |\n| --- | --- | --- | --- |")
    for name, values in ways.items():
        print(f"| {WAYS[name]} | {statistics.median(values):.3f} | {pct(values, 0.9):.3f} | {pct(values, 0.99):.3f} |")
    median = {name: statistics.median(values) for name, values in ways.items()}
    added_median = median["proxy"] - median["direct"]
    added_p99 = pct(ways["proxy"], 0.99) - pct(ways["direct"], 0.99)
    print("\n| added by the proxy | ms | bound | within |\n| --- | --- | --- | --- |")
    print(f"| median | {added_median:.3f} | {MEDIAN_BOUND_MS} | {'yes' if added_median <= MEDIAN_BOUND_MS else 'no'} |")
    print(f"| p99 | {added_p99:.3f} | {P99_BOUND_MS} | {'yes' if added_p99 <= P99_BOUND_MS else 'no'} |")
    hop, floor = median["supervisor"] - median["direct"], median["floor"] - median["http"]
    print("\n| the median addition's parts | ms |\n| --- | --- |")
    print(f"| the supervisor's hop (supervisor alone less direct) | {hop:.3f} |")
    print(f"| Gunicorn's floor (relayed less straight) | {floor:.3f} |")
    print(f"| the rest: the door, the MCP endpoint | {added_median - hop - floor:.3f} |")
    print(f"| beside it, a chat request's own handling (through the proxy less Gunicorn's floor) "
          f"| {median['chat'] - median['floor']:.3f} |")


def report_auth(ways: dict[str, list[float]], misses: list[float], missing: str) -> None:
    """What each credential's way adds to the direct call, against the bounds; a cache miss's cost apart."""
    direct = ways["direct"]
    print("\n| added, by credential | median ms | within 2 ms | p99 ms | within 10 ms |\n| --- | --- | --- | --- | --- |")
    for name, label in (("proxy", "auth off"), ("key", "a team key"), ("jwt", "a JWT"),
                        ("opaque", "an opaque token, its introspection kept")):
        if name in ways:
            median = statistics.median(ways[name]) - statistics.median(direct)
            p99 = pct(ways[name], 0.99) - pct(direct, 0.99)
            print(f"| {label} | {median:.3f} | {'yes' if median <= MEDIAN_BOUND_MS else 'no'} | {p99:.3f} | "
                  f"{'yes' if p99 <= P99_BOUND_MS else 'no'} |")
    if missing:
        print(f"\nThe JWT and opaque ways were not measured: {missing}; the key's alone was.")
    if misses and "opaque" in ways:
        kept = statistics.median(ways["opaque"])
        print(f"\nA cache miss (an opaque token's first call, {len(misses)} tokens): median "
              f"{statistics.median(misses):.3f} ms, max {max(misses):.3f} ms; the introspection adds "
              f"{statistics.median(misses) - kept:.3f} ms at the median over a kept token's call.")


if __name__ == "__main__":
    sys.exit(main())
