"""fastpath/chunked.py: a chunked upstream body decoded from whole reads, through the real DirectPools and a
loopback server that sends scripted bytes. The body is urllib3's byte for byte whatever the framing and the
read boundaries; errors are urllib3's ProtocolError (and ReadTimeoutError), raised by the response as the
upstream failure family (Disconnected, ReadTimeout) with urllib3's as the cause, the connection dropped; a body
read to its end gives its connection back to the pool; drain() goes on where a stream's reader stopped."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import urllib3

from argoproxy.fastpath.pool import DirectPools
from argoproxy.upstream.client import make_session
from argoproxy.upstream.failures import Disconnected
from argoproxy.upstream.wire import UpstreamRequest

ROOT = Path(__file__).resolve().parents[2]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


class ScriptedServer:
    """Answers each request with the next script: a list of byte pieces, sent with a short pause between them
    (so that they usually arrive as separate reads); None as a piece closes the connection there; a
    threading.Event holds the rest until the test sets it (where a test needs a piece read alone)."""

    def __init__(self, scripts: list[list[bytes | None]]) -> None:
        self.scripts = list(scripts)
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._answer(conn)
            except OSError:  # the client dropped the connection (a test that stops reading mid-body)
                pass

    def _answer(self, conn: socket.socket) -> None:
        buf = b""
        while self.scripts:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            buf = buf.split(b"\r\n\r\n", 1)[1]
            for piece in self.scripts.pop(0):
                if piece is None:
                    return
                if isinstance(piece, threading.Event):
                    piece.wait(10)
                    continue
                conn.sendall(piece)
                time.sleep(0.002)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def pools() -> Iterator[DirectPools]:
    yield DirectPools(make_session(4))


def ask(pools: DirectPools, server: ScriptedServer, read_timeout: float = 5):
    resp = pools.send(UpstreamRequest("GET", f"http://127.0.0.1:{server.port}/v1/stream", {}), (2, read_timeout))
    assert resp is not None
    return resp


def framed(chunks: list[bytes], rng: random.Random) -> bytes:
    out = b""
    for chunk in chunks:
        ext = b";name=value" if rng.random() < 0.2 else b""
        size = b"%x" % len(chunk) if rng.random() < 0.5 else b"%X" % len(chunk)
        out += size + ext + b"\r\n" + chunk + b"\r\n"
    return out + b"0\r\n\r\n"


def split(data: bytes, rng: random.Random, pieces: int) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(pieces, len(data) - 1)))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


@pytest.mark.parametrize("seed", range(12))
def test_the_body_is_urllib3s_whatever_the_framing_and_the_reads(pools: DirectPools, seed: int) -> None:
    rng = random.Random(seed)
    chunks = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))) for _ in range(rng.randrange(1, 30))]
    wire = HEAD + framed(chunks, rng)
    server = ScriptedServer([split(wire, rng, rng.randrange(1, 40)), [HEAD + b"2\r\nok\r\n0\r\n\r\n"]])
    try:
        resp = ask(pools, server)
        assert b"".join(resp.chunks()) == b"".join(chunks)
        resp.close()
        again = ask(pools, server)
        assert b"".join(again.chunks()) == b"ok"
        again.close()
        assert server.connections == 1  # a body read to its end gave its connection back
    finally:
        server.close()


def test_chunks_that_arrived_together_are_one_piece(pools: DirectPools) -> None:
    events = [b"data: %d\n\n" % i for i in range(5)]
    server = ScriptedServer([[HEAD + framed(events, random.Random(0))]])
    try:
        resp = ask(pools, server)
        assert list(resp.chunks()) == [b"".join(events)]
        resp.close()
    finally:
        server.close()


def test_trailers_are_read_and_the_connection_kept(pools: DirectPools) -> None:
    server = ScriptedServer([[HEAD + b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n", b"X-Other: 2\r\n\r\n"],
                             [HEAD + b"0\r\n\r\n"]])
    try:
        resp = ask(pools, server)
        assert b"".join(resp.chunks()) == b"abc"
        resp.close()
        again = ask(pools, server)
        assert b"".join(again.chunks()) == b""
        again.close()
        assert server.connections == 1
    finally:
        server.close()


def connections_after_ok(pools: DirectPools, server: ScriptedServer) -> int:
    """Ask once more (the script answers `ok`): the server's connections by then (1: the first was reused)."""
    again = ask(pools, server)
    assert b"".join(again.chunks()) == b"ok"
    again.close()
    return server.connections


