"""The one family of exceptions every upstream transport raises when an attempt gets no answer or its body breaks
off, as httpx has one family over its transports: each transport maps its own library's exceptions into it,
by type, with the original chained as __cause__ (stock.py: requests'; fastpath/transport.py: urllib3's, through
urllib3_failures.py). The upstream client's policy (client.py) reads these types, never an exception's text:
which failures are asked again, which request is replayed, and what the client is told.

Each class carries what a user is told of it: its HTTP status, its error code and its message, filled in with
the upstream's host:port, the deadlines and the proxy's name (never a URL, a key or a proxy's credentials)."""

from __future__ import annotations


class UpstreamFailure(Exception):
    """An attempt that failed without an answer, or a body that broke off. `detail`: what the message adds
    (a proxy's refusal, an upstream's malformed answer), written by the transport, never an upstream's bytes."""

    status = 502
    code = "upstream_error"
    said = "Failed to forward the request to {where}."

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or type(self).__name__)
        self.detail = detail

    def message(self, where: str, timeout: tuple[float, float], proxy: str = "") -> str:
        """What the client reads: `where` the upstream's host:port, `proxy` the proxy's shown name."""
        return self.said.format(where=where, host=where.rsplit(":", 1)[0], connect=timeout[0], read=timeout[1],
                                proxy=proxy, detail=self.detail)


class NotConnected(UpstreamFailure):
    """No connection was made: the request cannot have reached the upstream, so it may be asked again."""

    code = "upstream_connection_error"
    said = "Failed to connect to the upstream server {where}."


class ConnectRefused(NotConnected):
    code = "upstream_connection_refused"
    said = "The upstream server {where} refused the connection: is it running?"


class ConnectTimeout(NotConnected):
    status = 504
    code = "upstream_connect_timeout"
    said = "Timed out connecting to the upstream server {where} after {connect:g}s."


class NameNotResolved(UpstreamFailure):
    """The upstream's host name has no address: not asked again (a wrong name stays wrong)."""

    code = "upstream_dns_error"
    said = "Cannot resolve the upstream host {host}: check the target URL."


class TlsFailure(UpstreamFailure):
    code = "upstream_tls_error"
    said = "TLS verification failed for the upstream server {where}."


class ReadTimeout(UpstreamFailure):
    """No answer (or no more of its body) within the read timeout: the model may be working, so never asked
    again."""

    status = 504
    code = "upstream_timeout"
    said = "The upstream server {where} did not answer within {read:g}s."


class Disconnected(UpstreamFailure):
    """The upstream closed or reset the connection: before the answer, or in the middle of its body."""

    code = "upstream_disconnected"
    said = "The upstream server {where} closed the connection without answering."


class ClosedUnanswered(Disconnected):
    """Closed or reset before any byte of an answer: a kept-alive connection the server closed as the request
    went out (its idle timeout), which the policy meets with one replay of a request that may be sent twice."""


class BadAnswer(UpstreamFailure):
    """What came back is not an HTTP answer the proxy can read (`detail` says what)."""

    code = "upstream_bad_response"
    said = "The upstream server {where} sent {detail}."


class ProxyFailure(UpstreamFailure):
    """The proxy in front of the upstream (HTTP(S)_PROXY) failed, not the upstream: it is named instead."""

    code = "proxy_error"
    said = "Failed to reach the upstream server {where} through the proxy {proxy}."


class ProxyRefused(ProxyFailure, NotConnected):
    code = "proxy_connection_refused"
    said = "The proxy {proxy} refused the connection: is it running? (set NO_PROXY for hosts reached directly)"


class ProxyConnectTimeout(ProxyFailure):
    status = 504
    code = "proxy_connect_timeout"
    said = "Timed out connecting to the proxy {proxy} after {connect:g}s."


class ProxyNameNotResolved(ProxyFailure):
    code = "proxy_dns_error"
    said = "Cannot resolve the proxy host of {proxy}."


class ProxyAuthRequired(ProxyFailure):
    code = "proxy_auth_required"
    said = ("The proxy {proxy} refused the request: 407 Proxy Authentication Required (check the user and password "
            "in that variable).")


class ProxyTunnelFailed(ProxyFailure):
    """The proxy answered the tunnel's CONNECT with another status than 200 (`detail`: that status line)."""

    code = "proxy_tunnel_failed"
    said = "The proxy {proxy} could not reach the upstream server {where}: {detail}."


class ProxyUnsupported(ProxyFailure):
    code = "proxy_unsupported"
    said = "The proxy {proxy} uses a scheme cot_proxy does not support: use an http:// or https:// proxy."
