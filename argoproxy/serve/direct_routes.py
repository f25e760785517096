"""Every request answered by the door without Flask's dispatch.

Flask's request context, its URL map and its own Request and Response around the door's were the glue done twice:
the door canonicalises and classifies the path once, reads its own Request from the environ and answers an
Answer (serve/door.py), so Flask's dispatch decided nothing and cost about 200 Python calls a request (about
0.3 ms of the 1.6-1.8 ms the proxy added to an MCP tool call, where this began: bench/mcp_latency.py). The
answer is written by the Response Flask's view wrote (`to_flask`), used as a WSGI application as Werkzeug
documents, so HEAD, Content-Length, the status line and a stream's close are what they were."""

from __future__ import annotations

import logging
from typing import Iterable
from wsgiref.types import StartResponse, WSGIEnvironment

from argoproxy.edge.http_objects import Request
from argoproxy.edge.paths import raw_target
from argoproxy.edge.raw_target import RAW_TARGET_KEY
from argoproxy.serve.door import Door
from argoproxy.edge.request_ids import ENVIRON_KEY
from argoproxy.serve.flask_view import internal_error, to_flask

log = logging.getLogger("cot_proxy")


class DirectRoutes:
    """WSGI: each request to the door, its Answer written as Werkzeug's Response writes it."""

    def __init__(self, door: Door) -> None:
        self.door = door

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target: str = environ.get(RAW_TARGET_KEY) or raw_target(environ)
        try:
            response = to_flask(self.door.handle(Request.from_environ(environ, target)))
        except Exception:  # noqa: BLE001 - a bug answers a 500 in the door's shape, its traceback logged
            log.exception("unexpected error in request %s", environ.get(ENVIRON_KEY) or "-")
            response = to_flask(internal_error(self.door, environ))
        return response(environ, start_response)
