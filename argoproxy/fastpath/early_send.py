"""A long request body sent upstream while it still arrives from the client.

A proxy that reads a body whole before sending it makes the upstream wait for two transfers in a row: a 5 MiB
chat request took about twice as long through the proxy as sent directly (docs/performance.md, issue 22), and
the bare WSGI forwarder that parses nothing pays the same. Here the second transfer runs under the first.

The proxy still reads, parses and checks the whole request before the upstream can act on it: the upstream gets
the head and the body's bytes as they arrive, except the last ones (at least HOLD bytes), which go only once the
request the pipeline built is known to be the one begun. Until then the upstream holds an unfinished request; a
request that turns out otherwise (refused, changed, routed elsewhere) has its connection closed unfinished,
which no HTTP server hands to its application, and is sent the usual way.

Where to send it early and with what head cannot be read from a body that has not arrived, so it is forecast:
each long request teaches its route (method, path and query) what went upstream last time (the URL, the headers
the proxy added to or removed from the client's, the read timeout, and how the body changed: unchanged, or with
members appended after the client's bytes, as ARGO's `user`). A long body goes early only on that forecast, and
is finished only when this request's own lesson is the same. Only with one upstream (no `models` routing: the
model, which picks the upstream, may come at the body's end) and only under gevent (a greenlet sends while the
request's own greenlet reads).

Part of the fast path (FAST_PATH=on), over the Session's own pools (pool.DirectPools); it uses urllib3's public
`urlopen` with an iterable body and gevent's public queue, nothing private.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import gevent
from gevent.queue import Queue

from argoproxy.pipeline.handoff import under_gevent

if TYPE_CHECKING:
    import urllib3

    from argoproxy.fastpath.pool import DirectPools
    from argoproxy.upstream.wire import UpstreamRequest

EARLY_FROM = 1024 * 1024  # a body this long goes early, when its route has a forecast
LEARN_FROM = 64 * 1024  # a request this long teaches its route's forecast
HOLD = 4096  # at least this much of the client's body waits until the request is known whole
WAIT = 120.0  # seconds an early send waits for its next piece before it gives up (nobody finished it)
MAX_ROUTES = 256  # forecasts kept per worker (a query string is the client's to vary)

_END = object()  # the request is whole: the body is finished
_ABORT = object()  # the request is not the one begun: its connection is closed unfinished


class Abandoned(Exception):
    """An early send given up before its body was finished."""


@dataclass(frozen=True)
class Forecast:
    """What a route's last long request sent upstream, relative to what its client sent."""
    url: str
    added: tuple[tuple[str, str], ...]  # headers the proxy set (or set otherwise than the client)
    removed: frozenset[str]  # client headers the proxy did not send
    delta: int  # the upstream body's length less the client's (members appended after its bytes)
    timeout: tuple[float, float]

    def headers(self, client: Mapping[str, str]) -> dict[str, str]:
        out = {name: value for name, value in client.items() if name not in self.removed}
        out.update(self.added)
        return out


def early_sends(pools: DirectPools) -> EarlySends | None:
    """The worker's early sends: under gevent only (the send needs a greenlet of its own)."""
    return EarlySends(pools) if under_gevent() else None


class EarlySends:
    """One worker's forecasts, and the tickets that use them."""

    def __init__(self, pools: DirectPools) -> None:
        self.pools = pools
        self.forecasts: dict[tuple[str, str, str], Forecast] = {}

    def ticket(self, method: str, path: str, query: str, headers: Mapping[str, str],
               length: str | None) -> Ticket | None:
        """A ticket for a request about to be read (None for a short or chunked body); the body goes early when
        it is long and its route has a forecast."""
        if not length or not length.isdigit() or int(length) < LEARN_FROM:
            return None
        ticket = Ticket(self, (method, path, query), dict(headers), int(length))
        forecast = self.forecasts.get(ticket.route)
        if forecast is not None and ticket.size >= EARLY_FROM:
            ticket.begin(forecast)
        return ticket

    def learned(self, route: tuple[str, str, str], forecast: Forecast | None) -> None:
        if forecast is None:
            self.forecasts.pop(route, None)
            return
        if route not in self.forecasts and len(self.forecasts) >= MAX_ROUTES:
            self.forecasts.clear()
        self.forecasts[route] = forecast


