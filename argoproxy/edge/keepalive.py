"""SSE keepalive: comment lines (`: keepalive`) to a streaming client while its answer waits on the upstream.

Load balancers cut connections idle for longer than their read timeout (nginx and most cloud balancers: 60 s),
and a reasoning model or an ARGO pseudo-stream can be silent for minutes. Every SSE client ignores comment
lines, so the proxy sends one whenever nothing else was sent for `every` seconds.

A wait that blocks on the upstream cannot also write to the client, so the answer is made by a helper (a
thread; a greenlet under gevent: no OS thread per stream) that hands it over a small bounded queue
(edge/handoff.py); the request's own thread writes it, or a keepalive when the queue stays empty for
`every` seconds. Nothing changes for a fast upstream: when the answer starts within `every` seconds the client
gets the very same status, headers and bytes (an upstream error is still an HTTP error). Only when the upstream
is slower does the proxy commit to `200 text/event-stream` first; an error after that arrives as an SSE error
event, like any mid-stream error.

Under gevent the client's socket is watched meanwhile (`_Departure`): a client that leaves while the upstream
is silent (a local server reading a long prompt) was noticed only when a second keepalive could not be
written, 30 to 90 s on, while the upstream went on working for nobody (with one slot, the user's next request
waited behind it). Its socket turning readable with nothing left to read says it closed, and the upstream is
cut off at once. As nginx reads it, a client that shut only its sending side has gone too.

With threads the helper also reads the body and queues it piece by piece. Under gevent, given the server's
write() (PEP 3333, kept by edge/request_ids.ServerWrite), the helper stops at the answer's head and the
request's greenlet reads the body itself: a loop timer, armed only while it waits on the upstream, writes a
keepalive through write() from a greenlet of its own, and the next piece waits until that write is out. Two
greenlet switches and a queue fewer per relayed event (about 1.7 µs of its 18), and the last event of a stream
is written before the stream's bookkeeping runs instead of after it.
"""

from __future__ import annotations

import contextvars
import queue
from socket import MSG_PEEK
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional

from argoproxy.errors import ProxyError
from argoproxy.edge.http_objects import Answer
from argoproxy.edge.handoff import Channel, channel, start_helper
from argoproxy.polled_sockets import readable_now
from argoproxy.turns import under_gevent

KEEPALIVE = b": keepalive\n\n"
QUEUE_ITEMS = 64  # the helper reads at most this far ahead of a slow client (backpressure beyond it)
PIECE_BYTES = 64 * 1024  # a longer item is queued in pieces: the queue holds at most 4 MiB, whatever the events
BATCH_BYTES = 256 * 1024  # items already waiting are written together, up to this many bytes

_HEAD, _DATA, _END, _FAIL = range(4)

ErrorEvent = Callable[[ProxyError], bytes]
ServerWrite = Callable[[], Optional[Callable[[bytes], Any]]]


def streamed(make: Callable[[], Answer], every: float, headers: Iterable[tuple[str, str]],
             error_event: ErrorEvent, abort: Callable[[], None], beat: bytes = KEEPALIVE,
             server_write: ServerWrite | None = None) -> Answer:
    """The Answer `make()` builds (an SSE answer), with keepalives while it waits on its upstream.

    `headers`: what a stream committed before the upstream answered carries; `error_event`: the SSE event for
    an error after that; `abort`: cuts the upstream off when the client went away (a helper may be blocked
    reading it); `beat`: the keepalive bytes (a front door whose clients cannot skip comments sends a blank
    line); `server_write`: the server's write() once the answer started (under gevent the body is then read on
    the request's greenlet). Keepalives are transport filler: no worker class counts them in the answer's bytes."""
    items = channel(QUEUE_ITEMS, every)
    stop = threading.Event()
    head = _Head()
    abort = head.cutting(abort)
    beside = _Beside(every, beat, server_write, abort, getattr(server_write, "client", None)) \
        if server_write is not None and under_gevent() else None
    client = beside.client if beside is not None else None
    departure = _Departure(client, abort) if client is not None else None
    context = contextvars.copy_context()  # the request's context variables, in the helper too
    head.helper = start_helper(context.run, _produce, make, items, stop, beside is None, head)
    try:
        kind, value = items.get(timeout=every)
    except queue.Empty:  # the upstream is slow: commit to a stream now and keep the connection alive
        return Answer(_relay(items, every, stop, abort, error_event, beat, False, beside, departure), 200,
                      list(headers), direct_passthrough=True)
    except BaseException:  # a worker killing its greenlets
        if departure is not None:
            departure.close()
        raise
    if departure is not None:
        departure.close()  # from here the relay watches (beside), or nothing stays silent for long
    if kind == _FAIL:
        stop.set()
        raise client_left() if departure is not None and departure.fired else value
    answer: Answer = value  # the helper's whole answer
    answer.response = beside.relay(answer.chunks) if beside is not None else \
        _relay(items, every, stop, abort, error_event, beat, True, None)
    return answer


