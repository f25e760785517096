"""A request body of known length read from Gunicorn's socket into one buffer.

Gunicorn hands a body back through two BytesIO buffers (the Body's and its Unreader's), and each read copies
what they hold into new ones: a 5 MiB body was copied about eight times on its way to the proxy, 7 ms of the
28 a 5 MiB chat request took (a profile of the worker). Read here, the bytes Gunicorn already holds past the
request's head are taken first, the rest goes straight from the socket into bytearrays as large as what arrived
(`recv_into`), and Gunicorn's reader is told how much was consumed, so keep-alive and the next request work as
before.

Used by edge.client_input.DeadlineBody for a whole body of known length (what the proxy's routes read), with
FAST_PATH=on; anything else (chunked bodies, partial reads, another server) reads through Gunicorn's Body.
"""

from __future__ import annotations

from typing import Any

from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

FIRST = 64 * 1024  # the first buffer of a body, for what is already held or arrives first


class DirectBody:
    """The rest of a Body of known length, filled a piece at a time (`fill`) into buffers that grow with what
    arrived: a Content-Length is only what the client announces, and a buffer of that size allocated (and
    zeroed) before any of it came let a request head of a hundred bytes hold MAX_BODY_BYTES of the worker's
    memory until CLIENT_TIMEOUT (tests/reliability/test_direct_body.py)."""

    def __init__(self, stream: Body, size: int) -> None:
        self.stream = stream
        self.reader: LengthReader = stream.reader
        self.held = self.reader.unreader  # what Gunicorn read past the head (maybe past the body: pipelining)
        self.sock: Any = self.held.sock
        self.size = size
        self.full: list[memoryview] = []  # buffers filled
        self.view = memoryview(bytearray(0))  # the one being filled
        self.used = 0  # bytes of it filled
        self.got = 0

    def fill(self, most: int) -> memoryview:
        """The next bytes (at most `most`, at least one unless the client closed), read into the buffer: what
        Gunicorn holds first, then from the socket."""
        room = self._room()
        most = min(most, len(room))
        held = self.held.take_buffered()
        if held:
            count = min(len(held), most)
            if count < len(held):
                self.held.unread(held[count:])  # the rest of the body, or the next request's bytes
            room[:count] = held[:count]
        else:
            try:
                count = self.sock.recv_into(room[:most])
            except BaseException:
                self.stream.failed = True  # where the next request starts is unknown: Gunicorn will not reuse it
                raise
        self.used += count
        self.got += count
        self.reader.length -= count
        if self.got == self.size:
            self._hand_back_decrypted()
        return room[:count]

    def _room(self) -> memoryview:
        """The free part of the buffer being filled; a new one when it is full, as large as what arrived so far
        (FIRST at least, what is left at most): never more than twice what the client sent, plus FIRST."""
        if self.used == len(self.view):
            if self.used:
                self.full.append(self.view)
            self.view = memoryview(bytearray(min(self.size - self.got, max(FIRST, self.got))))
            self.used = 0
        return self.view[self.used:]

    def _hand_back_decrypted(self) -> None:
        """Over TLS, bytes past the body (a pipelined request) may already be decrypted and held by the TLS
        layer, where neither the kernel (its socket is not readable any more) nor Gunicorn sees them: Gunicorn's
        gthread worker then put the connection back on its poller and the next request waited until keep-alive
        timed out. Gunicorn's own reader reads past a body's end into its buffer; here they are moved there."""
        pending = getattr(self.sock, "pending", None)
        if pending is None:
            return
        try:
            waiting = pending()
            if waiting > 0:  # after what Gunicorn already holds past the body, if anything
                self.held.unread(self.held.take_buffered() + self.sock.recv(waiting))
        except (OSError, ValueError):  # a socket closed or shut meanwhile: the next read finds out
            pass

    def whole(self) -> bytes:
        """What was read, as bytes."""
        if not self.full:
            return bytes(self.view[:self.used])
        return b"".join([*self.full, self.view[:self.used]])


def direct_body(stream: Any, size: int) -> DirectBody | None:
    """A DirectBody for reading the `size` bytes left of Gunicorn's `stream`, or None when it is not a plain
    Body of known length over a socket with nothing read from it yet, or `size` is not all that is left."""
    if type(stream) is not Body or stream.buf.tell():
        return None
    reader = stream.reader
    if type(reader) is not LengthReader or reader.length != size or not isinstance(reader.unreader, SocketUnreader):
        return None
    return DirectBody(stream, size)
