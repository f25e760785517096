"""The proxy's own request and answer objects: what the door (argoproxy/serve/door.py) takes and gives back.

Plain objects, so the whole pipeline (door, gateway, front doors, backends) runs without Flask or a server:
the WSGI layer (argoproxy/serve/direct_routes.py) turns a WSGI environ into a Request and an Answer into a Response,
and in-process tests (tests/unit/test_gateway.py) build Requests directly. Answer keeps the few members of
Flask's Response the pipeline uses (status_code, headers[name] = value, is_streamed, response, get_data,
set_data), so code written against either reads the same.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Mapping
from wsgiref.headers import Headers

import msgspec

from argoproxy.edge.agent_sessions import SESSION_ENVIRON, session_id, session_in
from argoproxy.edge.header_policy import request_headers
from argoproxy.edge.request_ids import CLIENT_KEY, ENVIRON_KEY, WRITE_KEY
from argoproxy.jsonfast import dumps

if TYPE_CHECKING:
    from argoproxy.teamkeys.records import KeyRecord


class Request(msgspec.Struct):
    """A client's request as the edge read it (one per request: a Struct, made in C)."""

    method: str
    target: str  # the raw request target as the client sent it: path and query, still percent-encoded
    headers: dict[str, str] = msgspec.field(default_factory=dict)  # the client's headers that may go upstream
    input: BinaryIO = msgspec.field(default_factory=io.BytesIO)  # the body, read once the route is known
    content_length: str | None = None
    chunked: bool = False  # a body without a length, ended by its framing
    request_id: str = ""  # the proxy's own (edge/request_ids.py)
    client_request_id: str = ""  # the client's X-Request-ID, kept beside it ("" when it sent none)
    presented_keys: tuple[str, ...] = ()  # the client keys it presented, once auth accepted them
    withheld: dict[str, str] = msgspec.field(default_factory=dict)  # key headers auth removed holding no accepted key
    team_key: KeyRecord | None = None  # the team key (argoproxy/teamkeys/) auth accepted, if it was one
    server_write: Callable[[], Any] | None = None  # the server's write() once the answer started (request_ids)
    host: str = ""  # the Host header (it never goes upstream, so it is not in headers)
    protocol: str = ""  # HTTP/1.1, HTTP/1.0 (the server's SERVER_PROTOCOL); empty in-process
    host_sent: bool = True  # a Host header came, empty or not
    # The client's end of the TCP connection (address, port) as the socket says it; empty when a header said it
    # (PROXY protocol) or there is none (a Unix socket, in-process). Read by the listener proof only.
    peer: tuple[str, str] = ("", "")
    session: str = ""  # the agent session it belongs to, bounded and sanitized (edge/agent_sessions.py)

    @classmethod
    def of(cls, method: str, target: str, body: bytes | dict[str, Any] | None = None,
           headers: Mapping[str, str] | None = None, request_id: str = "test-request") -> "Request":
        """A request with a whole body (a dict is sent as JSON), for in-process use and tests."""
        from argoproxy.jsonfast import dumps
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = dumps(body)
            headers.setdefault("Content-Type", "application/json")
        body = body or b""
        host = headers.pop("Host", "")
        return cls(method, target, headers, io.BytesIO(body), str(len(body)) if body else None,
                   request_id=request_id, host=host, session=session_in(headers))

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any], target: str) -> "Request":
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" \
            or bool(environ.get("wsgi.input_terminated"))
        return cls(environ.get("REQUEST_METHOD", "GET"), target, request_headers(environ), environ["wsgi.input"],
                   environ.get("CONTENT_LENGTH") or None, chunked, environ.get(ENVIRON_KEY, ""),
                   client_request_id=environ.get(CLIENT_KEY, ""), server_write=environ.get(WRITE_KEY),
                   host=environ.get("HTTP_HOST", ""),
                   protocol=environ.get("SERVER_PROTOCOL", ""), host_sent="HTTP_HOST" in environ,
                   peer=("", "") if "PROXY_ADDR" in environ else
                   (environ.get("REMOTE_ADDR", ""), environ.get("REMOTE_PORT", "")), session=session_named(environ))


def session_named(environ: Mapping[str, Any]) -> str:
    """The agent session a request names (edge/agent_sessions.py), looked for here: a request that names none
    costs three look-ups, not a call into another module (tests/unit/test_gateway_shape.py counts those)."""
    for name in SESSION_ENVIRON:
        sent = environ.get(name)
        if sent:
            return session_id(sent)
    return ""


class Answer:
    """Status, headers and a body: bytes, or an iterable of bytes sent as it is produced (streams)."""

    def __init__(self, body: bytes | Iterable[bytes] = b"", status: int = 200,
                 headers: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
                 content_type: str | None = None, direct_passthrough: bool = False) -> None:
        self.response = body
        self.status_code = status
        if type(headers) is list:  # the encoders' (a copy: the answer's own)
            pairs = headers.copy()
        else:
            pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        self.headers = Headers(pairs)
        if content_type is not None:
            self.headers["Content-Type"] = content_type
        self.direct_passthrough = direct_passthrough  # the body is final bytes: the server sends it as it is

    @classmethod
    def json(cls, obj: object, status: int = 200) -> "Answer":
        """An object the proxy answers itself, as JSON."""
        return cls(dumps(obj), status, content_type="application/json")

    @property
    def is_streamed(self) -> bool:
        return not isinstance(self.response, (bytes, bytearray))

    @property
    def chunks(self) -> Iterable[bytes]:
        """The body as pieces: a streamed body's iterable, or the whole body in one piece."""
        body = self.response
        return (bytes(body),) if isinstance(body, (bytes, bytearray)) else body

    def get_data(self) -> bytes:
        """The whole body (an Answer's streamed body is consumed)."""
        body = self.response
        if not isinstance(body, (bytes, bytearray)):
            body = self.response = b"".join(body)
        return bytes(body)

    def set_data(self, data: bytes) -> None:
        self.response = data

    def header_list(self) -> list[tuple[str, str]]:
        return self.headers.items()

    def __repr__(self) -> str:
        body = self.response
        return f"<Answer {self.status_code} {f'{len(body)}B' if isinstance(body, (bytes, bytearray)) else 'streamed'}>"
