"""urllib3 connections for the upstream pool that cost fewer system calls and less parsing per request.

urllib3 writes a request's head and body in two sends and, before reusing a pooled connection, polls it through
gevent's poll (watchers and a hub round trip). These send a small request in one send and check an idle
connection with one non-blocking poll(2). http.client parses every response head with the email package's
feed parser, the costliest step of an upstream call; parse_headers does the common case directly.
"""

from __future__ import annotations

import email.parser
import functools
import http.client
import ipaddress
import re
import socket

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import _set_socket_options
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from argoproxy.sockets import COALESCE_LIMIT, readable_now, send_all


@functools.lru_cache(maxsize=64)
def ip_family(host: str) -> int | None:
    """AF_INET / AF_INET6 when host is an IP address literal (brackets allowed), else None."""
    try:
        version = ipaddress.ip_address(host.strip("[]")).version
    except ValueError:
        return None
    return socket.AF_INET if version == 4 else socket.AF_INET6


class _OneSend:
    """A urllib3 connection that sends a request's head and a small body in one send, checks an idle
    pooled connection with one non-blocking poll, and connects to an IP address without a resolver call."""

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


# A plain "Name: value" line; anything else (folded continuation lines, junk) goes to the email parser.
_HEADER_LINE = re.compile(r"([!-9;-~]+):[ \t]*([^\r\n]*?)\r?\n?")


def parse_headers(fp, _class=http.client.HTTPMessage):
    """http.client.parse_headers with the same result (an HTTPMessage holding the same name/value pairs)."""
    lines = http.client._read_headers(fp)
    msg = _class()
    for line in lines[:-1]:  # the last line is the blank one (or EOF) that ended the head
        text = line.decode("iso-8859-1")
        m = _HEADER_LINE.fullmatch(text)
        if m is None or text.startswith("From "):
            return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
        msg.set_raw(m.group(1), m.group(2))
    msg.set_payload("")
    return msg


def install_header_parser() -> None:
    """Make http.client (under urllib3) use parse_headers; called once per worker when the upstream client
    is built."""
    http.client.parse_headers = parse_headers