class Ticket:
    """One long request: what its client sent, its early send if it has one, and its lesson for the route."""

    __slots__ = ("sends", "route", "client_headers", "size", "raw", "forecast", "early", "settled")

    def __init__(self, sends: EarlySends, route: tuple[str, str, str], client_headers: dict[str, str],
                 size: int) -> None:
        self.sends = sends
        self.route = route
        self.client_headers = client_headers
        self.size = size
        self.raw: bytes | None = None
        self.forecast: Forecast | None = None
        self.early: EarlySend | None = None
        self.settled = False

    def begin(self, forecast: Forecast) -> None:
        declared = self.size + forecast.delta
        limit = min(self.size - HOLD, declared - 1)  # the upstream never has the whole body before `use`
        pool, path = self.sends.pools.pool_and_path(forecast.url)
        if pool is None or limit <= 0:
            return
        headers = forecast.headers(self.client_headers)
        headers["Content-Length"] = str(declared)
        self.forecast = forecast
        self.early = EarlySend(pool, self.route[0], path, headers, self.sends.pools.timeout_object(forecast.timeout),
                               limit)

    def feed(self, piece: memoryview) -> None:
        """A piece of the client's body as it arrives."""
        if self.early is not None:
            self.early.feed(piece)

    def arrived(self, raw: bytes) -> None:
        self.raw = raw

    def use(self, req: UpstreamRequest, timeout: tuple[float, float]) -> urllib3.HTTPResponse | None:
        """The first send of the request the pipeline built: the route learns from it, and the early send is
        finished when the request is the one forecast (its answer), or closed unfinished (None: send it now)."""
        if self.settled:
            return None
        self.settled = True
        lesson = self.lesson(req, timeout)
        self.sends.learned(self.route, lesson)
        early = self.early
        if early is None:
            return None
        if lesson is None or lesson != self.forecast:
            early.abort()
            return None
        body = req.body
        assert body is not None  # a lesson needs one
        return early.finish(body[early.sent:])

    def abort(self) -> None:
        """The request went no further (refused, failed) or another way: nothing more goes early."""
        if not self.settled:
            self.settled = True
            if self.early is not None:
                self.early.abort()

    def lesson(self, req: UpstreamRequest, timeout: tuple[float, float]) -> Forecast | None:
        """What this request teaches its route, or None when its body is not the client's bytes (with members
        at most appended after them) and so cannot go early."""
        raw, body = self.raw, req.body
        if raw is None or len(raw) != self.size or not isinstance(body, bytes) or req.method != self.route[0]:
            return None
        keep = len(raw) - HOLD
        if body is not raw and (len(body) < keep or not body.startswith(memoryview(raw)[:keep])):
            return None
        client = self.client_headers
        added = tuple((name, value) for name, value in req.headers.items() if client.get(name) != value)
        removed = frozenset(name for name in client if name not in req.headers)
        return Forecast(req.url, added, removed, len(body) - len(raw), timeout)


class EarlySend:
    """The upstream request begun before its body arrived: a greenlet sends it through the pool, taking the
    body's pieces from a queue, and reads the answer's head once the body is finished."""

    __slots__ = ("queue", "limit", "sent", "finished", "greenlet")

    def __init__(self, pool: urllib3.HTTPConnectionPool, method: str, path: str, headers: dict[str, str],
                 timeout: urllib3.Timeout, limit: int) -> None:
        self.queue: Queue[Any] = Queue()
        self.limit = limit  # bytes of the client's body that may go before the request is known whole
        self.sent = 0
        self.finished = False  # the whole body was handed to the connection
        self.greenlet = gevent.spawn(self._send, pool, method, path, headers, timeout)

    def feed(self, piece: memoryview) -> None:
        room = self.limit - self.sent
        if room > 0:
            piece = piece[:room]
            self.sent += len(piece)
            self.queue.put(piece)

    def finish(self, rest: bytes) -> urllib3.HTTPResponse | None:
        """The rest of the body, then the answer's head; None when the send failed before the body was whole
        (the upstream cannot have acted on it: the caller sends it the usual way)."""
        if rest:
            self.queue.put(rest)
        self.queue.put(_END)
        resp, failure = self.greenlet.get()
        if failure is None:
            return resp
        if not self.finished:
            return None
        raise failure  # the upstream may have the whole request: the caller's rules on sending it again apply

    def abort(self) -> None:
        self.queue.put(_ABORT)

    def _body(self) -> Iterator[Any]:
        get = self.queue.get
        while True:
            piece = get(timeout=WAIT)
            if piece is _END:
                self.finished = True
                return
            if piece is _ABORT:
                raise Abandoned()
            yield piece

    def _send(self, pool: urllib3.HTTPConnectionPool, method: str, path: str, headers: dict[str, str],
              timeout: urllib3.Timeout) -> tuple[Any, BaseException | None]:
        from argoproxy.fastpath.pool import NO_RETRIES
        try:
            resp = pool.urlopen(method, path, body=self._body(), headers=headers, retries=NO_RETRIES,
                                redirect=False, assert_same_host=False, timeout=timeout, preload_content=False,
                                decode_content=False, release_conn=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the request's greenlet, which decides
            return None, exc
        return resp, None
