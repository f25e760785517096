"""The stock transport (FAST_PATH=off, and the fast path's for hosts behind a proxy): requests used as its
authors intend, `Session.request(stream=True)`, bodies read with `iter_content` (StockResponse), where the
`responses` library can stand in for the upstream."""

from __future__ import annotations

from typing import Iterator

import requests
from requests.adapters import HTTPAdapter

from argoproxy.errors import ProxyError
from argoproxy.upstream.proxy_env import proxy_for
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
            if r.status_code == 407:
                proxy = proxy_for(req.url)
                if proxy.url:  # a plain-http upstream through a proxy: the proxy's own answer, not the upstream's
                    r.close()
                    raise ProxyError(502, f"The proxy {proxy.shown} refused the request: 407 Proxy Authentication "
                                          "Required (check the user and password in that variable).",
                                     code="proxy_auth_required")
        except BaseException:
            if owned is not None:
                owned.close()
            raise
        return StockResponse(r, req.url, max_bytes, owner=owned)


class StockResponse(UpstreamResponse):
    """An upstream answer over a stock requests.Response (Session.request(stream=True))."""

    __slots__ = ("response", "raw", "owner")

    def __init__(self, response: requests.Response, url: str, max_bytes: int = 0,
                 owner: requests.Session | None = None) -> None:
        super().__init__(url, max_bytes)
        self.response = response
        self.raw = response.raw
        self._carrier = response.raw.connection
        self.owner = owner  # a Session made for this answer alone (a fresh connection), closed with it

    def chunks(self, decode: bool = True) -> Iterator[bytes]:
        """Chunked bodies (every SSE stream) per chunk as it arrives, a chunk over CHUNK_PIECE in pieces of that
        size (a chunk's size is the upstream's to choose: read whole, one chunk could fill the worker's memory);
        other bodies per read of what has arrived (iter_content with a size would wait to fill it)."""
        raw = self.response.raw
        if raw.chunked and raw.supports_chunked_reads():
            yield from self.response.iter_content(chunk_size=CHUNK_PIECE) if decode \
                else raw.stream(CHUNK_PIECE, decode_content=False)
            return
        yield from read_arrived(raw, decode)

    def close(self) -> None:
        self.response.close()
        if self.owner is not None:
            self.owner.close()
