"""The benchmark's fake OpenAI upstream: a fast HTTP/1.1 keep-alive server on raw asyncio protocols.

It must never be the bottleneck, so it parses requests by hand and answers from canned bytes:

- ``POST .../chat/completions`` without ``"stream": true``: a small canned chat completion (Content-Length).
- ``POST .../chat/completions`` with ``"stream": true``: an SSE stream, chunked transfer encoding, of
  N chat.completion.chunk events then ``data: [DONE]``. N and the gap between events come from the model name
  ``bench-c<N>-d<MS>`` (default 100 chunks, 0 ms). Events are scheduled on absolute times
  (start + i * gap) so that timer overshoot does not accumulate over a 10-second stream. Asked for usage
  (``stream_options.include_usage``), as OpenAI answers: ``"usage":null`` on each chunk and a usage chunk last.
- ``POST .../echo``: the request body echoed back (Content-Length), for the large-body round trip.
- ``GET .../models`` and anything else: a small JSON answer (so /health probes get a 200).

Request bodies may come with Content-Length or chunked. Run: ``python bench/upstream.py [--port P]``; it prints
``READY <port>`` on stdout when listening and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal

CHAT_BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
}, separators=(",", ":")).encode()
CHAT_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                 % len(CHAT_BODY)) + CHAT_BODY
SMALL_BODY = b'{"object":"list","data":[{"id":"bench","object":"model","created":1700000000,"owned_by":"bench"}]}'
SMALL_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % len(SMALL_BODY)) + SMALL_BODY
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
MODEL_RE = re.compile(rb'"model"\s*:\s*"bench-c(\d+)-d(\d+)"')
STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
USAGE_RE = re.compile(rb'"include_usage"\s*:\s*true')

_event_cache: dict[tuple[int, bool], list[bytes]] = {}


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(payload: dict) -> bytes:
    return _chunk(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


def stream_events(n: int, usage: bool = False) -> list[bytes]:
    """The n events plus [DONE] (after the usage chunk, with `usage`), each already framed as one HTTP chunk."""
    events = _event_cache.get((n, usage))
    if events is None:
        events = []
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "bench"}
        for i in range(n):
            delta = {"role": "assistant", "content": f"tok{i} "} if i == 0 else {"content": f"tok{i} "}
            payload = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if i == n - 1
                                            else None}]}
            events.append(_event({**payload, "usage": None} if usage else payload))
        last = _event({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": n,
                                                         "total_tokens": 9 + n}}) if usage else b""
        events.append(last + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        _event_cache[(n, usage)] = events
    return events


class UpstreamProtocol(asyncio.Protocol):
    __slots__ = ("transport", "buf", "busy", "closing")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # a stream is being written; later requests wait in buf
        self.closing = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closing = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._process()

    def _process(self) -> None:
        buf = self.buf
        while buf and not self.busy and not self.closing:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.transport.close()
                self.closing = True
                return
            length = 0
            chunked = False
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding":
                    chunked = "chunked" in value.lower()
                elif name == "connection":
                    close = "close" in value.lower()
            start = end + 4
            if chunked:
                parsed = _dechunk(buf, start)
                if parsed is None:
                    return
                body, consumed = parsed
            else:
                if len(buf) - start < length:
                    return
                body = bytes(buf[start:start + length])
                consumed = start + length
            del buf[:consumed]
            self._answer(method, target, body, close)

    def _answer(self, method: str, target: str, body: bytes, close: bool) -> None:
        transport = self.transport
        path = target.split("?", 1)[0]
        if path.endswith("/chat/completions") and method == "POST":
            if STREAM_RE.search(body):
                m = MODEL_RE.search(body)
                n, gap_ms = (int(m.group(1)), int(m.group(2))) if m else (100, 0)
                events = stream_events(max(1, n), bool(USAGE_RE.search(body)))
                if gap_ms <= 0:
                    transport.write(SSE_HEAD + b"".join(events))
                    if close:
                        transport.close()
                        self.closing = True
                    return
                self.busy = True
                asyncio.ensure_future(self._stream(events, gap_ms / 1000.0, close))
                return
            transport.write(CHAT_RESPONSE)
        elif path.endswith("/echo"):
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                            % len(body))
            transport.write(body)
        else:
            transport.write(SMALL_RESPONSE)
        if close:
            transport.close()
            self.closing = True

    async def _stream(self, events: list[bytes], gap: float, close: bool) -> None:
        transport = self.transport
        loop = asyncio.get_running_loop()
        try:
            transport.write(SSE_HEAD + events[0])
            start = loop.time()
            for i in range(1, len(events) - 1):
                delay = start + i * gap - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.closing:
                    return
                transport.write(events[i])
            # the last event and [DONE] go together, right after the last content event
            delay = start + (len(events) - 2) * gap - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.closing:
                return
            transport.write(events[-1])
            if close:
                transport.close()
                self.closing = True
        finally:
            self.busy = False
        if self.buf and not self.closing:
            self._process()


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """A complete chunked body starting at pos: (body, bytes consumed) or None when incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            # trailers end with an empty line
            end = buf.find(b"\r\n", pos)
            while end >= 0 and end != pos:
                pos = end + 2
                end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            return bytes(out), end + 2
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos:pos + size]
        pos += size + 2


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=8192, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    parent = os.getppid()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            if os.getppid() != parent:  # orphaned: the benchmark died, stop by ourselves
                break
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 65536), hard))
    try:
        import gc
        gc.freeze()
    except AttributeError:
        pass
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
