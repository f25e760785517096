"""The upstream client: one pooled requests.Session per worker process, retries before the first byte,
and the translation of transport failures into errors a user can act on (never echoing URLs or keys)."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from argoproxy.connections import LeanHTTPConnection, LeanHTTPSConnection, install_header_parser
from argoproxy.errors import ProxyError

log = logging.getLogger(__name__)

# What reading an upstream body can raise when the connection breaks or stalls.
READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
# What sending a request can raise before any answer arrived.
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024  # MAX_RESPONSE_BYTES' default
TIMEOUT_CACHE = 64  # distinct (connect, read) timeout objects kept
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_BASE = 0.25  # seconds; doubled per attempt, capped, with full jitter
BACKOFF_CAP = 4.0
RETRY_AFTER_BUDGET = 10.0  # a longer Retry-After is passed to the client instead of waited for
RETRY_BUDGET = 15.0  # no new attempt starts this long after the first: retries must not multiply timeouts
# urllib3 retries nothing itself (the proxy decides, above); one shared object, as urlopen builds one per call
# from retries=False.
NO_RETRIES = urllib3.Retry(total=False, redirect=False)


@dataclass
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    timeout: float | None = None  # read timeout; None = the configured one
    extra: dict[str, Any] = field(default_factory=dict)


def make_session(pool_size: int) -> requests.Session:
    """A Session without requests' default headers (the client's own are forwarded) and with a large pool."""
    session = requests.Session()
    session.headers.clear()
    # Environment proxies are read once here; per-request lookups cost CPU on every call.
    session.proxies.update(requests.utils.getproxies())
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=16, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Upstream:
    """Sends requests upstream with connect/read timeouts and capped, jittered retries."""

    def __init__(self, connect_timeout: float, read_timeout: float, max_retries: int, pool_size: int = 1024,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE) -> None:
        install_header_parser()
        self.max_response_bytes = max_response_bytes
        self.session = make_session(pool_size)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}
        self._timeouts: dict[tuple[float, float], urllib3.Timeout] = {}

    def send(self, req: UpstreamRequest) -> UpstreamResponse:
        """The upstream response, headers read and body not yet; raises ProxyError for transport failures."""
        timeout = (self.connect_timeout, req.timeout or self.read_timeout)
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                resp = self._send_once(req, timeout)
            except TRANSPORT_ERRORS as exc:
                delay = _backoff(attempt + 1)
                if self._may_retry(attempt, started, delay) and _retryable_exception(exc):
                    attempt += 1
                    _sleep(delay)
                    continue
                raise transport_error(exc, req.url, timeout) from None
            if resp.status_code in RETRY_STATUSES and attempt < self.max_retries:
                delay = _retry_delay(resp, attempt + 1)
                if delay is not None and self._may_retry(attempt, started, delay):
                    resp.close()
                    attempt += 1
                    log.info("upstream answered %s; retry %d in %.2fs", resp.status_code, attempt, delay)
                    _sleep(delay)
                    continue
            return resp

    def _may_retry(self, attempt: int, started: float, delay: float) -> bool:
        return attempt < self.max_retries and time.monotonic() - started + delay < RETRY_BUDGET

    def _send_once(self, req: UpstreamRequest, timeout: tuple[float, float]) -> UpstreamResponse:
        if self.session.proxies:  # proxies from the environment: let requests route through them
            r = self.session.request(req.method, req.url, headers=req.headers, data=req.body, stream=True,
                                     timeout=timeout, allow_redirects=False)
            return UpstreamResponse(r.raw, req.url, self.max_response_bytes)
        # The Session's own connection pool, used directly: requests' per-call preparation (merging settings,
        # cookies, hooks) costs more CPU than the rest of the proxy together.
        scheme_host, path = _split_url(req.url)
        pool = self._pools.get(scheme_host)
        if pool is None or pool.pool is None:
            pool = self._pools[scheme_host] = self._pool_for(req.url)
        raw = pool.urlopen(req.method, path, body=req.body, headers=req.headers, retries=NO_RETRIES,
                           redirect=False, assert_same_host=False, timeout=self.timeout_object(timeout),
                           preload_content=False,
                           decode_content=False, release_conn=False)
        return UpstreamResponse(raw, req.url, self.max_response_bytes)

    def timeout_object(self, timeout: tuple[float, float]) -> urllib3.Timeout:
        """A shared urllib3.Timeout per (connect, read) pair; the read part can come from a client's `timeout`
        field (ARGO), so the cache is kept bounded."""
        t = self._timeouts.get(timeout)
        if t is None:
            if len(self._timeouts) >= TIMEOUT_CACHE:
                self._timeouts.clear()
            t = self._timeouts[timeout] = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        return t

    def _pool_for(self, url: str) -> urllib3.HTTPConnectionPool:
        adapter = self.session.get_adapter(url)
        probe = requests.Request("GET", url).prepare()
        pool = adapter.get_connection_with_tls_context(probe, verify=True)
        pool.ConnectionCls = LeanHTTPSConnection if url.startswith("https:") else LeanHTTPConnection
        return pool


class UpstreamResponse:
    """The slice of requests.Response the proxy uses, over the pooled urllib3 response.

    A body read whole (``content``, or ``read_chunks`` once ``bounded`` is set) may be at most ``max_bytes``
    long, counted after decompression; beyond it the read stops with a 502 naming MAX_RESPONSE_BYTES."""

    __slots__ = ("raw", "url", "_content", "max_bytes", "bounded")

    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str, max_bytes: int = 0) -> None:
        self.raw = raw
        self.url = url
        self._content: bytes | None = None
        self.max_bytes = max_bytes or DEFAULT_MAX_RESPONSE
        self.bounded = False  # set when the body is about to be read whole (answers, stream aggregation)

    @property
    def status_code(self) -> int:
        return self.raw.status

    @property
    def reason(self) -> str:
        return self.raw.reason or ""

    @property
    def headers(self) -> urllib3.HTTPHeaderDict:
        return self.raw.headers

    @property
    def content(self) -> bytes:
        """The whole body, decoded (gzip/deflate) as requests would, up to max_bytes."""
        if self._content is None:
            self.bounded = True
            self._content = b"".join(read_chunks(self))
        return self._content

    def json(self) -> Any:
        return json.loads(self.content)

    def close(self) -> None:
        """Return a fully read connection to the pool; drop one still carrying an unread body."""
        raw = self.raw
        if not raw.isclosed() and raw._fp is not None and not raw._fp.isclosed():
            raw.close()
        raw.release_conn()

    def __enter__(self) -> "UpstreamResponse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


READ_SIZE = 1 << 20  # at most this much per read; a read returns whatever has arrived, never waits to fill it


def read_chunks(resp: UpstreamResponse, decode: bool = True) -> Iterator[bytes]:
    """Body bytes as they arrive: per upstream chunk for chunked bodies, per socket read otherwise.
    A bounded response is cut with a 502 once it passes its max_bytes (a stream relayed as it arrives is not)."""
    if resp.bounded:
        return _bounded(resp, _chunks(resp, decode))
    return _chunks(resp, decode)


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


def _chunks(resp: UpstreamResponse, decode: bool) -> Iterator[bytes]:
    raw = resp.raw
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.read_chunked(decode_content=decode)
        return
    if not decode or raw.headers.get("Content-Encoding", "identity") == "identity":
        yield from _read_plain(raw)
        return
    while True:
        data = raw.read1(READ_SIZE, decode_content=decode)
        if not data:
            return
        yield data


def _read_plain(raw: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """A body without transfer or content coding, read through http.client directly (urllib3's per-read
    bookkeeping costs more than the read); a body that ends before its Content-Length is an error."""
    fp = raw._fp
    if fp is None:
        return
    while True:
        data = fp.read1(READ_SIZE)
        if not data:
            if fp.length:
                raise urllib3.exceptions.ProtocolError(f"Connection broken: {fp.length} bytes of the body missing")
            return
        yield data
        if fp.length == 0:
            fp.read()  # reads nothing; marks the response complete so the connection goes back to the pool
            return


def _retryable_exception(exc: Exception) -> bool:
    """Only failures where the request cannot have reached the model: no connection was made."""
    u3 = urllib3.exceptions
    if isinstance(exc, u3.NameResolutionError):
        return False
    if isinstance(exc, (u3.NewConnectionError, u3.ConnectTimeoutError, requests.ConnectTimeout)):
        return True
    return isinstance(exc, requests.ConnectionError) and not isinstance(
        exc, (requests.ReadTimeout, requests.exceptions.SSLError)) and _connection_refused(exc)


def _connection_refused(exc: Exception) -> bool:
    text = repr(exc)
    return "Connection refused" in text or "ConnectionRefused" in text or "NewConnectionError" in text


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def _retry_delay(resp: UpstreamResponse, attempt: int) -> float | None:
    """How long to wait before retrying this answer, or None when it should go to the client as is."""
    retry_after = resp.headers.get("Retry-After")
    if retry_after is None:
        return None if resp.status_code == 429 else _backoff(attempt)
    seconds = parse_retry_after(retry_after)
    if seconds is None or seconds > RETRY_AFTER_BUDGET:
        return None
    return seconds


def parse_retry_after(value: str) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _split_url(url: str) -> tuple[str, str]:
    """("scheme://host:port", "/path?query") of an absolute URL."""
    slash = url.find("/", url.find("//") + 2)
    return (url, "/") if slash < 0 else (url[:slash], url[slash:])


def describe_host(url: str) -> str:
    """host:port of a URL, without credentials, path or query: safe to show a user."""
    parts = urlsplit(url)
    host = parts.hostname or "upstream"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{host}:{port}"


def transport_error(exc: Exception, url: str, timeout: tuple[float, float]) -> ProxyError:
    """A transport failure as the error the client gets: 504 for timeouts, 502 for the rest."""
    where = describe_host(url)
    text = repr(exc)
    u3 = urllib3.exceptions
    if isinstance(exc, u3.NameResolutionError) or "NameResolutionError" in text or "Name or service not known" in text \
            or "Temporary failure in name resolution" in text or "nodename nor servname" in text:
        return ProxyError(502, f"Cannot resolve the upstream host {where.rsplit(':', 1)[0]}: check the target URL.",
                          code="upstream_dns_error")
    if isinstance(exc, (u3.SSLError, requests.exceptions.SSLError)):
        return ProxyError(502, f"TLS verification failed for the upstream server {where}.", code="upstream_tls_error")
    if "refused" in text.lower():
        return ProxyError(502, f"The upstream server {where} refused the connection: is it running?",
                          code="upstream_connection_refused")
    if isinstance(exc, (requests.ConnectTimeout, u3.ConnectTimeoutError)) and not isinstance(exc, u3.NewConnectionError) \
            or "timed out" in text and isinstance(exc, u3.NewConnectionError):
        return ProxyError(504, f"Timed out connecting to the upstream server {where} after {timeout[0]:g}s.",
                          code="upstream_connect_timeout")
    if isinstance(exc, (requests.ReadTimeout, u3.ReadTimeoutError, TimeoutError)):
        return ProxyError(504, f"The upstream server {where} did not answer within {timeout[1]:g}s.",
                          code="upstream_timeout")
    if isinstance(exc, (u3.NewConnectionError, requests.ConnectionError)) and not isinstance(exc, u3.ProtocolError):
        return ProxyError(502, f"Failed to connect to the upstream server {where}.", code="upstream_connection_error")
    if isinstance(exc, (u3.ProtocolError, ConnectionError)):
        return ProxyError(502, f"The upstream server {where} closed the connection without answering.",
                          code="upstream_disconnected")
    return ProxyError(502, f"Failed to forward the request to {where}.", code="upstream_error")


def stream_error(exc: Exception, url: str, read_timeout: float) -> ProxyError:
    """A failure while reading an upstream body that had already started."""
    where = describe_host(url)
    if isinstance(exc, (requests.ReadTimeout, TimeoutError, urllib3.exceptions.TimeoutError)) \
            or "timed out" in repr(exc).lower():
        return ProxyError(504, f"The upstream server {where} stalled for more than {read_timeout:g}s mid-response.",
                          code="upstream_timeout")
    return ProxyError(502, f"The upstream server {where} broke off the response.", code="upstream_disconnected")
