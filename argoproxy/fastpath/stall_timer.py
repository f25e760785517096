"""A streamed upstream body read under gevent with one timer for the whole stream instead of one per read.

gevent's cooperative socket makes, starts and closes a `Timeout` for every read that has to wait when the socket
has a timeout: at 5 ms between events every read waits, and that was about 2.5 µs of a relayed event's 24. A
stream read here lifts the socket's timeout and keeps one loop timer, started before each read and stopped after
it; when it fires, the reading greenlet gets the `socket.timeout` the socket itself would have raised, from the
same place, so urllib3 and the proxy see the same error as before (a read that waits longer than the read
timeout). Time the consumer spends with a chunk is not counted, as before. Outside gevent nothing changes.

What the timer bounds is one step of the body iterator, not one socket read: for a chunked body a whole HTTP
chunk (urllib3 reads it to its end), for a compressed one the reads until some text decodes. An upstream whose
one chunk takes longer than the read timeout to arrive, every read of it within the timeout, got through
before and is now cut with the same socket.timeout (a stream's event, and a whole answer, were already held to
the read timeout by split_events and read_whole; a relayed passthrough body sent as one big chunk was not).

urllib3 sets the socket's timeout again for the next request on the connection (`HTTPConnection.getresponse`).
"""

from __future__ import annotations

import socket
from typing import Any, Iterator

from argoproxy.turns import under_gevent


def timed_reads(sock: Any, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """`chunks` (reads of `sock`), each step within the socket's timeout, on one timer under gevent."""
    timeout = sock.gettimeout() if sock is not None else None
    if not timeout or not under_gevent():
        yield from chunks
        return
    timer = StallTimer(sock)
    try:
        while True:
            timer.start()
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                timer.stop()
            yield chunk
    finally:
        timer.close()


class StallTimer:
    """Under gevent: one loop timer standing in for `sock`'s timeout (lifted here) for one reading greenlet,
    started before each wait and stopped after it; when it fires the reader gets the socket.timeout its read
    would have raised. Without a timeout on the socket it does nothing."""

    __slots__ = ("timer", "current")

    def __init__(self, sock: Any) -> None:
        timeout = sock.gettimeout()
        self.timer: Any = None
        if timeout:
            from gevent import get_hub, getcurrent
            self.timer = get_hub().loop.timer(timeout)
            self.current = getcurrent
            sock.settimeout(None)

    def start(self) -> None:
        if self.timer is not None:
            self.timer.start(_expire, self.current(), update=True)  # from now, not the loop's cached time

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.stop()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.close()


def _expire(reader: Any) -> None:
    """The timer fired while `reader` waited on the socket: raise there what the socket would have raised."""
    reader.throw(socket.timeout("timed out"))
