"""The upstream client's policy: one pooled requests.Session per worker process, retries before the first
byte, a replay on a connection closed unanswered, URL credentials, each attempt's trace context and deadlines,
and the translation of transport failures into errors a user can act on (never echoing URLs or keys).

`Upstream.send` runs the policy and hands each attempt to a one-method transport underneath
(argoproxy/upstream/transport.py): the stock one (upstream/stock.py, requests used as its authors intend) with
FAST_PATH=off, the fast path's (fastpath/transport.py, handed by serve/build.py) with it on, the tests' fake in
tests. Every transport answers with the same UpstreamResponse interface."""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import http.client
import logging
import random
import re
import time
from typing import Mapping, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import urllib3

from argoproxy.errors import ProxyError
from argoproxy.upstream.proxy_env import DIRECT, ProxyChoice, proxy_for
from argoproxy.upstream.stock import StockTransport, make_session
from argoproxy.upstream.trace_context import trace_context_carried
from argoproxy.upstream.transport import Transport, TransportFactory
from argoproxy.upstream.wire import DEFAULT_MAX_RESPONSE, TooManyInterim, UpstreamRequest, UpstreamResponse, describe_host

log = logging.getLogger(__name__)

# What reading an upstream body can raise when the connection breaks or stalls.
READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
# What sending a request can raise before any answer arrived.
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
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
        if client_headers is not None:
            req = trace_context_carried(req, client_headers)
        if "@" in req.url:
            req = url_credentials_as_header(req)
        timeout = (self.connect_timeout, req.timeout or self.read_timeout)
        limit = req.max_bytes or self.max_response_bytes
        attempt = 0
        started = time.monotonic()
        resent = False
        while True:
            if budget is not None:
                budget.spend()
            try:
                resp = self.transport.send(req, timeout, limit) if call is None or self.tracer is None \
                    else self._traced(req, timeout, limit, call, self.tracer)
            except TRANSPORT_ERRORS as exc:
                if not resent and replayable(req) and closed_unanswered(exc) and (budget is None or budget.may_retry()):
                    # A connection closed before any answer (a kept-alive one the server closed as the request
                    # went out: its idle timeout): a request that may be sent twice goes once more, at once, on
                    # a connection of its own (the closed one is dropped; another pooled one may be as stale),
                    # whatever MAX_RETRIES says.
                    resent = True
                    req = dataclasses.replace(req, fresh_connection=True)
                    log.info("the upstream closed a connection without answering; sending again on another")
                    continue
                delay = _backoff(attempt + 1)
                if self._may_retry(attempt, started, delay, budget) and _retryable_exception(exc):
                    attempt += 1
                    _sleep(delay)
                    continue
                raise transport_error(exc, req.url, timeout, proxy_for(req.url)) from None
            if resp.status_code < 200:  # an interim answer as the answer (the stock transport, or a 101): never relayed
                resp.close()  # unread: its connection is dropped, not pooled with the real answer waiting on it
                raise ProxyError(502, f"The upstream server {describe_host(req.url)} answered {resp.status_code} "
                                      f"{resp.reason}, an interim answer this transport cannot read past "
                                      "(FAST_PATH=off, or an upstream reached through a proxy); the request may have "
                                      "been processed.", code="upstream_bad_response")
            if resp.status_code >= 400 and attempt < self.max_retries:
                after = _retry_delay(resp, attempt + 1)
                if after is not None and self._may_retry(attempt, started, after, budget):
                    resp.close()
                    attempt += 1
                    log.info("upstream answered %s; retry %d in %.2fs", resp.status_code, attempt, after)
                    _sleep(after)
                    continue
            resp.retried = attempt
            return resp

    def _may_retry(self, attempt: int, started: float, delay: float, budget: CallBudget | None) -> bool:
        return attempt < self.max_retries and time.monotonic() - started + delay < RETRY_BUDGET and (
            budget is None or budget.may_retry())

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


def _inner(exc: Exception) -> BaseException:
    """The socket or http.client error inside requests' and urllib3's wrappers."""
    inner = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else exc
    if isinstance(inner, urllib3.exceptions.ProtocolError):
        inner = inner.args[1] if len(inner.args) > 1 else inner
    return inner


