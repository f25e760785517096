"""The mapping of the transports' libraries' exceptions into the upstream failure family
(argoproxy/upstream/urllib3_failures.py, stock.failure_from_requests), for the failures a loopback wire cannot
make (tests/contracts/test_upstream_transport.py makes the others, in both modes): a network unreachable, a
proxy's host unresolved or its connect timed out, a long refusal of a tunnel, requests' exceptions with no
library error inside."""

from __future__ import annotations

import ast
import errno
import http.client

import pytest
import requests
import urllib3

from argoproxy.upstream import failures
from argoproxy.upstream.stock import failure_from_requests
from argoproxy.upstream.urllib3_failures import failure_from_urllib3
from argoproxy.upstream.wire import TooManyInterim
from tests.proxy_process import ROOT
from tests.source_tree import parsed

u3 = urllib3.exceptions
URL = "http://127.0.0.1:9/v1/models"


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize("exc, kind", [
    (caused(u3.NewConnectionError(None, "unreachable"), OSError(errno.ENETUNREACH, "unreachable")),
     failures.NotConnected),
    (caused(u3.NewConnectionError(None, "timed out"), TimeoutError()), failures.ConnectTimeout),
    (u3.ProxyError("Unable to connect to proxy", u3.NameResolutionError("proxy", None, OSError())),
     failures.ProxyNameNotResolved),
    (u3.ProxyError("Unable to connect to proxy", u3.ConnectTimeoutError(None, "timed out")),
     failures.ProxyConnectTimeout),
    (u3.ProxyError("Unable to connect to proxy", OSError("Tunnel connection failed: 407 " + "x" * 300)),
     failures.ProxyAuthRequired),
    (u3.ProxyError("Unable to connect to proxy", OSError("something else")), failures.ProxyFailure),
    (u3.ProtocolError("Connection aborted.", TooManyInterim()), failures.BadAnswer),
    (u3.ProtocolError("Connection aborted.", BrokenPipeError()), failures.ClosedUnanswered),
    (u3.ProtocolError("Connection aborted.", http.client.LineTooLong("header line")), failures.BadAnswer),
    (u3.ProtocolError("Connection aborted.", OSError(errno.EHOSTUNREACH, "no route")), failures.Disconnected),
    (u3.SSLError("certificate verify failed"), failures.TlsFailure),
    (u3.LocationValueError("no host"), failures.UpstreamFailure),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__)
def test_urllib3s_exceptions_map_by_type(exc, kind):
    assert type(failure_from_urllib3(exc)) is kind


def test_a_tunnels_refusal_says_its_status_and_a_bounded_reason():
    failure = failure_from_urllib3(u3.ProxyError("x", OSError("Tunnel connection failed: 503 " + "y" * 300)))
    assert type(failure) is failures.ProxyTunnelFailed and failure.detail == "503 " + "y" * 99


def test_a_break_mid_body_is_never_a_close_unanswered():
    closed = u3.ProtocolError("Connection broken", ConnectionResetError())
    assert type(failure_from_urllib3(closed, in_body=True)) is failures.Disconnected
    assert type(failure_from_urllib3(u3.DecodeError("bad gzip"), in_body=True)) is failures.Disconnected


@pytest.mark.parametrize("exc, kind", [
    (requests.ConnectTimeout("no library error inside"), failures.ConnectTimeout),
    (requests.ReadTimeout("no library error inside"), failures.ReadTimeout),
    (requests.exceptions.SSLError("no library error inside"), failures.TlsFailure),
    (requests.exceptions.ProxyError("no library error inside"), failures.ProxyFailure),
    (requests.exceptions.InvalidURL("no library error inside"), failures.UpstreamFailure),
    (requests.ConnectionError(u3.ProtocolError("Connection aborted.", http.client.RemoteDisconnected())),
     failures.ClosedUnanswered),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__)
def test_requests_exceptions_map_by_type(exc, kind, monkeypatch):
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    assert type(failure_from_requests(exc, URL)) is kind


def test_the_policy_reads_no_exceptions_text():
    """Upstream.send, transport_error and stream_error decide by the failure's type: client.py neither writes an
    exception out as text (repr, str, format) nor takes its args apart."""
    tree = parsed(ROOT / "argoproxy" / "upstream" / "client.py")
    texts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id in ("repr", "str", "format")]
    args = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "args"]
    assert not texts and not args, f"client.py reads an exception's text at lines {texts + args}"
