"""Whether the user's proxy serves the Responses API over a WebSocket (docs/responses-websocket.md), asked as
Codex would: a WebSocket handshake on /v1/responses with the run's key, closed at once. A proxy that upgrades is
told to Codex (`supports_websockets`); one that answers 426 (the sync worker class, a full gthread worker) or
anything else is not, and Codex speaks HTTP to it. The proxy is asked directly, never through an HTTP proxy of
the environment (as launch/proxy.py asks it)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

WEBSOCKET_DOOR = "/v1/responses"  # the agents' door (agents.py) served over a WebSocket
PROBE_TIMEOUT = 10.0
MAX_HEAD = 16384  # bytes of the proxy's answer read at most


def serves_websocket(url: str, key: str) -> bool:
    """True when the proxy at `url` (http://host:port) upgrades GET /v1/responses for this key."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        return False
    client = WSConnection(ConnectionType.CLIENT)
    host = parts.netloc.rpartition("@")[2]
    hello = client.send(Request(host=host, target=WEBSOCKET_DOOR,
                                extra_headers=[(b"authorization", f"Bearer {key}".encode())]))
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(hello)
            accepted = _accepted(client, sock)
            if accepted:
                sock.sendall(client.send(CloseConnection(code=1000)))
            return accepted
    except (OSError, LocalProtocolError, RemoteProtocolError):
        return False


def _accepted(client: WSConnection, sock: socket.socket) -> bool:
    received = 0
    while received < MAX_HEAD:
        data = sock.recv(4096)
        received += len(data)
        client.receive_data(data or None)
        for event in client.events():
            return isinstance(event, AcceptConnection)
        if not data:
            return False
    return False