def closed_unanswered(exc: Exception) -> bool:
    """Did the connection close (or reset) without an answer? (not a timeout, not a failure to connect: those
    are _retryable_exception's)."""
    return isinstance(_inner(exc), (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                                    ConnectionAbortedError))


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


def transport_error(exc: Exception, url: str, timeout: tuple[float, float],
                    proxy: ProxyChoice = DIRECT) -> ProxyError:
    """A transport failure as the error the client gets: 504 for timeouts, 502 for the rest; a failure of the
    proxy in between names the proxy (host:port and its variable, never its credentials)."""
    where = describe_host(url)
    text = repr(exc)
    u3 = urllib3.exceptions
    if proxy.url and "://" in proxy.url and not proxy.url.lower().startswith(("http://", "https://")):
        return ProxyError(502, f"The proxy {proxy.shown} uses a scheme cot_proxy does not support: use an http:// "
                               "or https:// proxy.", code="proxy_unsupported")
    if proxy.url and isinstance(exc, (u3.ProxyError, requests.exceptions.ProxyError)):
        return proxy_error(text, where, proxy, timeout)
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
    if closed_unanswered(exc):
        return ProxyError(502, f"The upstream server {where} closed the connection without answering.",
                          code="upstream_disconnected")
    inner = _inner(exc)
    if isinstance(inner, TooManyInterim):
        return ProxyError(502, f"The upstream server {where} sent {inner}.", code="upstream_bad_response")
    if isinstance(exc, (u3.NewConnectionError, requests.ConnectionError)) and not isinstance(exc, u3.ProtocolError):
        return ProxyError(502, f"Failed to connect to the upstream server {where}.", code="upstream_connection_error")
    if isinstance(exc, (u3.ProtocolError, ConnectionError)):
        return ProxyError(502, f"The upstream server {where} closed the connection without answering.",
                          code="upstream_disconnected")
    return ProxyError(502, f"Failed to forward the request to {where}.", code="upstream_error")


def proxy_error(text: str, where: str, proxy: ProxyChoice, timeout: tuple[float, float]) -> ProxyError:
    """The proxy failed (not the upstream): say which proxy and what it did."""
    name = proxy.shown
    tunnel = re.search(r"Tunnel connection failed: (\d{3})([^'\"\\)]*)", text)
    if tunnel and tunnel.group(1) == "407":
        return ProxyError(502, f"The proxy {name} refused the request: 407 Proxy Authentication Required (check the "
                               "user and password in that variable).", code="proxy_auth_required")
    if tunnel:
        return ProxyError(502, f"The proxy {name} could not reach the upstream server {where}: "
                               f"{tunnel.group(1)}{tunnel.group(2).rstrip()}.", code="proxy_tunnel_failed")
    if "refused" in text.lower():
        return ProxyError(502, f"The proxy {name} refused the connection: is it running? (set NO_PROXY for "
                               "hosts reached directly)", code="proxy_connection_refused")
    if "NameResolutionError" in text or "Name or service not known" in text or "name resolution" in text:
        return ProxyError(502, f"Cannot resolve the proxy host of {name}.", code="proxy_dns_error")
    if "timed out" in text.lower():
        return ProxyError(504, f"Timed out connecting to the proxy {name} after {timeout[0]:g}s.",
                          code="proxy_connect_timeout")
    return ProxyError(502, f"Failed to reach the upstream server {where} through the proxy {name}.",
                      code="proxy_error")


def stream_error(exc: Exception, url: str, read_timeout: float) -> ProxyError:
    """A failure while reading an upstream body that had already started."""
    where = describe_host(url)
    if isinstance(exc, (requests.ReadTimeout, TimeoutError, urllib3.exceptions.TimeoutError)) \
            or "timed out" in repr(exc).lower():
        return ProxyError(504, f"The upstream server {where} stalled for more than {read_timeout:g}s mid-response.",
                          code="upstream_timeout")
    return ProxyError(502, f"The upstream server {where} broke off the response.", code="upstream_disconnected")
