"""The fast path's upstream transport (FAST_PATH=on): an attempt goes out through the Session's own urllib3
pools (pool.DirectPools), and through the stock transport where requests' own handling is needed: a host the
environment puts behind a proxy, and a request that asks for a connection of its own. A Transport
(argoproxy/upstream/transport.py); serve/build.py hands it to the upstream client. urllib3's exceptions leave it
as the upstream failure family (upstream/failures.py), mapped by type (upstream/urllib3_failures.py); the
stock transport maps its own."""

from __future__ import annotations

import requests

from argoproxy.fastpath.pool import DirectPools
from argoproxy.upstream.stock import StockTransport
from argoproxy.upstream.urllib3_failures import LIBRARY_ERRORS, failure_from_urllib3
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse


class FastTransport:
    __slots__ = ("pools", "stock")

    def __init__(self, session: requests.Session) -> None:
        self.pools = DirectPools(session)
        self.stock = StockTransport(session)

    def send(self, req: UpstreamRequest, timeout: tuple[float, float], max_bytes: int) -> UpstreamResponse:
        if not req.fresh_connection:
            try:
                pooled = self.pools.send(req, timeout, max_bytes)
            except LIBRARY_ERRORS as exc:
                raise failure_from_urllib3(exc) from exc
            if pooled is not None:
                return pooled  # None: a proxy applies to this host, which requests' own path handles
        return self.stock.send(req, timeout, max_bytes)
