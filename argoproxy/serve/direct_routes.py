"""Requests the door answers without Flask: those whose path begins with a segment mounted to be served directly
(the MCP endpoint's, `/mcp` and `/mcp/<server>`, when MCP servers are configured).

Flask's one view only hands a request to the door and turns its Answer into a Werkzeug Response (flask_view.py).
For MCP's calls, small and each one a round trip an agent waits on, Flask's request context and dispatch were
about 0.3 ms of the 1.6-1.8 ms the proxy added to a tool call (bench/mcp_latency.py; issue 58 bounds it at 2 ms).
The answer is written by the same Response (`to_flask`), used as a WSGI application as Werkzeug documents, so
HEAD, Content-Length and a stream's close are what the view gives. Any other spelling of such a path (percent-
encoded, repeated slashes) goes through Flask to the same door, and gets the same answer."""

from __future__ import annotations

import logging
from typing import Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from argoproxy.edge.http_objects import Request
from argoproxy.edge.paths import raw_target
from argoproxy.edge.raw_target import RAW_TARGET_KEY
from argoproxy.serve.door import Door
from argoproxy.edge.request_ids import ENVIRON_KEY
from argoproxy.serve.flask_view import internal_error, to_flask

log = logging.getLogger("cot_proxy")


class DirectRoutes:
    """WSGI: a request whose raw path's first segment is one of `segments` (any case) goes to the door, any other
    to `app` (Flask's)."""

    def __init__(self, app: WSGIApplication, door: Door, segments: Iterable[str]) -> None:
        self.app = app
        self.door = door
        self.segments = frozenset(s.lower() for s in segments)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target: str = environ.get(RAW_TARGET_KEY) or raw_target(environ)
        if first_segment(target) not in self.segments:
            return self.app(environ, start_response)
        try:
            response = to_flask(self.door.handle(Request.from_environ(environ, target)))
        except Exception:  # noqa: BLE001 - a bug answers as Flask's handler answers it on the other routes
            log.exception("unexpected error in request %s", environ.get(ENVIRON_KEY) or "-")
            response = to_flask(internal_error(self.door, environ))
        return response(environ, start_response)


def first_segment(target: str) -> str:
    """`mcp` of `/MCP/git?x`, lower-cased; "" for a target not in origin form."""
    if not target.startswith("/"):
        return ""
    return target[1:].partition("?")[0].partition("/")[0].lower()
