"""A chunked upstream body decoded from whole socket reads, every chunk that arrived in one read given at once.

urllib3's `read_chunked` reads a chunk's size line with `readline`, its data with `_safe_read` and its closing
CRLF with a second `_safe_read`: three buffered-reader calls, a generator step and its bookkeeping per upstream
chunk, which is one SSE event for every server the proxy meets (about a third of a relayed event's CPU). Here
one `read1` (one `recv` when nothing is buffered) is split in place: the data of every chunk it holds, whole or
begun, is yielded as one piece. The bytes and their order are urllib3's; only the piece boundaries differ, and
every reader of a body (the SSE splitter, the relays, whole reads) takes arbitrary pieces.

Errors are urllib3's own, from urllib3's own catcher (`HTTPResponse._error_catcher`): a timeout is a
ReadTimeoutError, a size line that is not hexadecimal an InvalidChunkLength, a body that ends early a
ProtocolError, and the connection is dropped, not pooled, after any of them. As in urllib3 (and http.client),
chunk extensions are ignored, a size line is at most 64 KiB and the two bytes after a chunk's data are dropped
unread. One difference, on purpose: bytes after the end of the body (a server that sends more than its answer)
drop the connection instead of going back to the pool, where they would be read as the next answer's head.
"""

from __future__ import annotations

import http.client
from typing import Any, Callable, Generator, Iterator

from urllib3.exceptions import InvalidChunkLength, ProtocolError

from argoproxy.fastpath.stall_timer import StallTimer

READ_SIZE = 256 * 1024  # at most this much per read; a read returns whatever has arrived
MAX_LINE = 64 * 1024  # a size or trailer line (urllib3's _MAX_CHUNK_LINE_LENGTH)


def read_chunked(raw: Any) -> Generator[bytes, None, None]:
    """The body of `raw`, a urllib3.HTTPResponse with `Transfer-Encoding: chunked`, undecoded."""
    response = raw._fp  # http.client.HTTPResponse; its fp is the socket's buffered reader
    with raw._error_catcher():
        if response is None or response.fp is None:
            return
        reads = _reads(response.fp, raw._connection)
        decoder = _Decoder(raw)
        for data in reads:
            piece = decoder.feed(data)
            if piece:
                yield piece
            if decoder.done:
                break
        else:
            decoder.ended()
        decoder.finish(reads)
        response.close()  # the body is read: urllib3 gives the connection back to the pool


def _reads(fp: Any, connection: Any) -> Iterator[bytes]:
    """Whatever arrived, one read at a time, until the connection closes: first what the buffered reader holds
    (the head's read usually brought the first chunks), then from the socket itself. Under gevent, after a read
    that emptied the socket the next one first waits for it to be readable (trying it at once would only fail
    with EAGAIN, an exception raised and caught per event, before the same wait), and each read is bounded by
    one loop timer for the whole body instead of the socket's timeout (fastpath/stall_timer.py)."""
    data = fp.read1(READ_SIZE)  # everything buffered (the buffer is smaller than READ_SIZE), or one read
    if not data:
        return
    yield data
    sock = connection.sock if connection is not None else None
    if sock is None:
        yield from iter(lambda: fp.read1(READ_SIZE), b"")
        return
    wait = _read_waiter(sock)
    recv = sock.recv
    if wait is None:  # threads, or TLS: each read within the socket's own timeout
        yield from iter(lambda: recv(READ_SIZE), b"")
        return
    timer = StallTimer(sock)
    emptied = True
    try:
        while True:
            timer.start()
            try:
                if emptied:
                    wait()
                data = recv(READ_SIZE)
            finally:
                timer.stop()
            if not data:
                return
            yield data
            emptied = len(data) < READ_SIZE
    finally:
        timer.close()


def _read_waiter(sock: Any) -> Callable[[], None] | None:
    """A wait for `sock` to become readable, on gevent's own watcher; None outside gevent and for TLS (whose
    decrypted bytes can be waiting inside the TLS layer while the socket has nothing)."""
    event = getattr(sock, "_read_event", None)
    if event is None or hasattr(sock, "pending"):
        return None
    wait = sock._wait
    return lambda: wait(event)


def _one_chunk(data: bytes) -> bytes | None:
    """The data of `data` when it is exactly one chunk, from its size line to its CRLF (a stream's usual read:
    one event); None for anything else, which the general loop takes (and refuses if it must)."""
    newline = data.find(b"\n")
    if newline <= 0 or newline > MAX_LINE:  # a size line over the limit: the general loop refuses it
        return None
    try:
        size = int(data[:newline], 16)  # an extension (`;`) fails here and goes the long way
    except ValueError:
        return None
    start = newline + 1
    if size <= 0 or start + size + 2 != len(data):
        return None
    return data[start:start + size]


class _Decoder:
    """Chunk framing across reads: where in a chunk the last read stopped."""

    __slots__ = ("raw", "left", "skip", "line", "tail", "done")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.left = 0  # data bytes of the current chunk still to come
        self.skip = 0  # bytes of the CRLF after a chunk's data still to drop
        self.line = b""  # a size line begun in an earlier read
        self.tail = b""  # what followed the last chunk's size line in its read (trailers)
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """The chunk data in `data` (one read), joined."""
        if not (self.left or self.skip or self.line):
            whole = _one_chunk(data)
            if whole is not None:
                return whole
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            if self.left:
                take = min(self.left, end - pos)
                out.append(data if take == end else data[pos:pos + take])
                pos += take
                self.left -= take
                if not self.left:
                    self.skip = 2
            elif self.skip:
                take = min(self.skip, end - pos)
                pos += take
                self.skip -= take
            else:
                pos = self._size_line(data, pos)
                if self.done:
                    self.tail = data[pos:]
                    break
        return out[0] if len(out) == 1 else b"".join(out)

    def _size_line(self, data: bytes, pos: int) -> int:
        newline = data.find(b"\n", pos)
        if newline < 0:
            self.line += data[pos:]
            if len(self.line) > MAX_LINE:
                raise ProtocolError("Response chunk size line exceeded maximum allowed length")
            return len(data)
        line, self.line = self.line + data[pos:newline + 1], b""
        if len(line) > MAX_LINE:
            raise ProtocolError("Response chunk size line exceeded maximum allowed length")
        size = line.split(b";", 1)[0]
        try:
            self.left = int(size, 16)
        except ValueError:
            raise InvalidChunkLength(self.raw, size) from None
        if self.left < 0:
            raise InvalidChunkLength(self.raw, size)
        self.done = self.left == 0
        return newline + 1

    def ended(self) -> None:
        """The connection closed before the last chunk."""
        if self.left or self.skip:
            raise http.client.IncompleteRead(b"", self.left + self.skip)
        raise ProtocolError("Response ended prematurely")

    def finish(self, reads: Iterator[bytes]) -> None:
        """Read the trailer section up to its blank line (or the end of the connection, as urllib3 allows)."""
        tail = self.tail
        while True:
            newline = tail.find(b"\n")
            if newline < 0:
                more = next(reads, b"")
                if not more:
                    tail = b""
                    break
                tail += more
                if len(tail) > MAX_LINE:
                    raise ProtocolError("Response chunk trailer line exceeded maximum allowed length")
                continue
            line, tail = tail[:newline + 1], tail[newline + 1:]
            if line == b"\r\n":
                break
        if tail:  # more than the answer: the connection's next read would start inside it
            self.raw._connection.close()
