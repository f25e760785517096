"""The upstream client's policy: one pooled requests.Session per worker process, retries before the first
byte, a replay on a connection closed unanswered, URL credentials, each attempt's trace context and deadlines,
and the translation of transport failures into errors a user can act on (never echoing URLs or keys). The
transports raise one family of failures (failures.py); what is asked again is decided by their types alone.

`Upstream.send` runs the policy and hands each attempt to a one-method transport underneath
(argoproxy/upstream/transport.py): the stock one (upstream/stock.py, requests used as its authors intend) with
FAST_PATH=off, the fast path's (fastpath/transport.py, handed by serve/build.py) with it on, the tests' fake in
tests. Every transport answers with the same UpstreamResponse interface."""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import logging
import random
import time
from typing import Mapping, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from argoproxy.errors import ProxyError
from argoproxy.upstream.proxy_env import DIRECT, ProxyChoice, proxy_for
from argoproxy.upstream.failures import ClosedUnanswered, NotConnected, ReadTimeout, UpstreamFailure
from argoproxy.upstream.stock import STOCK_ERRORS, StockTransport, failure_from_requests, make_session
from argoproxy.upstream.trace_context import trace_context_carried
from argoproxy.upstream.transport import Transport, TransportFactory
from argoproxy.upstream.wire import DEFAULT_MAX_RESPONSE, UpstreamRequest, UpstreamResponse, describe_host

log = logging.getLogger(__name__)

# What reading an upstream body can raise when the connection breaks or stalls: the transports' failure family,
# and the libraries' own errors where a body is read off the library's response directly (pipeline/relay.py).
READ_ERRORS = (UpstreamFailure, *STOCK_ERRORS)
RETRY_STATUSES = frozenset({502, 503, 504})
BACKOFF_BASE = 0.25  # seconds; doubled per attempt, capped, with full jitter
BACKOFF_CAP = 4.0
RETRY_AFTER_BUDGET = 10.0  # a longer Retry-After is passed to the client instead of waited for
RETRY_BUDGET = 15.0  # no new attempt starts this long after the first: retries must not multiply timeouts


class CallBudget:
    """The upstream calls one client request may cost in all (MAX_UPSTREAM_CALLS): its first call, every retry,
    every other deployment and fallback model routing tries. Without it a routed chain multiplied its retries:
    a->b->c all failing was 9 calls, and the SDKs' own retries made that 27.

    `reserved`: calls kept for the fallback models still ahead in a routed chain (one each), which retries on
    the model being tried may not take: a fallback configured is a fallback tried."""

    __slots__ = ("limit", "used", "reserved")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.reserved = 0

    def spend(self) -> None:
        self.used += 1

    @property
    def left(self) -> int:
        return self.limit - self.used

    def may_retry(self) -> bool:
        """May the call in hand be asked again (or another deployment of its model be asked)?"""
        return self.used + self.reserved < self.limit


def url_credentials_as_header(req: UpstreamRequest) -> UpstreamRequest:
    """A URL's `user:password@` as Basic auth, the same on both transports: only when nothing else authorizes
    the request (a configured key wins; requests' own handling would replace it), and never left in the URL."""
    parts = urlsplit(req.url)
    try:
        user, password = parts.username, parts.password
    except ValueError:
        return req
    if user is None and password is None:
        return req  # an '@' in the path or query
    url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    headers = req.headers
    if not any(name.lower() == "authorization" for name in headers):
        pair = f"{unquote(user or '')}:{unquote(password or '')}".encode()
        headers = {**headers, "Authorization": "Basic " + base64.b64encode(pair).decode()}
    return dataclasses.replace(req, url=url, headers=headers)


class AttemptTracer(Protocol):
    """Tracing's hook on every attempt of a client's call (tracing/tracer.py, handed by serve/build.py when TRACING
    is on; this folder imports no observer). `call` is the client's call the request serves."""

    def attempt(self, call: object, req: UpstreamRequest) -> UpstreamRequest:
        """An attempt begins: the request as it goes (its traceparent names the attempt's span)."""

    def answered(self, call: object, status: int) -> None:
        """The attempt's answer arrived (its head)."""

    def failed(self, call: object, error: BaseException) -> None:
        """The attempt ended without an answer."""


@dataclasses.dataclass
class Tries:
    """One send's count of its attempts: retries made, when the first began, whether the one replay was made."""

    started: float
    budget: CallBudget | None
    attempt: int = 0  # retries so far
    resent: bool = False

    def budget_allows(self) -> bool:
        return self.budget is None or self.budget.may_retry()


