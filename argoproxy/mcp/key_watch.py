"""A team key's tool call answered as an SSE stream, watched while it runs (docs/mcp.md, "Keys"): a key revoked
(or expired, or no longer in the store) ends its open streams within about a second, as the door refuses its
new requests.

The key is asked of the team keys service the way the door asks it (TeamKeys.lookup: its cache, read again
every CACHE_SECONDS), at most every CHECK_SECONDS: between the stream's events, and on a timer while the stream
is silent. A silent stream's wait on the server cannot also look at a clock, so a helper (a greenlet under
gevent, else a thread: edge/handoff.py) reads the server's stream and hands its events over a small bounded
queue, whose wait the timer bounds. Calls without a team key are not watched: nothing of this runs for them.

The endpoint then cancels the call on its server (as a client's notifications/cancelled does) and ends the
stream with KEY_REFUSED, a JSON-RPC error of the proxy's own (-32041, as HTTP's 401, beside LIMITED's -32029 as
429): the client's next request gets the door's 401.
"""

from __future__ import annotations

import queue
import time
from typing import Any, Iterator

from argoproxy.edge.handoff import channel, start_helper
from argoproxy.errors import ProxyError
from argoproxy.teamkeys.service import TeamKeys
from argoproxy.turns import under_gevent

KEY_REFUSED = -32041
CHECK_SECONDS = 0.25  # the most often a stream's key is asked (the service's cache answers most of them)
QUEUE_ITEMS = 64  # events read ahead of a slow client at most (backpressure on the server's stream beyond it)
_END = object()


class KeyWithdrawn(str):
    """Why the watched key is no longer accepted: the last item a watched stream yields."""


class KeyWatch:
    def __init__(self, keys: TeamKeys, presented: tuple[str, ...]) -> None:
        self.keys, self.presented = keys, presented
        self.due = time.monotonic() + CHECK_SECONDS

    def refusal(self) -> str | None:
        """Why the key is refused now (as the door would refuse it), or None; asked at most every CHECK_SECONDS."""
        now = time.monotonic()
        if now < self.due:
            return None
        self.due = now + CHECK_SECONDS
        try:
            record = self.keys.lookup(self.presented)
        except ProxyError as err:  # the store cannot say, and no look-up within KEY_CACHE_SECONDS stands in
            return str(err.message)
        if record is None:
            return "This API key is no longer known."
        return self.keys.refusal(record)


def watched(stream: Iterator[dict[str, Any]], watch: KeyWatch) -> Iterator[dict[str, Any] | KeyWithdrawn]:
    """The stream's items as they come; once the key is refused, a KeyWithdrawn (last) instead of what is left."""
    items = channel(QUEUE_ITEMS, CHECK_SECONDS)
    stopped: list[bool] = []  # set when the reader leaves (threads: the helper stops at its next item)
    helper = start_helper(_relay, stream, items, stopped)
    try:
        while True:
            try:
                item = items.get(timeout=CHECK_SECONDS)
            except queue.Empty:
                item = None
            if item is _END:
                return
            refusal = watch.refusal()
            if refusal:
                yield KeyWithdrawn(refusal)
                return
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                yield item
    finally:
        stopped.append(True)
        if helper is not None:
            helper.kill(block=False)  # its read of the server's stream ends here (its socket closed)


def _relay(stream: Iterator[dict[str, Any]], items: Any, stopped: list[bool]) -> None:
    """The helper: the stream's items into the queue, then _END (or what the stream raised)."""
    put = items.put if under_gevent() else (lambda item: _put_unless_stopped(items, item, stopped))
    try:
        for item in stream:
            if stopped:
                break
            put(item)
    except Exception as exc:  # noqa: BLE001 - raised again on the reader's side
        put(exc)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    put(_END)


def _put_unless_stopped(items: "queue.Queue[Any]", item: Any, stopped: list[bool]) -> None:
    """A thread's put that gives up once the reader has left (a full queue nobody reads would hold it forever)."""
    while not stopped:
        try:
            items.put(item, timeout=CHECK_SECONDS)
            return
        except queue.Full:
            continue
