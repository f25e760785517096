"""urllib3 connections for the upstream pool that cost fewer system calls per request.

urllib3 writes a request's head and body in two sends and, before reusing a pooled connection, polls it through
gevent's poll (watchers and a hub round trip). These send a small request in one send and check an idle
connection with one non-blocking poll(2).
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
from typing import TYPE_CHECKING

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import _set_socket_options
from urllib3.util.timeout import _DEFAULT_TIMEOUT

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
    pooled connection with one non-blocking poll, connects to an IP address without a resolver call, and reads
    an answer past interim 1xx responses (FinalResponse)."""

    response_class = FinalResponse

    _held: list[bytes] | None = None
    _held_size = 0

    def request(self, method, url, body=None, headers=None, **kwargs) -> None:
        self._held, self._held_size = [], 0
        try:
            super().request(method, url, body, headers, **kwargs)
            self._send_held()
        finally:
            self._held = None

    def send(self, data) -> None:
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
