"""Request ids: every request gets the proxy's own id, never the client's (a client could otherwise name its
request after another's in journals, logs and spans). Every response carries it in X-Cot-Proxy-Request-ID, and
errors, journals, logs and spans name the request by it. The client's X-Request-ID, when it is a sane token, is
kept beside it (`client_request_id`) and echoed in X-Request-ID, which carries the proxy's own id when the client
sent none.

A WSGI middleware rather than Flask hooks: it costs a few microseconds, and it also covers the answers Flask
makes without running hooks."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Callable, Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from argoproxy.fastpath.server_reach import client_socket
from argoproxy.ids import random_hex
from argoproxy.redaction import header_value
from argoproxy.upstream.request_id import UPSTREAM_ID

# start_response's exc_info (PEP 3333)
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
Write = Callable[[bytes], object]

MAX_REQUEST_ID = 128
ENVIRON_KEY = "cot_proxy.request_id"  # the proxy's own id
CLIENT_KEY = "cot_proxy.client_request_id"  # the client's X-Request-ID, when it sent a sane one
WRITE_KEY = "cot_proxy.server_write"
PROXY_ID = "X-Cot-Proxy-Request-ID"  # the proxy's own id, on every answer
CLIENT_ID = "X-Request-ID"  # the client's id echoed; the proxy's own when the client sent none


def new_request_id() -> str:
    """The proxy's own id for a request: 128 random bits like uuid4().hex, for a sixth of its CPU, from the
    process's buffer of the OS's randomness (argoproxy/ids.py): no system call per request."""
    return random_hex(16)


def client_request_id(value: str | None) -> str:
    """The client's X-Request-ID when it is a sane token (printable ASCII: a header's other bytes come back as
    mojibake in journals and error objects), else ""."""
    if value and len(value) <= MAX_REQUEST_ID and value.isascii() and value.isprintable():
        return value
    return ""


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
    """Wraps a WSGI app: sets the ids in the environ and adds X-Cot-Proxy-Request-ID and X-Request-ID to the
    response (replacing an X-Request-ID the upstream sent, which goes out as X-Upstream-Request-ID, cleaned like
    every relayed header). It also keeps the server's write callable for the request (ServerWrite, in the environ
    under WRITE_KEY)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        rid = environ[ENVIRON_KEY] = new_request_id()
        client = environ[CLIENT_KEY] = client_request_id(environ.get("HTTP_X_REQUEST_ID"))
        echoed = client or rid
        server_write = environ[WRITE_KEY] = ServerWrite(client_socket(environ))

        def start(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Write:
            kept = [h for h in headers if h[0].lower() != "x-request-id"]
            if len(kept) != len(headers):  # the upstream's own id, which its vendor's support asks for, renamed
                upstream = next(v for k, v in headers if k.lower() == "x-request-id")
                if upstream != echoed:  # a relay that passed the client's id on says nothing of its own
                    kept.append((UPSTREAM_ID, header_value(upstream)))
            kept.append((CLIENT_ID, echoed))
            kept.append((PROXY_ID, rid))
            headers = kept
            write = server_write.write = start_response(status, headers, exc_info)
            return write

        return self.app(environ, start)
