"""The upstream client's fast path: the Session's own urllib3 pools used directly, and bodies read through
http.client directly.

requests' per-call preparation (merging settings, cookies, hooks, adapters) costs more CPU than the rest of
the proxy together, so `DirectPools.send` calls the pool requests would have picked, with the lean
connection classes of argoproxy.fastpath.connections. `PooledResponse` is the same interface as the stock
`argoproxy.upstream.stock.StockResponse`, over the bare urllib3 response.
"""

from __future__ import annotations

from typing import Generator, Iterator, cast

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.response import is_response_to_head

from argoproxy.fastpath.chunked import read_chunked
from argoproxy.fastpath.connections import LeanHTTPConnection, LeanHTTPSConnection
from argoproxy.fastpath.stall_timer import timed_reads
from argoproxy.upstream.proxy_env import ca_bundle, proxy_for
from argoproxy.upstream.urllib3_failures import LIBRARY_ERRORS, failure_from_urllib3
from argoproxy.upstream.wire import READ_SIZE, UpstreamRequest, UpstreamResponse, read_arrived

# urllib3 retries nothing itself (the proxy decides, in Upstream.send); one shared object, as urlopen builds one
# per call from retries=False.
NO_RETRIES = urllib3.Retry(total=False, redirect=False)
TIMEOUT_CACHE = 64  # distinct (connect, read) timeout objects kept
MAX_HOSTS = 256  # upstream hosts remembered per process


class DirectPools:
    """The pools of one requests.Session, by scheme://host:port, each with the lean connection class."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self._pools: dict[str, urllib3.HTTPConnectionPool | None] = {}  # None: reached through a proxy
        self._timeouts: dict[tuple[float, float], urllib3.Timeout] = {}

    def send(self, req: UpstreamRequest, timeout: tuple[float, float], max_bytes: int = 0) -> PooledResponse | None:
        """The answer, or None when the environment puts a proxy in front of this host (decided once per
        scheme://host:port, as requests decides): the caller then sends through requests itself."""
        scheme_host, path = _split_url(req.url)
        pool = self._pools.get(scheme_host)
        if (pool is None and scheme_host not in self._pools) or (pool is not None and pool.pool is None):
            # unseen, or closed (pool.pool is None once closed)
            pool = self._remember(scheme_host, None if proxy_for(req.url).url else self._pool_for(req.url))
        if pool is None:
            return None
        # preload_content=False: urllib3 answers with an HTTPResponse (its signature says BaseHTTPResponse)
        raw = cast(urllib3.HTTPResponse, pool.urlopen(
            req.method, path, body=req.body, headers=req.headers, retries=NO_RETRIES, redirect=False,
            assert_same_host=False, timeout=self.timeout_object(timeout), preload_content=False,
            decode_content=False, release_conn=False))
        return PooledResponse(raw, req.url, max_bytes)

    def timeout_object(self, timeout: tuple[float, float]) -> urllib3.Timeout:
        """A shared urllib3.Timeout per (connect, read) pair; the read part can come from a client's `timeout`
        field (ARGO), so the cache is kept bounded."""
        t = self._timeouts.get(timeout)
        if t is None:
            if len(self._timeouts) >= TIMEOUT_CACHE:
                self._timeouts.clear()
            t = self._timeouts[timeout] = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        return t

    def _remember(self, scheme_host: str, pool: urllib3.HTTPConnectionPool | None) -> urllib3.HTTPConnectionPool | None:
        if len(self._pools) >= MAX_HOSTS:
            self._pools.pop(next(iter(self._pools)))  # the oldest host is forgotten (its pool stays with requests)
        self._pools[scheme_host] = pool
        return pool

    def _pool_for(self, url: str) -> urllib3.HTTPConnectionPool:
        adapter = cast(HTTPAdapter, self.session.get_adapter(url))  # the Session's own: make_session mounts them
        probe = requests.Request("GET", url).prepare()
        pool = adapter.get_connection_with_tls_context(probe, verify=ca_bundle())
        pool.ConnectionCls = LeanHTTPSConnection if url.startswith("https:") else LeanHTTPConnection
        return pool


class PooledResponse(UpstreamResponse):
    """An upstream answer over the pooled urllib3 response (headers read, body not yet)."""

    __slots__ = ("_reader",)

    def __init__(self, raw: urllib3.HTTPResponse, url: str, max_bytes: int = 0) -> None:
        super().__init__(url, max_bytes, raw)
        self._reader: Generator[bytes, None, None] | None = None  # a chunked body's decoder, where the last read left it

    def chunks(self, decode: bool = True) -> Iterator[bytes]:
        """The body's pieces; what breaks a read is raised as the upstream failure family. The chunked reader
        times its own reads (fastpath/chunked.py); an unchunked body read whole (a read or two, held to its
        deadline by read_whole) keeps the socket's own timeout, as one timer for a stream would cost as much."""
        body = self._body(decode)
        if body is not self._reader and not (self.bounded and not self.raw.chunked):
            conn = self.raw._connection
            body = timed_reads(conn.sock if conn is not None else None, body)
        return _failing_as_the_family(body)

    def _body(self, decode: bool) -> Iterator[bytes]:
        raw = self.raw
        plain = not decode or raw.headers.get("Content-Encoding", "identity") == "identity"
        if raw.chunked and raw.supports_chunked_reads():
            if not plain or (raw._fp is not None and is_response_to_head(raw._fp)):
                # READ_SIZE at a time: a chunk read whole and then decoded was all in memory at once (a
                # 58 KB gzip chunk held a 60 MB event: 248 MB of the worker); urllib3 bounds each decoded piece too
                return raw.read_chunked(READ_SIZE, decode_content=decode)
            if self._reader is None:  # one decoder per body: drain() goes on where the stream's reads stopped
                self._reader = read_chunked(raw)
            return self._reader
        if plain:
            return _read_plain(raw)
        return read_arrived(raw, decode)

    def drain(self, seconds: float) -> None:
        """Read the end of a finished stream (its last chunk marker) so its connection can be reused; give up
        after `seconds` on an upstream that keeps the stream open (the connection is then dropped)."""
        try:
            conn = self.raw._connection
            if conn is not None and conn.sock is not None:
                conn.sock.settimeout(seconds)
            for _ in self.chunks():
                pass
        except Exception:  # noqa: BLE001 - a failed drain only costs the connection
            pass

    def close(self) -> None:
        """Return a fully read connection to the pool; drop one still carrying an unread body."""
        raw = self.raw
        if self._reader is not None:
            self._reader.close()  # stopped mid-body: urllib3's catcher drops the connection
        if not raw.isclosed() and raw._fp is not None and not raw._fp.isclosed():
            raw.close()
        raw.release_conn()


def _failing_as_the_family(body: Iterator[bytes]) -> Iterator[bytes]:
    """`body`, urllib3's exceptions raised as the upstream failure family. A for loop, not `yield from`:
    closing this must not close the chunked reader, which drain() goes on reading where a stream stopped."""
    try:
        for piece in body:
            yield piece
    except LIBRARY_ERRORS as exc:
        raise failure_from_urllib3(exc, in_body=True) from exc


def _read_plain(raw: urllib3.HTTPResponse) -> Iterator[bytes]:
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


def _split_url(url: str) -> tuple[str, str]:
    """("scheme://host:port", "/path?query") of an absolute URL."""
    slash = url.find("/", url.find("//") + 2)
    return (url, "/") if slash < 0 else (url[:slash], url[slash:])
