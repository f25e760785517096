"""Request ids: every request gets one (the client's X-Request-ID when it is a sane token), every response
carries it in X-Request-ID, and errors and logs name it.

A WSGI middleware rather than Flask hooks: it costs a few microseconds, and it also covers the answers Flask
makes without running hooks."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Callable, Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from argoproxy.fastpath.server_reach import client_socket
from argoproxy.upstream.request_id import UPSTREAM_ID

# start_response's exc_info (PEP 3333)
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
Write = Callable[[bytes], object]

MAX_REQUEST_ID = 128
ENVIRON_KEY = "cot_proxy.request_id"
WRITE_KEY = "cot_proxy.server_write"


def request_id_of(value: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one."""
    if value and len(value) <= MAX_REQUEST_ID and value.isprintable():
        return value
    return os.urandom(16).hex()  # 128 random bits like uuid4().hex, for a sixth of its CPU


class ServerWrite:
    """The server's `write` for one request (PEP 3333: what start_response returns), once the answer started.
    A stream read on the request's own greenlet writes its keepalive comments through it while it waits on the
    upstream (edge/keepalive.py); None before the answer started. `client`: the client's socket under
    Gunicorn (its `gunicorn.socket`), which that stream watches for the client leaving."""

    __slots__ = ("write", "client")

    def __init__(self, client: Any = None) -> None:
        self.write: Write | None = None
        self.client = client

    def __call__(self) -> Write | None:
        return self.write


class RequestIds:
    """Wraps a WSGI app: sets the id in the environ and adds X-Request-ID to the response (replacing one the
    upstream sent: the client's id is the one that ties its logs to ours). It also keeps the server's write
    callable for the request (ServerWrite, in the environ under WRITE_KEY)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        rid = environ[ENVIRON_KEY] = request_id_of(environ.get("HTTP_X_REQUEST_ID"))
        server_write = environ[WRITE_KEY] = ServerWrite(client_socket(environ))

        def start(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Write:
            kept = [h for h in headers if h[0].lower() != "x-request-id"]
            if len(kept) != len(headers):  # the upstream's own id, which its vendor's support asks for, renamed
                upstream = next(v for k, v in headers if k.lower() == "x-request-id")
                if upstream != rid:
                    kept.append((UPSTREAM_ID, upstream))
            kept.append(("X-Request-ID", rid))
            headers = kept
            write = server_write.write = start_response(status, headers, exc_info)
            return write

        return self.app(environ, start)
