"""The client's request body as the views read it: within CLIENT_TIMEOUT, and with broken framing refused.

`ClientInput` is WSGI middleware that wraps ``wsgi.input`` for requests that carry a body:

* A client that stalls while sending its body gets a 408 (OpenAI error JSON) once CLIENT_TIMEOUT has passed
  since the body's first read (not the request's arrival: what the proxy does before it reads the body, a team
  key looked up in a slow Redis, is not the client's time), and its connection is closed: the socket's read side is shut, so the server
  finds no next request on it. Each socket read waits at most the time left. A client that drips bytes (each
  read returns soon, but the body never ends) is cut by the `Watchdog`, one thread (a greenlet under gevent) per
  worker process that shuts the read side of a body still unread at its deadline; the blocked read then
  returns and the request gets its 408.
* Malformed chunked framing (an invalid chunk size, a missing chunk terminator, a body cut short) is found by
  Gunicorn only while the body is read, i.e. inside a view: it becomes a 400 here instead of the 500 of an
  unexpected exception.

* A chunk size of 2^64 or more is a 400 (`fastpath.server_reach.limit_chunk_sizes`). Gunicorn reads any size (a Python int), so an
  announced size past what a 64-bit parser can hold left the body open until CLIENT_TIMEOUT; and a front proxy
  that wraps such a size around frames the body differently from Gunicorn (request smuggling).

* An obs-folded header (a line starting with a space or tab, continuing the previous header) is a 400. Gunicorn's
  C parser (gunicorn_h1c) lets it through as a header with an empty name (``HTTP_`` in the environ), which the
  proxy would otherwise forward as a broken header.

With FAST_PATH=on, a whole body of known length (what the proxy's routes read) goes from the socket into one
buffer (argoproxy/fastpath/gunicorn_body.py) instead of through Gunicorn's buffers, under the same deadline.

Requests without a body are not wrapped, and nothing is wrapped outside Gunicorn (no ``gunicorn.socket``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol, TypeVar
from wsgiref.types import InputStream

from argoproxy.edge.paths import raw_target
from argoproxy.edge.request_ids import ENVIRON_KEY as REQUEST_ID_KEY, WRITE_KEY
from argoproxy.errors import ProxyError, error_body
from argoproxy.fastpath.server_reach import client_socket, limit_chunk_sizes
from argoproxy.jsonfast import dumps
from argoproxy.per_process import PerProcess
from argoproxy.turns import turn

if TYPE_CHECKING:
    from argoproxy.fastpath.gunicorn_body import DirectBody

# Largest single read; the deadline is checked, and other requests get a turn, between pieces. As large as
# the largest recv Gunicorn makes for a body of known length (SocketUnreader.max_body_chunk): its reader
# returns a smaller piece by copying what it holds beyond it back into its buffer, so 64 KiB pieces of a 5 MiB
# body copied about 80 MiB (10 ms).
PIECE = 1024 * 1024

try:  # Gunicorn's body-parsing errors; absent when the app runs under another server
    from gunicorn.http.errors import NoMoreData, ParseException
    FRAMING_ERRORS: tuple[type[BaseException], ...] = (ParseException, NoMoreData)
except ImportError:  # pragma: no cover
    FRAMING_ERRORS = ()


class DoorShape(Protocol):
    """A front door's error shape (fronts/front.py: Front), as the door a request target names (Door.front_of)."""

    def error_body(self, status: int, err: dict[str, Any], request_id: str) -> dict[str, Any]: ...

    def id_headers(self, request_id: str) -> dict[str, str]: ...