@pytest.mark.parametrize("script", [
    [HEAD + b"zz\r\nabc\r\n"],  # not a size
    [HEAD + b"-3\r\nabc\r\n"],  # a negative size
    [HEAD + b"10\r\nabc", None],  # cut inside a chunk
    [HEAD + b"3\r\nabc\r", None],  # cut inside the CRLF after it
    [HEAD + b"3\r\nabc\r\n", None],  # cut between chunks
    [HEAD + b"3\r\nabc\r\n" + b"1" * 70000],  # a size line over 64 KiB
], ids=["not-hex", "negative", "cut-in-chunk", "cut-in-crlf", "cut-between", "long-line"])
def test_a_broken_body_is_urllib3s_protocol_error_and_drops_the_connection(pools: DirectPools, script) -> None:
    server = ScriptedServer([script, [HEAD + b"2\r\nok\r\n0\r\n\r\n"]])
    try:
        resp = ask(pools, server, read_timeout=2)
        with pytest.raises(Disconnected) as broken:  # the transport's failure family, urllib3's error its cause
            b"".join(resp.chunks())
        assert isinstance(broken.value.__cause__, urllib3.exceptions.ProtocolError)
        resp.close()
        assert connections_after_ok(pools, server) == 2
    finally:
        server.close()


def test_bytes_after_the_body_drop_the_connection(pools: DirectPools) -> None:
    server = ScriptedServer([[HEAD + b"3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"], [HEAD + b"2\r\nok\r\n0\r\n\r\n"]])
    try:
        resp = ask(pools, server)
        assert b"".join(resp.chunks()) == b"abc"
        resp.close()
        assert connections_after_ok(pools, server) == 2  # not the stray bytes read as a head
    finally:
        server.close()


def test_drain_goes_on_where_the_stream_stopped(pools: DirectPools) -> None:
    first = b"data: {\"a\": 1}\n\ndata: [DONE]\n\n"
    read = threading.Event()  # the rest is sent once the first chunk was read alone
    server = ScriptedServer([[HEAD + b"%x\r\n%s\r\n" % (len(first), first), read, b"5\r\nextra\r\n", b"0\r\n\r\n"],
                             [HEAD + b"2\r\nok\r\n0\r\n\r\n"]])
    try:
        resp = ask(pools, server)
        stream = resp.chunks()
        assert next(stream) == first  # the consumer saw [DONE] and stops reading here
        read.set()
        resp.drain(2)
        stream.close()
        resp.close()
        assert connections_after_ok(pools, server) == 1
    finally:
        server.close()


def test_a_reader_left_mid_body_drops_the_connection(pools: DirectPools) -> None:
    read = threading.Event()
    server = ScriptedServer([[HEAD + b"3\r\nabc\r\n", read, b"3\r\ndef\r\n", b"0\r\n\r\n"],
                             [HEAD + b"2\r\nok\r\n0\r\n\r\n"]])
    try:
        resp = ask(pools, server)
        assert next(resp.chunks()) == b"abc"
        read.set()
        resp.close()
        assert connections_after_ok(pools, server) == 2
    finally:
        server.close()


GEVENT_SCRIPT = r"""
from gevent import monkey; monkey.patch_all()
import sys, time
import urllib3
from tests.unit.test_chunked_reader import HEAD, ScriptedServer, ask
from argoproxy.fastpath.pool import DirectPools
from argoproxy.upstream.client import make_session
from argoproxy.upstream.failures import ReadTimeout

events = [b"data: %d\n\n" % i for i in range(40)]
wire = [HEAD] + [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]
stall = [HEAD, b"3\r\nabc\r\n"] + [b""] * 200  # then nothing for 400 ms, twice the read timeout
server = ScriptedServer([wire, stall])
pools = DirectPools(make_session(4))
resp = ask(pools, server)
pieces = list(resp.chunks())
resp.close()
print(b"".join(pieces) == b"".join(events), len(pieces) > 1)
resp = ask(pools, server, read_timeout=0.2)
t0 = time.monotonic()
try:
    b"".join(resp.chunks())
except ReadTimeout as failure:
    assert isinstance(failure.__cause__, urllib3.exceptions.ReadTimeoutError)
    print("read timeout", round(time.monotonic() - t0, 2))
"""


def test_under_gevent_reads_wait_on_the_socket_and_a_stall_is_a_read_timeout() -> None:
    out = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert out[0] == "True True", out
    assert out[1].startswith("read timeout"), out
    assert float(out[1].split()[-1]) < 2


@pytest.mark.parametrize("read", [b"0" * 70000 + b"5\r\nhello\r\n", b"5;" + b"x" * 70000 + b"\r\nhello\r\n"])
def test_a_one_chunk_read_with_a_size_line_over_the_limit_is_refused(read: bytes) -> None:
    # The one-chunk shortcut must refuse what the general loop (and urllib3) refuses: a size line over 64 KiB.
    from argoproxy.fastpath.chunked import _Decoder
    with pytest.raises(urllib3.exceptions.ProtocolError):
        _Decoder(None).feed(read)


@pytest.mark.parametrize("read", [b"5\r\nhello\r\n", b"0x5\r\nhello\r\n", b" 5 \r\nhello\r\n", b"5;ext=1\r\nhello\r\n",
                                  b"5\nhello\r\n", b"05\r\nhello\r\n"])
def test_a_one_chunk_read_gives_what_the_general_loop_gives(read: bytes) -> None:
    from argoproxy.fastpath.chunked import _Decoder
    general = _Decoder(None)
    assert _Decoder(None).feed(read) == b"hello"
    parts = [general.feed(read[:1]), general.feed(read[1:])]  # split: the shortcut cannot apply
    assert b"".join(parts) == b"hello"