def _as_sent(req: UpstreamRequest, client_headers: Mapping[str, str] | None) -> UpstreamRequest:
    """The request with the client's trace context where it has none, and URL credentials as a header."""
    if client_headers is not None:
        req = trace_context_carried(req, client_headers)
    return url_credentials_as_header(req) if "@" in req.url else req


class Upstream:
    """Sends requests upstream with connect/read timeouts and capped, jittered retries, through its transport."""

    def __init__(self, connect_timeout: float, read_timeout: float, max_retries: int, pool_size: int = 1024,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE, transport: TransportFactory = StockTransport,
                 tracer: AttemptTracer | None = None) -> None:
        self.max_response_bytes = max_response_bytes
        self.pool_size = pool_size
        self.session = make_session(pool_size)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        # FAST_PATH=on: the fast path's (fastpath/transport.py, handed by serve/build.py: this folder imports no
        # fastpath); routing builds its failover client with the same
        self.transport_factory = transport
        self.transport: Transport = transport(self.session)
        self.tracer = tracer  # TRACING on: a span per attempt (tracing/tracer.py, handed by serve/build.py)

    def traced_by(self, tracer: AttemptTracer) -> Upstream:
        """A client of this one's policy and transport whose attempts the tracer sees (an upstream handed in, by
        in-process tests, is given the tracer its door builds this way: nothing is written into it)."""
        return Upstream(self.connect_timeout, self.read_timeout, self.max_retries, self.pool_size,
                        self.max_response_bytes, self.transport_factory, tracer)

    def send(self, req: UpstreamRequest, budget: CallBudget | None = None, call: object = None,
             client_headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        """The upstream response, headers read and body not yet; raises ProxyError for transport failures.
        `budget`: the client request's calls (each send spends one; a retry needs one left), None for the
        proxy's own calls (model lists, probes: MAX_RETRIES alone bounds them). `call`: the client's call it
        serves, whose trace each attempt joins (tracing on). `client_headers`: that client's headers as its
        request passes them on, whose W3C trace context goes up where the backend left it out (a traced
        attempt's request carries its own span's instead): the sender decides each attempt's context."""
        req = _as_sent(req, client_headers)
        timeout = (self.connect_timeout, req.timeout or self.read_timeout)
        limit = req.max_bytes or self.max_response_bytes
        tries = Tries(time.monotonic(), budget)
        while True:
            if budget is not None:
                budget.spend()
            try:
                resp = self._attempt(req, timeout, limit, call)
            except UpstreamFailure as failure:
                req = self._again_after(failure, req, timeout, tries)
                continue
            if not self._asked_again(resp, req, tries):
                resp.retried = tries.attempt
                return resp

    def _attempt(self, req: UpstreamRequest, timeout: tuple[float, float], limit: int,
                 call: object) -> UpstreamResponse:
        if call is None or self.tracer is None:
            return self.transport.send(req, timeout, limit)
        return self._traced(req, timeout, limit, call, self.tracer)

    def _again_after(self, failure: UpstreamFailure, req: UpstreamRequest, timeout: tuple[float, float],
                     tries: Tries) -> UpstreamRequest:
        """The request to send again after an attempt failed, or the failure raised as the client's error.
        A connection closed before any answer (a kept-alive one the server closed as the request went out: its
        idle timeout) is met by one replay of a request that may be sent twice, at once, on a connection of its
        own (the closed one is dropped; another pooled one may be as stale), whatever MAX_RETRIES says. A
        connection never made is asked again within MAX_RETRIES; nothing else is (the model may be working)."""
        if isinstance(failure, ClosedUnanswered) and not tries.resent and replayable(req) and tries.budget_allows():
            tries.resent = True
            log.info("the upstream closed a connection without answering; sending again on another")
            return dataclasses.replace(req, fresh_connection=True)
        delay = _backoff(tries.attempt + 1)
        if isinstance(failure, NotConnected) and self._may_retry(tries, delay):
            tries.attempt += 1
            _sleep(delay)
            return req
        raise transport_error(failure, req.url, timeout, proxy_for(req.url)) from None

    def _asked_again(self, resp: UpstreamResponse, req: UpstreamRequest, tries: Tries) -> bool:
        """Was this answer closed to ask again (a retryable status, within the retries and their budget)?"""
        if resp.status_code < 200:  # an interim answer as the answer (the stock transport, or a 101): never relayed
            resp.close()  # unread: its connection is dropped, not pooled with the real answer waiting on it
            raise ProxyError(502, f"The upstream server {describe_host(req.url)} answered {resp.status_code} "
                                  f"{resp.reason}, an interim answer this transport cannot read past "
                                  "(FAST_PATH=off, or an upstream reached through a proxy); the request may have "
                                  "been processed.", code="upstream_bad_response")
        if resp.status_code < 400 or tries.attempt >= self.max_retries:
            return False
        after = _retry_delay(resp, tries.attempt + 1)
        if after is None or not self._may_retry(tries, after):
            return False
        resp.close()
        tries.attempt += 1
        log.info("upstream answered %s; retry %d in %.2fs", resp.status_code, tries.attempt, after)
        _sleep(after)
        return True

    def _may_retry(self, tries: Tries, delay: float) -> bool:
        return tries.attempt < self.max_retries and time.monotonic() - tries.started + delay < RETRY_BUDGET and (
            tries.budget_allows())

    def _traced(self, req: UpstreamRequest, timeout: tuple[float, float], limit: int, call: object,
                tracer: AttemptTracer) -> UpstreamResponse:
        """One attempt in a span of its own (its request carrying the span's trace context)."""
        sent = tracer.attempt(call, req)
        try:
            resp = self.transport.send(sent, timeout, limit)
        except BaseException as exc:
            tracer.failed(call, exc)
            raise
        tracer.answered(call, resp.status_code)
        return resp


# Methods whose requests may be sent twice (RFC 9110 9.2.2; Go's http.Transport resends the same ones), and the
# headers with which a client makes any request so (the upstream keeps the first answer under the key).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
IDEMPOTENCY_HEADERS = frozenset({"idempotency-key", "x-idempotency-key"})


def replayable(req: UpstreamRequest) -> bool:
    """May this request be sent again after a connection closed without an answer? A POST the upstream read
    before the close may have been processed (a paid call, a file stored): only with an idempotency key."""
    return req.method in IDEMPOTENT_METHODS or any(name.lower() in IDEMPOTENCY_HEADERS for name in req.headers)


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def _retry_delay(resp: UpstreamResponse, attempt: int) -> float | None:
    """How long to wait before retrying this answer, or None when it should go to the client as is. A 4xx is
    never asked of the same upstream again, whatever its `x-should-retry: true` says: a refused request (400,
    409) is refused again, and a 429 goes to the client with its Retry-After, whose SDK waits it out (routing
    may still take a 429 to another deployment). Otherwise the upstream's `x-should-retry` (OpenAI's and
    Anthropic's servers send it) decides when present, and without it 502, 503 and 504 are retried."""
    status = resp.status_code
    if 400 <= status < 500:
        return None
    should = resp.headers.get("x-should-retry", "").strip().lower()
    if should == "false" or (should != "true" and status not in RETRY_STATUSES):
        return None
    retry_after = resp.headers.get("Retry-After")
    if retry_after is None:
        return _backoff(attempt)
    seconds = parse_retry_after(retry_after)
    if seconds is None or seconds > RETRY_AFTER_BUDGET:
        return None
    return seconds


def parse_retry_after(value: str) -> float | None:
    """An upstream's Retry-After (seconds or an HTTP date) in seconds, at most MAX_RETRY_AFTER: a routed
    deployment is cooled down for it, and 10^20 seconds (or a date in 2099) made the cooldown's end overflow
    its cell, a 500 on every request to it."""
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER)