class _Head:
    """Whether the helper has its answer's head yet, and the helper (a greenlet under gevent).

    Cutting an upstream off means shutting its answer's socket (the `abort` the sequence hands in), and before
    the upstream's head arrives there is no answer to shut: Ollama and llama.cpp's server send their head with
    the first token, so a client that left while its long prompt was read left the helper waiting on the head
    until the read timeout, and the upstream working for nobody. Until the head is in, the cut kills the
    helper instead: urllib3 closes the connection it was waiting on (the upstream sees its client leave) and
    routing asks no other deployment. Under threads a thread cannot be killed: its read timeout ends it."""

    __slots__ = ("helper", "arrived")

    def __init__(self) -> None:
        self.helper: Any = None
        self.arrived = False

    def cutting(self, abort: Callable[[], None]) -> Callable[[], None]:
        def cut() -> None:
            abort()
            helper = self.helper
            if not self.arrived and helper is not None and not helper.dead:
                helper.kill(block=False)
        return cut


def _produce(make: Callable[[], Answer], items: Channel, stop: threading.Event, body_too: bool,
             head: _Head) -> None:
    """The helper: build the answer, then (body_too) hand its body over piece by piece."""
    try:
        response = make()
    except BaseException as exc:  # noqa: BLE001 - handed to the request's thread, which raises or reports it
        head.arrived = True
        items.put((_FAIL, exc))
        return
    head.arrived = True
    items.put((_HEAD, response))
    if not body_too:  # the request's side reads the body (_Beside), or closes it if it has left (_drain)
        return
    body = response.chunks
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
           error_event: ErrorEvent, beat: bytes, started: bool, beside: "_Beside | None",
           departure: "_Departure | None" = None) -> Iterator[bytes]:
    """The request's side: the helper's bytes as they come, a keepalive after `every` silent seconds (with
    `beside`, the body is read here once the helper handed over the answer's head; `departure` watches the
    client until then)."""
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
            elif beside is not None:  # _HEAD after an early commit: its status and headers are decided already
                ended = True
                if departure is not None:
                    departure.close()
                yield from beside.relay(value.chunks)
                return
    finally:
        if departure is not None:
            departure.close()
        stop.set()
        if not ended:  # the client left first: wake the helper if it is blocked on the upstream
            abort()
        _drain(items, beside is not None)


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


def _drain(items: Channel, heads_too: bool = False) -> None:
    """Empty the queue so a helper blocked on a full queue can see the stop and end; with heads_too (the helper
    stopped at the head, _Beside) an answer still queued for a client that left has its body closed."""
    while True:
        try:
            kind, value = items.get_nowait()
        except queue.Empty:
            return
        if kind == _HEAD and heads_too:
            close = getattr(value.chunks, "close", None)
            if close is not None:
                close()


def client_left() -> ProxyError:
    """What a call whose client left before its answer began ends with: nginx's 499, not the upstream's error
    that cutting the upstream off causes (a 502 would count against the upstream, and routing would cool its
    deployment down and ask the next one for nobody)."""
    return ProxyError(499, "The client closed its connection before the answer began.", code="client_closed_request")


