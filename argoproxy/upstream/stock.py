"""The stock transport (FAST_PATH=off, and the fast path's for hosts behind a proxy): requests used as its
authors intend, `Session.request(stream=True)`, bodies read with `iter_content` (StockResponse), where the
`responses` library can stand in for the upstream. What requests raises leaves here as the upstream failure
family (failures.py), requests' wrappers taken off and urllib3's error inside mapped by urllib3_failures.py."""

from __future__ import annotations

from typing import Iterator

import requests
from requests.adapters import HTTPAdapter

from argoproxy.upstream.failures import ConnectTimeout, ProxyAuthRequired, ProxyFailure, ProxyUnsupported, \
    ReadTimeout, TlsFailure, UpstreamFailure
from argoproxy.upstream.proxy_env import proxy_for
from argoproxy.upstream.urllib3_failures import LIBRARY_ERRORS, failure_from_urllib3
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse, read_arrived

CHUNK_PIECE = 256 * 1024  # at most this much of one upstream chunk at a time (fastpath/chunked.py: READ_SIZE)


def make_session(pool_size: int) -> requests.Session:
    """A Session without requests' default headers (the client's own are forwarded), pooling `pool_size`
    connections per host.
    It reads the environment as requests does (proxies, NO_PROXY, REQUESTS_CA_BUNDLE); the fast path makes
    the same decision once per upstream host and leaves proxied hosts to this Session."""
    session = requests.Session()
    session.headers.clear()
    adapter = HTTPAdapter(pool_connections=16, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class StockTransport:
    """One attempt through a requests Session (a Transport: argoproxy/upstream/transport.py)."""

    __slots__ = ("session",)

    def __init__(self, session: requests.Session) -> None:
        self.session = session

    def send(self, req: UpstreamRequest, timeout: tuple[float, float], max_bytes: int) -> UpstreamResponse:
        owned = make_session(1) if req.fresh_connection else None  # a Session of one, closed with the answer
        session = owned or self.session
        try:
            r = session.request(req.method, req.url, headers=req.headers, data=req.body, stream=True,
                                timeout=timeout, allow_redirects=False)
            if r.status_code == 407 and proxy_for(req.url).url:
                r.close()  # a plain-http upstream through a proxy: the proxy's own answer, not the upstream's
                raise ProxyAuthRequired()
        except BaseException as exc:
            if owned is not None:
                owned.close()
            if isinstance(exc, STOCK_ERRORS):
                raise failure_from_requests(exc, req.url) from exc
            raise
        return StockResponse(r, req.url, max_bytes, owner=owned)


# What requests and the libraries under it raise (requests' own are OSErrors too).
STOCK_ERRORS = (requests.RequestException, *LIBRARY_ERRORS)
# requests' own exceptions with no library error inside them (a library's is taken out and mapped instead).
REQUESTS_ONLY = ((requests.ConnectTimeout, ConnectTimeout), (requests.ReadTimeout, ReadTimeout),
                 (requests.exceptions.SSLError, TlsFailure), (requests.exceptions.ProxyError, ProxyFailure))


def failure_from_requests(exc: BaseException, url: str, in_body: bool = False) -> UpstreamFailure:
    """The failure family member for what requests raised sending to (or reading from) `url`: a proxy whose
    scheme it cannot speak (socks without PySocks, said as InvalidSchema) is named as such."""
    if isinstance(exc, requests.RequestException) and not in_body and _unsupported_proxy(url):
        return ProxyUnsupported()
    inner = exc.args[0] if isinstance(exc, requests.RequestException) and exc.args else None
    if isinstance(inner, BaseException):
        return failure_from_urllib3(inner, in_body)
    if isinstance(exc, requests.RequestException):
        return next((failure() for kind, failure in REQUESTS_ONLY if isinstance(exc, kind)), UpstreamFailure())
    return failure_from_urllib3(exc, in_body)


def _unsupported_proxy(url: str) -> bool:
    proxy = proxy_for(url).url
    return "://" in proxy and not proxy.lower().startswith(("http://", "https://"))


class StockResponse(UpstreamResponse):
    """An upstream answer over a stock requests.Response (Session.request(stream=True))."""

    __slots__ = ("response", "owner")

    def __init__(self, response: requests.Response, url: str, max_bytes: int = 0,
                 owner: requests.Session | None = None) -> None:
        super().__init__(url, max_bytes, response.raw)
        self.response = response
        self.owner = owner  # a Session made for this answer alone (a fresh connection), closed with it

    def chunks(self, decode: bool = True) -> Iterator[bytes]:
        """Chunked bodies (every SSE stream) per chunk as it arrives, a chunk over CHUNK_PIECE in pieces of that
        size (a chunk's size is the upstream's to choose: read whole, one chunk could fill the worker's memory);
        other bodies per read of what has arrived (iter_content with a size would wait to fill it)."""
        raw = self.response.raw
        try:
            if raw.chunked and raw.supports_chunked_reads():
                yield from self.response.iter_content(chunk_size=CHUNK_PIECE) if decode \
                    else raw.stream(CHUNK_PIECE, decode_content=False)
                return
            yield from read_arrived(raw, decode)
        except STOCK_ERRORS as exc:
            raise failure_from_requests(exc, self.url, in_body=True) from exc

    def close(self) -> None:
        self.response.close()
        if self.owner is not None:
            self.owner.close()