class ClientInput:
    """WSGI middleware: ``wsgi.input`` bounded in time and translated into OpenAI errors. `door_of`: the door whose
    error shape answers a request target (None: OpenAI's), for the refusals made here before any view runs."""

    def __init__(self, app: Callable[..., Iterable[bytes]], timeout: float, fast_path: bool = False,
                 door_of: Callable[[str], DoorShape | None] | None = None) -> None:
        self.app = app
        self.timeout = timeout
        self.door_of = door_of
        self.direct: DirectReader | None = None
        if fast_path:  # a whole body of known length read straight from the socket (argoproxy/fastpath)
            from argoproxy.fastpath.gunicorn_body import direct_body
            self.direct = direct_body
        limit_chunk_sizes()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "HTTP_" in environ:
            return self.refuse_folded(environ, start_response)
        held = environ.get(WRITE_KEY)  # the socket request_ids.py took already, when it runs outside this
        sock = held.client if held is not None else client_socket(environ)
        if sock is None or not _has_body(environ):
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        known = length.isdigit() and "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        body = DeadlineBody(environ["wsgi.input"], sock, self.timeout, int(length) if known else None, self.direct)
        environ["wsgi.input"] = body
        try:
            return self.app(environ, start_response)
        finally:
            body.restore()
            if body.deadline is not None:
                Watchdog.get().forget(body)

    def refuse_folded(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """The 400 for an obs-folded header, in the shape of the door the request was for."""
        err = error_body("A request header is folded over several lines (obsolete line folding is not accepted).",
                         "invalid_request_error", None, "invalid_http_request")["error"]
        rid = environ.get(REQUEST_ID_KEY, "")  # set by edge/request_ids.py, outside this
        door = self.door_of(raw_target(environ)) if self.door_of is not None else None
        data = dumps(door.error_body(400, err, rid) if door is not None else {"error": {**err, "request_id": rid}})
        ids = door.id_headers(rid) if door is not None else {}
        start_response("400 BAD REQUEST", [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                           *ids.items()])
        return [data]


def _has_body(environ: dict[str, Any]) -> bool:
    length = environ.get("CONTENT_LENGTH")
    return bool(length and length != "0") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


# fastpath.gunicorn_body.direct_body: a reader filling one buffer with the rest of a body, or None
DirectReader = Callable[[InputStream, int], "DirectBody | None"]
Piece = TypeVar("Piece", bytes, memoryview)  # what one guarded read returns


class Watchdog(PerProcess):
    """Shuts the read side of request bodies still being read at their deadline (one per worker process).

    Every body has the same allowance (CLIENT_TIMEOUT) from its first read, when it is watched, so bodies reach
    their deadlines in the order they were watched: an insertion-ordered dict is the queue, and only its first
    entry is ever looked at. Watching and forgetting a body are a dict insert and delete."""

    TICK = 0.25  # longest sleep: a dripping client is cut at most this late

    def __init__(self) -> None:
        super().__init__()
        self.bodies: dict[int, DeadlineBody] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.run, name="cot_proxy-client-timeout", daemon=True).start()

    def watch(self, body: "DeadlineBody") -> None:
        with self.lock:
            self.bodies[id(body)] = body

    def forget(self, body: "DeadlineBody") -> None:
        with self.lock:
            self.bodies.pop(id(body), None)

    def run(self) -> None:
        while True:
            with self.lock:
                first = next(iter(self.bodies.values()), None)
            wait = self.TICK if first is None or first.deadline is None else first.deadline - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, self.TICK))
                continue
            if first is not None:
                self.forget(first)
                first.expire()