MAX_RETRY_AFTER = 3600.0  # an hour: past it a deployment is tried again (a health probe, a later request)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def transport_error(failure: UpstreamFailure, url: str, timeout: tuple[float, float],
                    proxy: ProxyChoice = DIRECT) -> ProxyError:
    """A transport's failure as the error the client gets: its status, code and message (failures.py), naming
    the upstream by host:port and a failing proxy by its host:port and variable, never their credentials."""
    message = failure.message(describe_host(url), timeout, proxy.shown if proxy.url else "")
    return ProxyError(failure.status, message, code=failure.code)


def stream_error(exc: Exception, url: str, read_timeout: float) -> ProxyError:
    """A failure while reading an upstream body that had already started: a stall (504) or a break (502).
    The transports raise the failure family; a body read off the library's response directly (a relayed
    body, a bounded probe) raises the library's own, mapped here the same way."""
    where = describe_host(url)
    failure = exc if isinstance(exc, UpstreamFailure) else failure_from_requests(exc, url, in_body=True)
    if isinstance(failure, ReadTimeout):
        return ProxyError(504, f"The upstream server {where} stalled for more than {read_timeout:g}s mid-response.",
                          code="upstream_timeout")
    return ProxyError(502, f"The upstream server {where} broke off the response.", code="upstream_disconnected")
