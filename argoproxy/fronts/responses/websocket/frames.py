"""The WebSocket protocol over the client's socket, by wsproto (sans-IO: it reads and writes bytes only, so the
socket is the worker's own, a gevent socket in a gevent worker, a plain one in a gthread worker): the handshake's
answer, whole text messages in (bounded), text messages out, pings answered, the close handshake."""

from __future__ import annotations

import socket
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Request, TextMessage)
from wsproto.utilities import RemoteProtocolError

from argoproxy.fronts.responses.websocket.session import NORMAL, TOO_BIG, Closing
from argoproxy.polled_sockets import readable_now

PROTOCOL_ERROR, UNSUPPORTED = 1002, 1003
READ_SIZE = 65536
CLOSE_WAIT = 2.0  # seconds the peer gets to answer our close frame before the socket is shut


class BadHandshake(ValueError):
    """The upgrade request is not a WebSocket handshake wsproto accepts (its message says what is missing)."""


def accept(headers: list[tuple[bytes, bytes]], target: bytes) -> tuple[WSConnection, list[tuple[str, str]]]:
    """The server side of a handshake already parsed by the HTTP server, and the 101's headers (Upgrade,
    Connection, Sec-WebSocket-Accept) for the server to write."""
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.initiate_upgrade_connection(headers, target)
        if not any(isinstance(event, Request) for event in ws.events()):
            raise BadHandshake("not a WebSocket handshake")
    except RemoteProtocolError as err:
        raise BadHandshake(str(err)) from None
    head = ws.send(AcceptConnection()).decode("latin-1").split("\r\n")[1:]
    return ws, [tuple(line.split(": ", 1)) for line in head if ": " in line]  # type: ignore[misc]


class Frames:
    """An accepted connection's messages. `read` and `send_text` raise Closing when the connection must end."""

    def __init__(self, ws: WSConnection, sock: Any, max_message: int, send_timeout: float) -> None:
        self.ws, self.sock = ws, sock
        self.max_message, self.send_timeout = max_message, send_timeout
        self.parts: list[str] = []
        self.size = 0
        self.peer_closed = False

    @property
    def open(self) -> bool:
        return self.ws.state is ConnectionState.OPEN

    def waiting(self) -> bool:
        """Bytes from the client wait on the socket now."""
        return readable_now(self.sock)

    def read(self, timeout: float) -> list[str]:
        """The whole text messages that come within `timeout` seconds (none: an empty list). Closing when the
        client closed (its code), left, or broke the protocol."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(READ_SIZE)
        except (socket.timeout, TimeoutError):
            return []
        except OSError:
            data = b""
        if not data:
            self.peer_closed = True
            raise Closing(1006, "the client left")
        try:
            self.ws.receive_data(data)
            return self.messages()
        except RemoteProtocolError:
            raise Closing(PROTOCOL_ERROR, "WebSocket protocol error") from None

    def messages(self) -> list[str]:
        texts = []
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self.size += len(event.data)
                if self.size > self.max_message:
                    raise Closing(TOO_BIG, f"a message is larger than {self.max_message} bytes")
                self.parts.append(event.data)
                if event.message_finished:
                    texts.append("".join(self.parts))
                    self.parts, self.size = [], 0
            elif isinstance(event, Ping):
                self.write(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.peer_closed = True
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    self.write(self.ws.send(event.response()))
                raise Closing(event.code or NORMAL, "the client closed")
            elif isinstance(event, BytesMessage):
                raise Closing(UNSUPPORTED, "client events are JSON text messages")
        return texts

    def send_text(self, text: str) -> None:
        self.write(self.ws.send(TextMessage(data=text)))

    def write(self, data: bytes) -> None:
        self.sock.settimeout(self.send_timeout)
        try:
            self.sock.sendall(data)
        except OSError:
            self.peer_closed = True
            raise Closing(1006, "the client stopped reading") from None

    def close(self, code: int, reason: str) -> None:
        """Our close frame (when the connection is still open), a short wait for the client's, then the socket
        shut: the server ends the TCP connection (RFC 6455 section 7.1.1)."""
        try:
            if self.open and not self.peer_closed:
                self.write(self.ws.send(CloseConnection(code=code, reason=reason[:120])))
                self.await_close()
        except Closing:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def await_close(self) -> None:
        self.sock.settimeout(CLOSE_WAIT)
        try:
            while self.ws.state is not ConnectionState.CLOSED:
                data = self.sock.recv(READ_SIZE)
                self.ws.receive_data(data or None)
                for _ in self.ws.events():
                    pass
                if not data:
                    return
        except (OSError, RemoteProtocolError):
            return
