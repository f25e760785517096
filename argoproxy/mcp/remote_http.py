"""What both transports of a remote MCP server share (remote_server.py: Streamable HTTP; remote_sse.py: the older
HTTP+SSE): the limits, the errors a session's start ends with, initialize's request, an answer's bytes read as they
come within a deadline and a bound, and how a server is named in logs and errors (its origin only)."""

from __future__ import annotations

import time
from typing import Any, Iterator
from urllib.parse import urlsplit

import requests

from argoproxy.mcp.client_requests import OFFERED
from argoproxy.mcp.event_stream import TooLarge
from argoproxy.mcp.protocol import CLIENT_INFO, HANDSHAKE_VERSION
from argoproxy.mcp.stdio_server import MAX_LINE

MAX_MESSAGE = MAX_LINE  # the largest answer (or event) a server may send, as on a stdio server's pipe
CONNECT_SECONDS = 10.0
SEND_SECONDS = 30.0  # a notification's POST (an answer to it carries nothing)
STREAM_IDLE_SECONDS = 300.0  # HTTP+SSE: an event stream this long silent is taken for lost, and opened again
MAX_RESUMES = 10  # GETs that resume one call's stream, at most
MAX_RETRY_SECONDS = 5.0
MAX_SESSION_ID = 1024
CHUNK = 65536
MAX_CONNECTIONS = 32  # kept open to one server between calls (more calls at once open more, closed after)
SSE = "sse"  # the older transport's `transport` value
STREAMABLE = "streamable-http"
FALLBACK_STATUSES = (400, 404, 405)  # an initialize POST so refused: perhaps an HTTP+SSE server


class Unreachable(Exception):
    """Why the server could not be reached or would not start a session (said without its URL's path or query)."""


class Fallback(Exception):
    """Initialize's POST was refused as an older server refuses it."""


def initialize(own_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": own_id, "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE_VERSION, "capabilities": OFFERED, "clientInfo": CLIENT_INFO}}


def chunks(resp: requests.Response, deadline: float | None) -> Iterator[bytes]:
    """An answer's bytes as they come (read1: an event is handed on when it arrives, not when a buffer fills),
    until it ends or the deadline passes (TimeoutError)."""
    raw = resp.raw
    while True:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError
        try:
            data = raw.read1(CHUNK, decode_content=True)
        except Exception as exc:  # urllib3's own errors (a reset, a read timeout): as requests names them
            raise requests.ConnectionError(type(exc).__name__) from None
        if not data:
            return
        yield data


def bounded(parts: Iterator[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for part in parts:
        total += len(part)
        if total > limit:
            raise TooLarge
        yield part


def origin_of(url: str) -> str:
    """scheme://host:port of a URL: what logs and errors name a server by (its path and query may hold a token,
    and user:password@ never shows)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def unreachable(origin: str, exc: requests.RequestException) -> str:
    """Why a request did not reach the server, by its kind: the exception's own text holds the URL."""
    if isinstance(exc, requests.exceptions.ProxyError):
        return f"the HTTP proxy for {origin} refused the connection"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"the TLS handshake with {origin} failed"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connecting to {origin} timed out"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"{origin} did not answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc.args[0] if exc.args else None, str):
        return f"could not connect to {origin}"
    return f"the connection to {origin} broke off"
