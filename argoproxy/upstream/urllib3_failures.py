"""urllib3's exceptions (and the socket, ssl and http.client ones it lets through or wraps) as the upstream
failure family (failures.py), by type. The fast path's transport raises urllib3's own; the stock one's come
wrapped by requests, which stock.py unwraps before asking here. Nothing is read from an exception's text but a
proxy's refused tunnel, whose status http.client gives in its message alone."""

from __future__ import annotations

import http.client
import re
import ssl
from typing import Callable

import urllib3

from argoproxy.upstream.failures import (BadAnswer, ClosedUnanswered, ConnectRefused, ConnectTimeout, Disconnected,
                                         NameNotResolved, NotConnected, ProxyAuthRequired, ProxyConnectTimeout,
                                         ProxyFailure, ProxyNameNotResolved, ProxyRefused, ProxyTunnelFailed,
                                         ReadTimeout, TlsFailure, UpstreamFailure)
from argoproxy.upstream.wire import TooManyInterim

u3 = urllib3.exceptions

# What a transport's library raises; anything else is a bug of ours and is left alone.
LIBRARY_ERRORS = (u3.HTTPError, http.client.HTTPException, OSError)
# The connection closed or reset by the upstream.
CLOSED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
NOT_HTTP = "an answer that is not HTTP (an https:// server addressed as http://?)"
UNREADABLE_HEAD = "an answer head cot_proxy cannot read"
# http.client's words for a proxy's refused CONNECT (HTTPConnection._tunnel): "Tunnel connection failed: 407 ..."
TUNNEL_REFUSED = re.compile(r"Tunnel connection failed: (\d{3})([ -~]{0,100})")


def failure_from_urllib3(exc: BaseException, in_body: bool = False) -> UpstreamFailure:
    """The family member for `exc`; `in_body`: raised while reading an answer's body (a close is then a body
    broken off, not a request unanswered)."""
    if isinstance(exc, UpstreamFailure):
        return exc
    if isinstance(exc, u3.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    for kinds, read in READERS:  # in order: urllib3's classes inherit from each other and from OSError
        if isinstance(exc, kinds):
            return read(exc, in_body)
    return Disconnected() if in_body else UpstreamFailure()


def _proxy(exc: BaseException, in_body: bool) -> UpstreamFailure:
    return _proxy_failure(exc.original_error if isinstance(exc, u3.ProxyError) else None)


def _timeout(exc: BaseException, in_body: bool) -> UpstreamFailure:
    return ReadTimeout()


def _tls(exc: BaseException, in_body: bool) -> UpstreamFailure:
    return TlsFailure()


def _protocol(exc: BaseException, in_body: bool) -> UpstreamFailure:
    """urllib3's ProtocolError("Connection aborted." / "Connection broken: ...", the error inside)."""
    inner = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], BaseException) else None
    return _broken(inner, in_body)


def _connect_failure(exc: BaseException, in_body: bool = False) -> UpstreamFailure:
    """NewConnectionError and NameResolutionError are ConnectTimeoutErrors in urllib3's tree."""
    if isinstance(exc, u3.NameResolutionError):
        return NameNotResolved()
    if not isinstance(exc, u3.NewConnectionError):
        return ConnectTimeout()
    cause = exc.__cause__  # the socket's own error (urllib3 raises NewConnectionError from it)
    if isinstance(cause, ConnectionRefusedError):
        return ConnectRefused()
    return ConnectTimeout() if isinstance(cause, TimeoutError) else NotConnected()


def _proxy_failure(exc: BaseException | None) -> ProxyFailure:
    """The proxy's failure, from the error urllib3 met reaching it (ProxyError.original_error)."""
    if isinstance(exc, u3.NameResolutionError):
        return ProxyNameNotResolved()
    if isinstance(exc, u3.NewConnectionError):
        return ProxyRefused() if isinstance(exc.__cause__, ConnectionRefusedError) else ProxyFailure()
    if isinstance(exc, (u3.ConnectTimeoutError, TimeoutError)):
        return ProxyConnectTimeout()
    tunnel = TUNNEL_REFUSED.match(str(exc)) if type(exc) is OSError else None
    if tunnel is None:
        return ProxyFailure()
    if tunnel.group(1) == "407":
        return ProxyAuthRequired()
    return ProxyTunnelFailed(f"{tunnel.group(1)}{tunnel.group(2).rstrip()}")


def _broken(inner: BaseException | None, in_body: bool) -> UpstreamFailure:
    """The connection broke: closed or reset, timed out, or what came was not HTTP."""
    if isinstance(inner, CLOSED):
        return Disconnected() if in_body else ClosedUnanswered()
    if isinstance(inner, TimeoutError):
        return ReadTimeout()
    if in_body or isinstance(inner, http.client.IncompleteRead) or not isinstance(inner, http.client.HTTPException):
        return Disconnected()
    if isinstance(inner, TooManyInterim):
        return BadAnswer(str(inner))
    return BadAnswer(NOT_HTTP if isinstance(inner, http.client.BadStatusLine) else UNREADABLE_HEAD)


READERS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...],
                     Callable[[BaseException, bool], UpstreamFailure]], ...] = (
    (u3.ProxyError, _proxy),
    (u3.ConnectTimeoutError, _connect_failure),
    ((u3.ReadTimeoutError, TimeoutError), _timeout),
    ((u3.SSLError, ssl.SSLError), _tls),
    (u3.ProtocolError, _protocol),
    ((OSError, http.client.HTTPException), _broken),  # a socket's or http.client's own, unwrapped
)
