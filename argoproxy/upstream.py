"""The upstream client: one pooled requests.Session per worker process, retries before the first byte,
and the translation of transport failures into errors a user can act on (never echoing URLs or keys)."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from argoproxy.errors import ProxyError

log = logging.getLogger(__name__)

# What reading an upstream body can raise when the connection breaks or stalls.
READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_BASE = 0.25  # seconds; doubled per attempt, capped, with full jitter
BACKOFF_CAP = 4.0
RETRY_AFTER_BUDGET = 10.0  # a longer Retry-After is passed to the client instead of waited for


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

    def __init__(self, connect_timeout: float, read_timeout: float, max_retries: int, pool_size: int = 1024) -> None:
        self.session = make_session(pool_size)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries

    def send(self, req: UpstreamRequest) -> requests.Response:
        """The upstream response, headers read and body not yet; raises ProxyError for transport failures."""
        timeout = (self.connect_timeout, req.timeout or self.read_timeout)
        attempt = 0
        while True:
            try:
                resp = self.session.request(req.method, req.url, headers=req.headers, data=req.body,
                                            stream=True, timeout=timeout, allow_redirects=False)
            except requests.RequestException as exc:
                if attempt < self.max_retries and _retryable_exception(exc):
                    attempt += 1
                    _sleep(_backoff(attempt))
                    continue
                raise transport_error(exc, req.url, timeout) from None
            if resp.status_code in RETRY_STATUSES and attempt < self.max_retries:
                delay = _retry_delay(resp, attempt + 1)
                if delay is not None:
                    resp.close()
                    attempt += 1
                    log.info("upstream answered %s; retry %d in %.2fs", resp.status_code, attempt, delay)
                    _sleep(delay)
                    continue
            return resp


def _retryable_exception(exc: requests.RequestException) -> bool:
    # Only failures where the request cannot have reached the model: no connection was made.
    return isinstance(exc, (requests.ConnectTimeout,)) or (
        isinstance(exc, requests.ConnectionError) and not isinstance(exc, (requests.ReadTimeout, requests.SSLError))
        and _connection_refused(exc))


def _connection_refused(exc: Exception) -> bool:
    text = repr(exc)
    return "Connection refused" in text or "ConnectionRefused" in text or "NewConnectionError" in text


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def _retry_delay(resp: requests.Response, attempt: int) -> float | None:
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
    if isinstance(exc, requests.ConnectTimeout):
        return ProxyError(504, f"Timed out connecting to the upstream server {where} after {timeout[0]:g}s.",
                          code="upstream_connect_timeout")
    if isinstance(exc, requests.ReadTimeout):
        return ProxyError(504, f"The upstream server {where} did not answer within {timeout[1]:g}s.",
                          code="upstream_timeout")
    if isinstance(exc, requests.exceptions.SSLError):
        return ProxyError(502, f"TLS verification failed for the upstream server {where}.", code="upstream_tls_error")
    if isinstance(exc, requests.ConnectionError):
        if "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text \
                or "nodename nor servname" in text or "Temporary failure in name resolution" in text:
            return ProxyError(502, f"Cannot resolve the upstream host {where.rsplit(':', 1)[0]}: check the target URL.",
                              code="upstream_dns_error")
        if "refused" in text.lower():
            return ProxyError(502, f"The upstream server {where} refused the connection: is it running?",
                              code="upstream_connection_refused")
        return ProxyError(502, f"Failed to connect to the upstream server {where}.", code="upstream_connection_error")
    return ProxyError(502, f"Failed to forward the request to {where}.", code="upstream_error")


def stream_error(exc: Exception, url: str, read_timeout: float) -> ProxyError:
    """A failure while reading an upstream body that had already started."""
    where = describe_host(url)
    if isinstance(exc, (requests.ReadTimeout, TimeoutError)) or "timed out" in repr(exc).lower():
        return ProxyError(504, f"The upstream server {where} stalled for more than {read_timeout:g}s mid-response.",
                          code="upstream_timeout")
    return ProxyError(502, f"The upstream server {where} broke off the response.", code="upstream_disconnected")