class DeadlineBody:
    """A file-like request body whose reads end at a deadline with a 408, and whose framing errors are 400s."""

    def __init__(self, stream: InputStream, sock: socket.socket, timeout: float, length: int | None = None,
                 direct: "DirectReader | None" = None) -> None:
        self.stream = stream
        self.direct = direct
        self.left = length  # bytes of a body of known length still to come (None: chunked)
        self.sock = sock
        self.timeout = timeout
        self.deadline: float | None = None  # set at the first read: CLIENT_TIMEOUT counts from there
        self.saved = _gettimeout(sock)
        self.done = False
        self.expired = False
        self.single_reads = False  # every read is one recv, bounded by the time left: no Watchdog needed

    def read(self, size: int | None = -1) -> bytes:
        if self.direct is not None and self.left and not self.done and (size is None or size < 0 or size >= self.left):
            whole = self.direct(self.stream, self.left)
            if whole is not None:
                return self._read_whole(whole)
        if size is None or size < 0:
            parts = []
            while chunk := self._read(PIECE):
                parts.append(chunk)
                turn()  # let other requests run (see below)
            return b"".join(parts)
        parts, left = [], size
        while left > 0:
            chunk = self._read(min(left, PIECE))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
            if left > 0:
                # A gevent read that finds data waiting returns without switching: a fast client's 30 MB body
                # held the worker for its whole read (argoproxy/turns.py).
                turn()
        return b"".join(parts)

    def _read_whole(self, body: DirectBody) -> bytes:
        """The rest of a body of known length, read into one buffer (fastpath.gunicorn_body.DirectBody), with
        the same deadline, turns and errors as piece-by-piece reads. Each piece is one recv waiting at most the
        time left, so the Watchdog has nothing to cut: a read it ended by shutting the socket would also end a
        TLS session mid-record, and the 408 could not be sent (gthread: the read runs in another thread)."""
        self.single_reads = True
        while self.left:  # counted down by _guarded; a fill never passes the end
            if not self._guarded(body.fill, min(self.left, PIECE)):
                break  # the client closed early: the caller sees a short body
            if self.left:
                turn()  # let other requests run (see read)
        if not self.left:
            self.restore()
        return body.whole()

    def readline(self, size: int | None = -1) -> bytes:
        return self._guarded(self.stream.readline, size if size is not None else -1)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _read(self, size: int) -> bytes:
        return self._guarded(self.stream.read, size)

    def _guarded(self, read: Callable[[int], Piece], size: int) -> Piece:
        if self.done:
            return read(size)
        if self.deadline is None:  # the first read: the client's allowance starts now, and the Watchdog's watch
            self.deadline = time.monotonic() + self.timeout
            Watchdog.get().watch(self)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._timed_out()
        try:
            self.sock.settimeout(left)
            data = read(size)
        except (socket.timeout, TimeoutError):
            raise self._timed_out() from None
        except FRAMING_ERRORS as exc:
            if self.expired:  # the watchdog shut the socket: the body was cut, not malformed
                raise self._timed_out() from None
            _shut_reading(self.sock)  # where the body ends is unknown: no request can follow on it
            raise ProxyError(400, f"The request body is malformed: {_framing_reason(exc)}.",
                             code="invalid_request_framing", headers={"Connection": "close"}) from None
        except OSError:
            if self.expired:  # gevent ends a read waiting on a socket shut in another greenlet with an error
                raise self._timed_out() from None
            raise
        if self.expired:
            raise self._timed_out()
        if self.left is not None:
            self.left -= len(data)
        if not data or (self.left is not None and self.left <= 0):
            # All of it read: the deadline is over. Left watched, the Watchdog shut the read side of a
            # connection whose request was merely slow to answer (a non-streamed completion longer than
            # CLIENT_TIMEOUT), and the next request on that kept-alive connection found it closed.
            self.restore()
        return data

    def expire(self) -> None:
        """The deadline passed while the body was still being read (called by the Watchdog): end the read."""
        if self.done or self.single_reads:
            return
        self.expired = True
        _shut_reading(self.sock)

    def _timed_out(self) -> ProxyError:
        _shut_reading(self.sock)  # the rest of the body will not be read: no request can follow on it
        self.restore()
        return ProxyError(408, f"The request body did not arrive within CLIENT_TIMEOUT ({self.timeout:g}s).",
                          code="client_timeout", headers={"Connection": "close"})

    def restore(self) -> None:
        if not self.done:
            self.done = True
            try:
                self.sock.settimeout(self.saved)
            except OSError:
                pass


def _shut_reading(sock: socket.socket) -> None:
    """Shut the read side of the client's connection, on a duplicate of its descriptor: over TLS the socket's
    own shutdown() also drops its TLS session (the standard library's and gevent's alike), and the 408 that
    follows went out unencrypted, which the client saw as a TLS error."""
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as raw:
            raw.shutdown(socket.SHUT_RD)
    except (OSError, ValueError):  # closed meanwhile
        pass


def _gettimeout(sock: socket.socket) -> float | None:
    try:
        return sock.gettimeout()
    except OSError:
        return None


def _framing_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    return {"InvalidChunkSize": "invalid chunk size", "ChunkMissingTerminator": "a chunk is missing its terminator",
            "InvalidChunkExtension": "invalid chunk extension", "NoMoreData": "it ended early"}.get(name, "bad framing")
