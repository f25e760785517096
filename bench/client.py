"""The benchmark's load generator: HTTP/1.1 over raw asyncio protocols, timed with time.perf_counter.

One ``Conn`` is one keep-alive connection that carries one request at a time and parses the response by hand
(Content-Length, chunked, or read-to-close), noting when the headers, the first body byte and each SSE event
(a blank line in the de-chunked body) arrived. The workloads on top:

- ``closed_loop``: N connections each sending the next request as soon as the previous answer is complete.
- ``sequential_streams``: one stream at a time on one keep-alive connection (time to first byte, total time).
- ``hold_streams``: N streams opened at once, each checked for every chunk and [DONE], plus short probe requests.
- ``round_trips``: one large request body at a time (the 5 MiB echo).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

perf = time.perf_counter
TOKEN_RE = re.compile(rb"tok(\d+) ")


class ConnectionDropped(Exception):
    def __init__(self, got_bytes: bool) -> None:
        super().__init__("connection closed before the response was complete")
        self.got_bytes = got_bytes


@dataclass
class Response:
    status: int = 0
    close: bool = False
    t_headers: float = 0.0
    t_first_body: float = 0.0
    t_done: float = 0.0
    body: bytes = b""
    event_times: list[float] = field(default_factory=list)


class Conn(asyncio.Protocol):
    """One client connection; ``request`` sends raw bytes and resolves to the parsed Response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.must_close = False
        self.buf = bytearray()
        self.future: asyncio.Future | None = None
        self.resp: Response | None = None
        self.parts: list[bytes] = []
        self.state = 0  # 0 head, 1 content-length body, 2 chunked body, 3 read-to-close body
        self.left = 0
        self.track = False
        self.last_byte = b""
        self.got_bytes = False

    # --- asyncio.Protocol
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        fut = self.future
        if fut is not None and not fut.done():
            if self.state == 3:
                self._finish()
            else:
                fut.set_exception(ConnectionDropped(self.got_bytes))

    def data_received(self, data: bytes) -> None:
        if self.future is None:
            return
        self.got_bytes = True
        if self.state == 0:
            self.buf += data
            self._head()
        elif self.state == 1:
            self._body_length(data)
        elif self.state == 2:
            self.buf += data
            self._body_chunked()
        else:
            self._on_body(data)

    # --- use
    def request(self, data: bytes, track_events: bool = False) -> asyncio.Future:
        self.future = asyncio.get_running_loop().create_future()
        self.resp = Response()
        self.parts = []
        self.state = 0
        self.track = track_events
        self.last_byte = b""
        self.got_bytes = False
        self.transport.write(data)
        return self.future

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    # --- parsing
    def _head(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[:end + 4]
        status = int(lines[0].split(" ", 2)[1])
        if 100 <= status < 200:
            self._head()
            return
        resp = self.resp
        resp.status = status
        resp.t_headers = perf()
        length = None
        chunked = False
        close = lines[0].startswith("HTTP/1.0")
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                v = value.strip().lower()
                close = "close" in v or (close and "keep-alive" not in v)
        resp.close = close
        self.must_close = close
        if chunked:
            self.state = 2
            self.left = -1
            self._body_chunked()
        elif length is not None:
            self.state = 1
            self.left = length
            rest = bytes(buf)
            buf.clear()
            if length == 0:
                self._finish()
            elif rest:
                self._body_length(rest)
        else:
            self.state = 3
            rest = bytes(buf)
            buf.clear()
            if rest:
                self._on_body(rest)

    def _body_length(self, data: bytes) -> None:
        if len(data) >= self.left:
            extra = data[self.left:]
            self._on_body(data[:self.left])
            self.left = 0
            self.buf += extra
            self._finish()
        else:
            self.left -= len(data)
            self._on_body(data)

    def _body_chunked(self) -> None:
        buf = self.buf
        pos = 0
        n = len(buf)
        while pos <= n:
            left = self.left
            if left > 0:
                take = min(left, n - pos)
                if take == 0:
                    break
                self._on_body(bytes(buf[pos:pos + take]))
                pos += take
                self.left = left - take
                if self.left == 0:
                    self.left = -2
            elif left == -2:  # the CRLF after a chunk's data
                if n - pos < 2:
                    break
                pos += 2
                self.left = -1
            elif left == -1:  # a chunk-size line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
                pos = eol + 2
                self.left = size if size else -3
            else:  # -3: trailers, then the final empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                if eol == pos:
                    pos += 2
                    del buf[:pos]
                    self._finish()
                    return
                pos = eol + 2
        del buf[:pos]

    def _on_body(self, data: bytes) -> None:
        if not data:
            return
        resp = self.resp
        now = perf()
        if not resp.t_first_body:
            resp.t_first_body = now
        self.parts.append(data)
        if self.track:
            count = (self.last_byte + data).count(b"\n\n")
            if count:
                resp.event_times.extend([now] * count)
            self.last_byte = data[-1:]

    def _finish(self) -> None:
        resp = self.resp
        resp.t_done = perf()
        resp.body = b"".join(self.parts)
        self.parts = []
        self.state = 0
        fut = self.future
        self.future = None
        if fut is not None and not fut.done():
            fut.set_result(resp)


async def connect(host: str, port: int) -> Conn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(Conn, host, port)
    return conn


def build_request(method: str, path: str, host: str, port: int, body: bytes = b"",
                  content_type: str = "application/json") -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer sk-bench\r\n"
            f"User-Agent: cot-proxy-bench\r\nAccept: */*\r\n")
    if body or method in ("POST", "PUT", "PATCH"):
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def chat_body(stream: bool = False, chunks: int = 100, gap_ms: int = 0) -> bytes:
    body = {"model": f"bench-c{chunks}-d{gap_ms}" if stream else "bench",
            "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def stream_intact(body: bytes, chunks: int) -> bool:
    """Every one of the chunks, in order, then [DONE]."""
    tokens = TOKEN_RE.findall(body)
    if len(tokens) != chunks or body.rstrip()[-12:] != b"data: [DONE]":
        return False
    return all(int(t) == i for i, t in enumerate(tokens))


class Pool:
    """N keep-alive connections to one address, reopened when the server closes them."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.conns: list[Conn | None] = [None] * size

    async def send(self, i: int, data: bytes, track_events: bool = False) -> tuple[Response, float]:
        """(response, start time); the time includes reconnecting when the old connection is gone."""
        for attempt in range(2):
            t0 = perf()
            conn = self.conns[i]
            if conn is None or conn.closed or conn.must_close:
                if conn is not None:
                    conn.close()
                conn = self.conns[i] = await connect(self.host, self.port)
                reused = False
            else:
                reused = True
            try:
                resp = await conn.request(data, track_events)
                return resp, t0
            except ConnectionDropped as exc:
                conn.close()
                self.conns[i] = None
                # a keep-alive connection the server closed while idle: retry once on a new one
                if attempt or exc.got_bytes or not reused:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self.conns:
            if conn is not None:
                conn.close()
        self.conns = [None] * self.size


@dataclass
class LoopResult:
    latencies: list[float]
    errors: int
    elapsed: float
    error_sample: str = ""

    @property
    def count(self) -> int:
        return len(self.latencies)

    @classmethod
    def merge(cls, parts: list["LoopResult"]) -> "LoopResult":
        return cls([x for p in parts for x in p.latencies], sum(p.errors for p in parts),
                   sum(p.elapsed for p in parts), next((p.error_sample for p in parts if p.error_sample), ""))


async def closed_loop(pool: Pool, request: bytes, duration: float, concurrency: int | None = None) -> LoopResult:
    """Every connection of the pool sends ``request`` back to back for ``duration`` seconds."""
    n = concurrency or pool.size
    latencies: list[float] = []
    errors = [0, ""]
    start = perf()
    deadline = start + duration

    async def worker(i: int) -> None:
        record = latencies.append
        while perf() < deadline:
            try:
                resp, t0 = await pool.send(i, request)
            except (OSError, ConnectionDropped, ValueError) as exc:
                errors[0] += 1
                errors[1] = errors[1] or repr(exc)
                await asyncio.sleep(0.01)
                continue
            if resp.status != 200:
                errors[0] += 1
                errors[1] = errors[1] or f"HTTP {resp.status}: {resp.body[:200]!r}"
                continue
            record(resp.t_done - t0)

    await asyncio.gather(*(worker(i) for i in range(n)))
    return LoopResult(latencies, errors[0], perf() - start, errors[1])


async def open_loop(host: str, port: int, request: bytes, rate: float, duration: float,
                    max_conns: int = 512) -> LoopResult:
    """Requests offered at a fixed rate: request i is due at start + i/rate, whatever became of the ones before,
    and its latency counts from that moment, not from when a connection was free to send it. A proxy that
    stalls therefore shows its queue in the latencies (a closed loop would just send less). Each request takes
    an idle keep-alive connection or opens one, up to `max_conns`; one that finds none free waits for one,
    and that wait is in its latency too."""
    loop = asyncio.get_running_loop()
    idle: list[Conn] = []
    opened = [0]
    freed = asyncio.Condition()
    latencies: list[float] = []
    errors = [0, ""]

    async def take() -> Conn:
        while True:
            while idle:
                conn = idle.pop()
                if not (conn.closed or conn.must_close):
                    return conn
                conn.close()
                opened[0] -= 1
            if opened[0] < max_conns:
                opened[0] += 1
                try:
                    return await connect(host, port)
                except OSError:
                    opened[0] -= 1
                    raise
            async with freed:
                await freed.wait()

    async def one(due: float) -> None:
        conn = None
        try:
            conn = await take()
            resp = await conn.request(request)
        except (OSError, ConnectionDropped, ValueError) as exc:
            errors[0] += 1
            errors[1] = errors[1] or repr(exc)
            if conn is not None:
                conn.close()
                opened[0] -= 1
            return
        idle.append(conn)
        async with freed:
            freed.notify()
        if resp.status != 200:
            errors[0] += 1
            errors[1] = errors[1] or f"HTTP {resp.status}: {resp.body[:200]!r}"
            return
        latencies.append(resp.t_done - due)

    start = perf() + 0.05
    total = int(rate * duration)
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(due)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    return LoopResult(latencies, errors[0], perf() - start, errors[1])


@dataclass
class StreamSample:
    ttfb: float
    total: float
    lag: float  # median lateness of an event against (first event + i * gap)
    max_lag: float  # worst lateness
    batched: int  # events that arrived in the same read as the one before
    intact: bool


async def sequential_streams(host: str, port: int, request: bytes, count: int, chunks: int,
                             gap_s: float) -> list[StreamSample]:
    pool = Pool(host, port, 1)
    samples: list[StreamSample] = []
    try:
        for _ in range(count):
            resp, t0 = await pool.send(0, request, track_events=True)
            times = resp.event_times[:chunks]
            first = times[0] if times else resp.t_first_body
            lags = sorted(t - (first + i * gap_s) for i, t in enumerate(times)) or [0.0]
            batched = sum(1 for i in range(1, len(times)) if times[i] == times[i - 1])
            samples.append(StreamSample(resp.t_first_body - t0, resp.t_done - t0, lags[len(lags) // 2], lags[-1],
                                        batched, resp.status == 200 and stream_intact(resp.body, chunks)))
    finally:
        pool.close()
    return samples


@dataclass
class HoldResult:
    streams: int
    intact: int
    slowest: float
    fastest: float
    failures: dict[str, int]
    probe_latencies: list[float]
    probe_errors: int
    first_bytes: list[float] = field(default_factory=list)  # connect to the first body byte, per intact stream


async def hold_streams(host: str, port: int, request: bytes, n: int, chunks: int, timeout: float,
                       probe_request: bytes | None = None, probe_every: float = 0.25,
                       sampler: Callable[[], Awaitable[None]] | None = None,
                       complete: Callable[[bytes], bool] | None = None) -> HoldResult:
    """Open n streams at once; each must bring every chunk and [DONE] within ``timeout`` seconds (or, for
    another door's format, satisfy ``complete``)."""
    if complete is None:
        def complete(body: bytes) -> bool:
            return stream_intact(body, chunks)
    durations: list[float] = []
    first_bytes: list[float] = []
    failures: dict[str, int] = {}
    probe_latencies: list[float] = []
    probe_errors = [0]
    done = asyncio.Event()

    def fail(reason: str) -> None:
        failures[reason] = failures.get(reason, 0) + 1

    async def one() -> None:
        t0 = perf()
        conn = None
        try:
            conn = await asyncio.wait_for(connect(host, port), timeout)
            resp = await asyncio.wait_for(conn.request(request), timeout - (perf() - t0))
            if resp.status != 200:
                fail(f"HTTP {resp.status}")
            elif not complete(resp.body):
                fail("incomplete")
            else:
                durations.append(resp.t_done - t0)
                first_bytes.append(resp.t_first_body - t0)
        except asyncio.TimeoutError:
            fail("timeout")
        except (OSError, ConnectionDropped) as exc:
            fail(type(exc).__name__)
        finally:
            if conn is not None:
                conn.close()

    async def probe() -> None:
        while not done.is_set():
            t0 = perf()
            conn = None
            try:
                conn = await asyncio.wait_for(connect(host, port), 10)
                resp = await asyncio.wait_for(conn.request(probe_request), 10)
                if resp.status == 200:
                    probe_latencies.append(resp.t_done - t0)
                else:
                    probe_errors[0] += 1
            except (asyncio.TimeoutError, OSError, ConnectionDropped):
                probe_errors[0] += 1
            finally:
                if conn is not None:
                    conn.close()
            try:
                await asyncio.wait_for(done.wait(), probe_every)
            except asyncio.TimeoutError:
                pass

    async def sample() -> None:
        while not done.is_set():
            await sampler()
            try:
                await asyncio.wait_for(done.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    side = []
    if probe_request is not None:
        side.append(asyncio.ensure_future(probe()))
    if sampler is not None:
        side.append(asyncio.ensure_future(sample()))
    try:
        await asyncio.gather(*(one() for _ in range(n)))
    finally:
        done.set()
        await asyncio.gather(*side, return_exceptions=True)
    return HoldResult(n, len(durations), max(durations, default=float("nan")), min(durations, default=float("nan")),
                      failures, probe_latencies, probe_errors[0], first_bytes)


async def timed_posts(host: str, port: int, request: bytes, count: int) -> tuple[list[float], set[int]]:
    """Send the same request ``count`` times in sequence; (times, the statuses seen)."""
    pool = Pool(host, port, 1)
    times: list[float] = []
    statuses: set[int] = set()
    try:
        for _ in range(count):
            resp, t0 = await pool.send(0, request)
            statuses.add(resp.status)
            times.append(resp.t_done - t0)
    finally:
        pool.close()
    return times, statuses


async def round_trips(host: str, port: int, request: bytes, expect_len: int, count: int) -> tuple[list[float], int]:
    """Send the same (large) request ``count`` times in sequence; (times, wrong answers)."""
    pool = Pool(host, port, 1)
    times: list[float] = []
    wrong = 0
    try:
        for _ in range(count):
            resp, t0 = await pool.send(0, request)
            if resp.status != 200 or len(resp.body) != expect_len:
                wrong += 1
            times.append(resp.t_done - t0)
    finally:
        pool.close()
    return times, wrong
