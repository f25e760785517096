"""SSE keepalive: comment lines (`: keepalive`) to a streaming client while its answer waits on the upstream.

Load balancers cut connections idle for longer than their read timeout (nginx and most cloud balancers: 60 s),
and a reasoning model or an ARGO pseudo-stream can be silent for minutes. Every SSE client ignores comment
lines, so the proxy sends one whenever nothing else was sent for `every` seconds.

A wait that blocks on the upstream cannot also write to the client, so the answer is produced by a helper
(a thread; a greenlet under gevent: no OS thread per stream) that hands its bytes over a small bounded queue
(pipeline/handoff.py); the request's own thread writes them, or a keepalive when the queue
stays empty for `every` seconds. Nothing changes for a fast upstream: when the answer starts within `every`
seconds the client gets the very same status, headers and bytes (an upstream error is still an HTTP error).
Only when the upstream is slower does the proxy commit to `200 text/event-stream` first; an error after that
arrives as an SSE error event, like any mid-stream error.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from typing import Callable, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.edge.http_objects import Answer
from argoproxy.pipeline.handoff import Channel, channel, start_helper

KEEPALIVE = b": keepalive\n\n"
QUEUE_ITEMS = 64  # the helper reads at most this far ahead of a slow client (backpressure beyond it)
PIECE_BYTES = 64 * 1024  # a longer item is queued in pieces: the queue holds at most 4 MiB, whatever the events
BATCH_BYTES = 256 * 1024  # items already waiting are written together, up to this many bytes

_HEAD, _DATA, _END, _FAIL = range(4)

ErrorEvent = Callable[[ProxyError], bytes]


def streamed(make: Callable[[], Answer], every: float, headers: Iterable[tuple[str, str]],
             error_event: ErrorEvent, abort: Callable[[], None], beat: bytes = KEEPALIVE) -> Answer:
    """The Answer `make()` builds (an SSE answer), with keepalives while it waits on its upstream.

    `headers`: what a stream committed before the upstream answered carries; `error_event`: the SSE event for
    an error after that; `abort`: wakes the helper from a blocking upstream read when the client went away;
    `beat`: the keepalive bytes (a front door whose clients cannot skip comments sends a blank line)."""
    items = channel(QUEUE_ITEMS, every)
    stop = threading.Event()
    context = contextvars.copy_context()  # the request's context variables, in the helper too
    start_helper(context.run, _produce, make, items, stop)
    try:
        kind, value = items.get(timeout=every)
    except queue.Empty:  # the upstream is slow: commit to a stream now and keep the connection alive
        return Answer(_relay(items, every, stop, abort, error_event, beat, started=False), 200, list(headers),
                        direct_passthrough=True)
    if kind == _FAIL:
        stop.set()
        raise value
    value.response = _relay(items, every, stop, abort, error_event, beat, started=True)
    return value


def _produce(make: Callable[[], Answer], items: Channel, stop: threading.Event) -> None:
    """The helper: build the answer, then hand its body over piece by piece."""
    try:
        response = make()
    except BaseException as exc:  # noqa: BLE001 - handed to the request's thread, which raises or reports it
        items.put((_FAIL, exc))
        return
    body = response.chunks
    items.put((_HEAD, response))
    first = True
    try:
        for data in body:
            if stop.is_set():
                return
            if len(data) <= PIECE_BYTES:
                if data:
                    items.put((_DATA, data))
                    if first:  # hand over at once: when the upstream sent much at once, the helper would
                        first = False  # otherwise decode up to QUEUE_ITEMS events before the first byte leaves
                        time.sleep(0)
                continue
            for start in range(0, len(data), PIECE_BYTES):  # 64 queued 16 MB events would be 1 GB
                if stop.is_set():  # the client left: nobody empties the queue any more, a put would block forever
                    return
                items.put((_DATA, data[start:start + PIECE_BYTES]))
        items.put((_END, None))
    except BaseException as exc:  # noqa: BLE001
        items.put((_FAIL, exc))
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _relay(items: Channel, every: float, stop: threading.Event, abort: Callable[[], None],
           error_event: ErrorEvent, beat: bytes, started: bool) -> Iterator[bytes]:
    """The request's side: the helper's bytes as they come, a keepalive after `every` silent seconds."""
    ended = False
    try:
        if not started:
            yield beat
        while True:
            try:
                kind, value = items.get(timeout=every)
            except queue.Empty:
                yield beat
                continue
            if kind == _DATA:
                yield _with_waiting(value, items)
            elif kind == _END:
                ended = True
                return
            elif kind == _FAIL:
                ended = True
                if isinstance(value, ProxyError) and not started:
                    yield error_event(value)  # the status line is gone: say it the way mid-stream errors are said
                    return
                raise value
            # _HEAD after an early commit: its status and headers are already decided.
    finally:
        stop.set()
        if not ended:  # the client left first: wake the helper if it is blocked on the upstream
            abort()
        _drain(items)


def _with_waiting(data: bytes, items: Channel) -> bytes:
    """`data` plus the data items already queued behind it (one write instead of several)."""
    if items.empty():
        return data
    parts, size = [data], len(data)
    while size < BATCH_BYTES:
        try:
            kind, value = items.queue[0]  # peek: only data is taken here
        except IndexError:
            break
        if kind != _DATA:
            break
        items.get_nowait()
        parts.append(value)
        size += len(value)
    return b"".join(parts)


def _drain(items: Channel) -> None:
    """Empty the queue so a helper blocked on a full queue can see the stop and end."""
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return
