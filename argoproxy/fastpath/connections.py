"""urllib3 connections for the upstream pool that cost fewer system calls per request.

urllib3 writes a request's head and body in two sends and, before reusing a pooled connection, polls it through
gevent's poll (watchers and a hub round trip). These send a small request in one send and check an idle
connection with one non-blocking poll(2).

The head of a usual request (token names, values without line breaks, a bytes body, a plain host) is written
here in one string: the same bytes as urllib3 and http.client write (tests/unit/test_lean_head.py compares
them), without their per-header validation calls (about 14 µs a request). Any other request goes
through their own code.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import re
import socket
from typing import TYPE_CHECKING, Any, Mapping

from urllib3.connection import HTTPConnection, HTTPSConnection, _get_default_user_agent, _ResponseOptions
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.response import HTTPResponse
from urllib3.util import SKIP_HEADER
from urllib3.util.connection import _set_socket_options
from urllib3.util.request import _METHODS_NOT_EXPECTING_BODY
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from argoproxy.fastpath.head_deadline import HeadWatcher
from argoproxy.fastpath.sockets import COALESCE_LIMIT, readable_now, send_all
from argoproxy.upstream.wire import MAX_INTERIM, TooManyInterim


@functools.lru_cache(maxsize=64)
def ip_family(host: str) -> int | None:
    """AF_INET / AF_INET6 when host is an IP address literal (brackets allowed), else None."""
    try:
        version = ipaddress.ip_address(host.strip("[]")).version
    except ValueError:
        return None
    return socket.AF_INET if version == 4 else socket.AF_INET6


# The mixin goes before urllib3's connection class (LeanHTTPConnection below); the type checker sees that base.
if TYPE_CHECKING:
    _Connection = HTTPConnection
else:
    _Connection = object


_TOKEN_CHARS = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_TOKEN = re.compile(_TOKEN_CHARS)
_TOKENS = re.compile(rf"{_TOKEN_CHARS}(?:,{_TOKEN_CHARS})*")  # header names, joined by commas
# What http.client refuses in a request target (controls, space, DEL), and what it could not encode (non-ASCII).
_TARGET_UNSAFE = re.compile("[^\x21-\x7e]")


class FinalResponse(http.client.HTTPResponse):
    """An answer read past the interim ones before it. http.client skips only 100 Continue: an upstream's 103
    Early Hints (a CDN in front of an API sends them) was taken for the answer, the answer itself left unread
    on the connection. Any other 1xx but 101 is reported to `begin` as a 100, whose headers it then skips
    before reading the next status line (tests/unit/test_fastpath_contract.py holds http.client to that). At most
    MAX_INTERIM of them, 100 Continue counted too (http.client would read any number)."""

    interim = 0

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]  # private: not in typeshed
        if 100 <= status < 200 and status != 101:
            self.interim += 1
            if self.interim > MAX_INTERIM:
                raise TooManyInterim()
            return version, http.client.CONTINUE, reason
        return version, status, reason


class _OneSend(_Connection):
    """A urllib3 connection that sends a request's head and a small body in one send, checks an idle
    pooled connection with one non-blocking poll, connects to an IP address without a resolver call, reads
    an answer past interim 1xx responses (FinalResponse), and reads its head whole within the read timeout."""

    response_class = FinalResponse

    _held: list[bytes] | None = None
    _held_size = 0

    # urllib3's signature, which differs from http.client's as its own does
    def request(self, method: str, url: str, body: Any = None,  # type: ignore[override]
                headers: Mapping[str, str] | None = None, *, chunked: bool = False, preload_content: bool = True,
                decode_content: bool = True, enforce_content_length: bool = True) -> None:
        head = None if chunked else self._lean_head(method, url, body, headers)
        if head is not None:
            self._send_lean(method, url, head, body, _ResponseOptions(
                request_method=method, request_url=url, preload_content=preload_content,
                decode_content=decode_content, enforce_content_length=enforce_content_length))
            return
        self._held, self._held_size = [], 0
        try:
            super().request(method, url, body, headers, chunked=chunked, preload_content=preload_content,
                            decode_content=decode_content, enforce_content_length=enforce_content_length)
            self._send_held()
        finally:
            self._held = None

    def _lean_head(self, method: str, url: str, body: Any, headers: Mapping[str, str] | None) -> bytes | None:
        """The head urllib3 and http.client would write, or None where their own rules decide: names that are
        not tokens, values with line breaks (folding) or not str, a body not bytes, chunked framing asked for,
        an absolute-form target, a host that is not plain ASCII (IDNA, IPv6), a tunnel, a connection whose
        state is not idle (their errors are raised by their code)."""
        if headers is None or not self._lean_allowed(method, url, body, headers):
            return None
        lines = self._default_lines(method, url, body, {name.lower() for name in headers})
        if lines is None:
            return None
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        lines.append("\r\n")
        try:
            return "\r\n".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            return None

    def _lean_allowed(self, method: str, url: str, body: Any, headers: Mapping[str, str]) -> bool:
        """Whether this head is one `_lean_head` writes as the libraries would (its docstring says which not)."""
        if not (body is None or type(body) is bytes) or self._tunnel_host:
            return False
        try:
            values = "".join(headers.values())
        except TypeError:
            return False
        if "\r" in values or "\n" in values or SKIP_HEADER in values or not _TOKENS.fullmatch(",".join(headers)) \
                or not _TOKEN.fullmatch(method) or not url or _TARGET_UNSAFE.search(url) or url.startswith("http"):
            return False
        response = self._HTTPConnection__response  # type: ignore[attr-defined]  # http.client's own state
        idle: bool = self._HTTPConnection__state == http.client._CS_IDLE  # type: ignore[attr-defined]
        return idle and (response is None or response.isclosed())

    def _default_lines(self, method: str, url: str, body: bytes | None, named: set[str]) -> list[str] | None:
        """The request line and the headers the libraries add when the caller names none of them, in their
        order; None where their own rules decide (a host to encode, Transfer-Encoding without a length)."""
        lines = [f"{method} {url} HTTP/1.1"]
        if "host" not in named:
            host = self.host
            if not host.isascii() or ":" in host or "%" in host:
                return None
            lines.append(f"Host: {host}" if self.port == self.default_port else f"Host: {host}:{self.port}")
        if "accept-encoding" not in named:
            lines.append("Accept-Encoding: identity")
        if "transfer-encoding" in named and "content-length" not in named:
            return None
        if "content-length" not in named:
            if body is not None:
                lines.append(f"Content-Length: {len(body)}")
            elif method.upper() not in _METHODS_NOT_EXPECTING_BODY:
                lines.append("Content-Length: 0")
        if "user-agent" not in named:
            lines.append(f"User-Agent: {_get_default_user_agent()}")
        return lines

    def _send_lean(self, method: str, url: str, head: bytes, body: bytes | None, options: Any) -> None:
        """Send a head `_lean_head` wrote, and the body, leaving urllib3 and http.client in the state their own
        request() leaves: the response options set, the request marked sent."""
        if self.sock is not None:
            self.sock.settimeout(self.timeout)
        self._response_options = options
        self._method = method
        self._HTTPConnection__state = http.client._CS_REQ_SENT  # type: ignore[attr-defined]
        if self.sock is None:  # http.client's send() connects on first use; so does this
            self.connect()
        if body and len(head) + len(body) <= COALESCE_LIMIT:
            send_all(self.sock, head + body)
            return
        send_all(self.sock, head)
        if body:
            self.sock.sendall(body)

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # urllib3's, overriding http.client's too
        """The answer's head, read whole within the read timeout (head_deadline.py), not only each receive."""
        seconds = self.timeout
        if self.sock is None or not isinstance(seconds, (int, float)):
            return super().getresponse()
        watcher = HeadWatcher.get()
        watched = watcher.watch(self.sock, seconds)
        try:
            return super().getresponse()
        except (OSError, http.client.HTTPException) as exc:
            if watched.fired:
                raise socket.timeout(f"no whole answer head within {seconds:g}s") from exc
            raise
        finally:
            watcher.forget(watched)

    def send(self, data: Any) -> None:  # what http.client's send takes (bytes, a file, an iterable)
        if self._held is None:
            super().send(data)
        elif isinstance(data, bytes) and self._held_size + len(data) <= COALESCE_LIMIT:
            self._held.append(data)
            self._held_size += len(data)
        else:
            self._send_held()
            super().send(data)

    def _send_held(self) -> None:
        if self._held:
            if self.sock is None:  # http.client's send() connects on first use; so does this
                self.connect()
            send_all(self.sock, b"".join(self._held))
        self._held, self._held_size = [], 0

    def _new_conn(self) -> socket.socket:
        # gevent hands every getaddrinfo to a thread pool (about 90 us of CPU), even for "127.0.0.1".
        family = ip_family(self._dns_host)
        if family is None:
            return super()._new_conn()
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            _set_socket_options(sock, self.socket_options)
            if self.timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(self.timeout)
            if self.source_address:
                sock.bind(self.source_address)
            sock.connect((self._dns_host.strip("[]"), self.port))
        except socket.timeout as exc:
            sock.close()
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from exc
        except OSError as exc:
            sock.close()
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        return sock

    @property
    def is_connected(self) -> bool:
        return self.sock is not None and not readable_now(self.sock)


class LeanHTTPConnection(_OneSend, HTTPConnection):
    pass


class LeanHTTPSConnection(_OneSend, HTTPSConnection):
    pass
