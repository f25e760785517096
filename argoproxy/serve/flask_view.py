"""The door's Answer as a Flask Response (to_flask), which writes it as a WSGI application (direct_routes.py), and
the 500 of a request whose handling raised past the door. What a request is gets decided once, by the door, on
the canonical path: no Flask view or URL map takes part.
"""

from __future__ import annotations

from typing import Any, Mapping

from flask import Response
from werkzeug.http import HTTP_STATUS_CODES

from argoproxy.serve.door import Door
from argoproxy.edge.http_objects import Answer
from argoproxy.edge.request_ids import CLIENT_KEY, ENVIRON_KEY
from argoproxy.errors import error_body, named
from argoproxy.jsonfast import dumps


def error_answer(door: Door, environ: Mapping[str, Any], status: int, body: dict[str, Any],
                 headers: Mapping[str, str] | None = None) -> Answer:
    """An error the door did not answer itself (a bug past the door) in OpenAI's shape, with the request's ids,
    as the door answers its own errors."""
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
