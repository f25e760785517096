"""The Flask layer, thin: one catch-all view turns the WSGI request into a Request, hands it to the Door
(argoproxy/serve/door.py) and turns the Answer into a Flask Response.

Flask's URL map decides nothing: what a request is gets decided once, by the door, on the canonical path.
"""

from __future__ import annotations

from typing import Any, Mapping

from flask import Blueprint, Response, request
from werkzeug.http import HTTP_STATUS_CODES

from argoproxy.edge.classify import ALL_METHODS
from argoproxy.edge.raw_target import RAW_TARGET_KEY
from argoproxy.serve.door import Door
from argoproxy.edge.http_objects import Answer, Request
from argoproxy.edge.paths import raw_target
from argoproxy.edge.request_ids import CLIENT_KEY, ENVIRON_KEY
from argoproxy.errors import error_body, named
from argoproxy.jsonfast import dumps


def build_blueprint(door: Door) -> Blueprint:
    bp = Blueprint("proxy", __name__)

    def enter(path: str = "") -> Response:
        return through(door)

    methods = sorted(ALL_METHODS)
    bp.add_url_rule("/", "root", enter, methods=methods)
    bp.add_url_rule("/<path:path>", "any", enter, methods=methods)
    return bp


def through(door: Door) -> Response:
    """The current Flask request through the door, as a Flask Response."""
    environ = request.environ
    req = Request.from_environ(environ, environ.get(RAW_TARGET_KEY) or raw_target(environ))
    return to_flask(door.handle(req))


def error_answer(door: Door, environ: Mapping[str, Any], status: int, body: dict[str, Any],
                 headers: Mapping[str, str] | None = None) -> Answer:
    """An error the door did not answer itself (Flask's own, a bug past the door) in OpenAI's shape, with the
    request's ids, as the door answers its own errors."""
    named(body["error"], environ.get(ENVIRON_KEY, ""), environ.get(CLIENT_KEY, ""))
    return Answer(door.answers.secrets.data(dumps(body)), 200 if door.settings.compatible else status,
                  headers, content_type="application/json")


def internal_error(door: Door, environ: Mapping[str, Any]) -> Answer:
    """The answer to a request whose handling raised past the door (a bug, logged by the caller)."""
    return error_answer(door, environ, 500, error_body("The proxy failed to handle this request; see its log.",
                                                       "server_error", None, "internal_error"))


def to_flask(answer: Answer) -> Response:
    return Response(answer.response, status_line(answer.status_code), answer.headers.items(),
                    direct_passthrough=answer.direct_passthrough)


def status_line(code: int) -> str:
    """`401 Unauthorized`, `429 Too Many Requests`: the status with its standard reason phrase. Given a bare
    number, Werkzeug writes the phrase in capitals (`401 UNAUTHORIZED`); a status nobody named (an upstream's 520)
    gets none of its own."""
    return f"{code} {HTTP_STATUS_CODES.get(code, 'Unknown')}"
