"""What goes to an upstream and what comes back, whichever transport carries it: UpstreamRequest, the
UpstreamResponse interface (the stock client's StockResponse and the fast path's PooledResponse implement it),
the bounded reads of its body, and the interim answers a transport reads past. No I/O of its own beyond
reading the response it is given (a whole body within a deadline: read_whole) and closing its connection."""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

import urllib3

from argoproxy.errors import ProxyError
from argoproxy.jsonfast import loads

if TYPE_CHECKING:
    from argoproxy.upstream.body_tap import BodyTap

DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024  # MAX_RESPONSE_BYTES' default
MAX_INTERIM = 8  # interim (1xx) answers read past before one answer (the fast path); more is an upstream gone wrong


class TooManyInterim(http.client.HTTPException):
    """An upstream that kept sending interim answers instead of its answer."""

    def __init__(self) -> None:
        super().__init__(f"more than {MAX_INTERIM} interim (1xx) answers and no answer")


@dataclass
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    timeout: float | None = None  # read timeout; None = the configured one
    extra: dict[str, Any] = field(default_factory=dict)
    # sent on a connection of its own, none of the pooled ones: the proxy's own second asking after a stream the
    # upstream ended with no data (DeploymentExchange.asked_whole), whose connection uvicorn closes a moment later
    fresh_connection: bool = False
    max_bytes: int = 0  # the most of its answer read whole; 0: MAX_RESPONSE_BYTES

    def with_headers(self, headers: dict[str, str]) -> UpstreamRequest:
        """This request with other headers (a copy of its fields as they are: dataclasses.replace, which runs
        __init__ field by field, costs 1 µs more on a traced request's path)."""
        copy = object.__new__(UpstreamRequest)
        copy.__dict__.update(self.__dict__)
        copy.headers = headers
        return copy


class UpstreamResponse:
    """An upstream answer, headers read and body not yet: the slice of requests.Response the proxy uses.
    The stock transport's StockResponse (upstream/stock.py) and the fast path's PooledResponse (fastpath/pool.py)
    implement it.

    A body read whole (``content``, or ``read_chunks`` once ``bounded`` is set) may be at most ``max_bytes``
    long, counted after decompression; beyond it the read stops with a 502 naming MAX_RESPONSE_BYTES."""

    __slots__ = ("url", "_content", "max_bytes", "bounded", "tap", "_carrier", "retried", "raw", "status_code",
                 "reason", "headers")

    def __init__(self, url: str, max_bytes: int = 0, raw: urllib3.HTTPResponse | None = None) -> None:
        self._carrier: Any = None  # the connection the answer came on (discard)
        self.url = url
        self._content: bytes | None = None
        self.max_bytes = max_bytes or DEFAULT_MAX_RESPONSE
        self.bounded = False  # set when the body is about to be read whole (answers, stream aggregation)
        self.tap: BodyTap | None = None  # journals: a body_tap.BodyTap every body byte read passes through
        self.retried = 0  # how many times the proxy asked again before this answer (Upstream.send)
        if raw is not None:  # its head copied once: attributes, not properties, as each is read several times
            self.raw = raw
            self._carrier = raw.connection
            self.status_code: int = raw.status
            self.reason: str = raw.reason or ""
            # case-insensitive, one entry per header line as received (urllib3's own: requests' merged dict
            # would join repeated headers such as Set-Cookie into one line)
            self.headers: urllib3.HTTPHeaderDict = raw.headers

    raw: urllib3.HTTPResponse  # the urllib3 response underneath

    @property
    def content(self) -> bytes:
        """The whole body, decoded (gzip/deflate) as requests would, up to max_bytes."""
        if self._content is None:
            self.bounded = True
            self._content = b"".join(read_chunks(self))
        return self._content

    def json(self) -> Any:
        return loads(self.content)

    def chunks(self, decode: bool = True) -> Iterator[bytes]:
        """Body bytes as they arrive (decoded from gzip/deflate unless decode is False)."""
        raise NotImplementedError

    def drain(self, seconds: float) -> None:
        """After the end of a stream's content: let the connection be reused if that costs at most `seconds`
        (here: it is dropped on close)."""

    def close(self) -> None:
        """Release the connection: back to the pool when the body was read, dropped otherwise."""
        raise NotImplementedError

    def discard(self) -> None:
        """Close the connection this answer came on rather than reuse it, even when its end was read and it went
        back to the pool (it then connects anew before its next use): a server that ended a stream with no
        data in it had failed, and uvicorn closes such a connection a moment later, as the next request may be
        going out on it. Only where nothing else can have taken it from the pool since its end was read (a
        gevent worker: no other greenlet ran); a thread of a gthread worker could be using it already."""
        self.close()
        if self._carrier is not None:
            self._carrier.close()

    def cut(self) -> None:
        """Shut the answer's connection both ways, so that a read blocked on it (another greenlet's or thread's)
        ends at once and the upstream sees its client leave. An answer closed already is left alone: its
        connection may be back in the pool, in another request's use."""
        if not self.raw.isclosed():
            try:
                self.raw.shutdown()
            except Exception:  # noqa: BLE001 - closed meanwhile, or never connected
                pass

    def __enter__(self) -> "UpstreamResponse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