def has_left(client: Any) -> bool:
    """A look at the client's socket, at once (a request waiting in admission's queue asks each time it looks at
    the queue): gone when it reads as closed or reset. A client still there sends nothing while it waits (a
    pipelined request is more to read: not a departure); a TLS socket takes no flags and is taken as there."""
    try:  # poll, not select: select refuses a descriptor past 1023 (a worker with a thousand clients)
        readable = readable_now(client)
    except (OSError, ValueError):  # closed already
        return True
    if not readable:
        return False
    try:
        return not client.recv(1, MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:  # reset
        return True
    except ValueError:
        return False


def watch_departure(client: Any, left: Callable[[], None]) -> Callable[[], None] | None:
    """Under gevent: `left` called once when the client has left (its socket watched by the hub: no looking while
    it stays); returns what stops the watch. None with threads."""
    return _Departure(client, left).close if under_gevent() else None


class _Departure:
    """Under gevent: the client's socket watched while its answer waits; when the client has left (its socket
    readable with nothing to read, or reset), `left` is called once (it cuts the upstream off). A client still
    there sends nothing while it waits for its answer (a pipelined request is more to read: not a departure)."""

    __slots__ = ("client", "left", "watch", "looking", "fired")

    def __init__(self, client: Any, left: Callable[[], None]) -> None:
        from gevent import get_hub
        self.client, self.left = client, left
        self.looking: Any = None
        self.fired = False
        self.watch: Any = get_hub().loop.io(client.fileno(), 1)
        self.watch.start(self._readable)

    def _readable(self) -> None:
        """In the hub: look once, from a greenlet of its own."""
        from gevent import spawn
        self.watch.stop()
        self.looking = spawn(self._look)

    def _look(self) -> None:
        from gevent import Timeout
        gone = False
        with Timeout(0.1, False):  # nothing to read after all (a spurious wake-up): still there
            try:
                gone = not self.client.recv(1, MSG_PEEK)
            except OSError:  # reset
                gone = True
            except ValueError:  # a TLS socket takes no flags: the keepalives tell instead
                pass
        self.looking = None
        if gone:
            self.fired = True
            self.left()

    def close(self) -> None:
        self.watch.close()
        if self.looking is not None:
            self.looking.kill(block=False)


class _Beside:
    """Under gevent: a stream's body read on the request's greenlet, keepalives written beside it through the
    server's write() while a read waits on the upstream, the client's socket watched for its leaving."""

    __slots__ = ("every", "beat", "server_write", "abort", "timer", "writer", "gone", "client")

    def __init__(self, every: float, beat: bytes, server_write: ServerWrite, abort: Callable[[], None],
                 client: Any = None) -> None:
        self.every, self.beat, self.server_write, self.abort = every, beat, server_write, abort
        self.timer: Any = None
        self.writer: Any = None  # the greenlet writing a keepalive now
        self.gone = False  # a keepalive could not be written: the client left
        self.client = client  # the client's socket (None outside Gunicorn)

    def relay(self, body: Iterable[bytes]) -> Iterator[bytes]:
        from gevent import get_hub
        chunks = iter(body)
        self.timer = get_hub().loop.timer(self.every, self.every)
        departure = _Departure(self.client, self._left) if self.client is not None else None
        ended = False
        try:
            while True:
                self.timer.again(self._due)
                try:
                    data = next(chunks)
                except StopIteration:
                    self._settled()
                    ended = True
                    return
                except Exception:  # noqa: BLE001 - a client gone during a keepalive cut the upstream off
                    if self._settled():
                        raise
                    ended = True
                    return
                if not self._settled():
                    return
                yield data
        finally:
            self.timer.close()
            if departure is not None:
                departure.close()
            if self.writer is not None:  # left by a BaseException in a read (a worker killing its greenlets)
                self.writer.kill(block=False)
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            if not ended and not self.gone:  # the client left first (a failed keepalive has cut the upstream)
                self.abort()

    def _settled(self) -> bool:
        """Stop the timer and let a keepalive being written finish; False when the client went away."""
        self.timer.stop()
        if self.writer is not None:
            self.writer.join()
        return not self.gone

    def _due(self) -> None:
        """In the hub, `every` seconds into a wait on the upstream: a greenlet writes the keepalive."""
        if self.writer is None and not self.gone:
            from gevent import spawn
            self.writer = spawn(self._write)

    def _left(self) -> None:
        self.gone = True
        self.abort()

    def _write(self) -> None:
        try:
            write = self.server_write()
            if write is not None:
                write(self.beat)
        except Exception:  # noqa: BLE001 - the client is gone (a reset, a closed socket): stop reading for it
            self.gone = True
            self.abort()
        finally:
            self.writer = None