READ_SIZE = 1 << 20  # at most this much per read; a read returns whatever has arrived, never waits to fill it


def read_arrived(raw: urllib3.BaseHTTPResponse, decode: bool) -> Iterator[bytes]:
    """An unchunked body per read of whatever has arrived (at most READ_SIZE), decoded unless decode is False."""
    while True:
        data = raw.read1(READ_SIZE, decode_content=decode)
        if not data:
            return
        yield data


def read_chunks(resp: UpstreamResponse, decode: bool = True) -> Iterator[bytes]:
    """Body bytes as they arrive: per upstream chunk for chunked bodies, per socket read otherwise.
    A bounded response is cut with a 502 once it passes its max_bytes (a stream relayed as it arrives is not)."""
    chunks = resp.chunks(decode)
    if resp.tap is not None:
        chunks = resp.tap.tapped(chunks)
    if resp.bounded:
        return _bounded(resp, chunks)
    return chunks


def read_whole(resp: UpstreamResponse, limit: float) -> bytes:
    """A whole body, read within `limit` seconds in total (give or take one read): the per-read timeout alone
    would let a server that drips a byte a second hold a worker for hours."""
    deadline = time.monotonic() + limit
    parts = []
    for data in read_chunks(resp):
        parts.append(data)
        if time.monotonic() > deadline:
            raise ProxyError(504, f"The upstream server did not finish its answer within {limit:g}s.",
                             code="upstream_timeout")
    return b"".join(parts)


def _bounded(resp: UpstreamResponse, chunks: Iterator[bytes]) -> Iterator[bytes]:
    limit = resp.max_bytes
    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit and resp.headers.get("Content-Encoding", "identity") == "identity":
        raise too_large(resp, limit)
    size = 0
    for data in chunks:
        size += len(data)
        if size > limit:
            raise too_large(resp, limit)
        yield data


def too_large(resp: UpstreamResponse, limit: int) -> ProxyError:
    """The 502 for an answer longer than MAX_RESPONSE_BYTES; the connection is dropped, not drained."""
    resp.raw.close()
    return ProxyError(502, f"The upstream answer from {describe_host(resp.url)} is larger than MAX_RESPONSE_BYTES "
                           f"({limit} bytes).", code="upstream_response_too_large")


def describe_host(url: str) -> str:
    """host:port of a URL, without credentials, path or query: safe to show a user."""
    parts = urlsplit(url)
    host = parts.hostname or "upstream"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{host}:{port}"


def framed(resp: UpstreamResponse) -> bool:
    """Did the answer say where its body ends (chunked, or a Content-Length)? Without either it ends when the
    connection closes, so an answer whose head was cut short by a close reads as a whole empty one."""
    headers = resp.headers
    return "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()


def unframed_end(err: ProxyError) -> ProxyError:
    """A stream that ended before its first event on a connection closed without framing: perhaps a head cut
    short, the request perhaps processed, so it is not asked again (a POST is sent twice only when replayable)."""
    return ProxyError(502, f"{err.message} The connection closed without the answer saying where it ends, so "
                           "the request was not sent again.", code="upstream_disconnected")
