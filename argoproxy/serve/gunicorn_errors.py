"""Errors Gunicorn answers itself, before the app runs, in OpenAI's error shape instead of an HTML page.

A request Gunicorn cannot parse (a bad request line, an obs-folded or invalid header, a bad chunk size: 400; a
request line too long: 414; too many or too large headers: 431; an unsupported Transfer-Encoding: 501) never
reaches the app. Every worker class (sync, gthread, gevent and the balanced gevent worker) answers these in
``Worker.handle_error``, which writes the page through ``gunicorn.util.write_error``; that one function is
replaced here, so the answer is the same whichever worker runs and whether the fast path is on or off.
``install`` runs in the Gunicorn master while the configuration is read, so every forked worker has it.
The verified Gunicorn version is in tests/unit/test_gunicorn_errors.py.
"""

from __future__ import annotations

import json
from typing import Any

from argoproxy.edge.request_ids import request_id_of
from argoproxy.errors import error_body, error_type

# status -> (error code, what to tell the client)
_CODES = {
    400: ("invalid_http_request", "The request is not valid HTTP"),
    403: ("forbidden", "The request is forbidden"),
    414: ("uri_too_long", "The request line is too long"),
    417: ("expectation_failed", "The Expect header cannot be met"),
    431: ("headers_too_large", "The request headers are too many or too large"),
    500: ("internal_error", "The proxy failed to handle this request; see its log"),
    501: ("unsupported_transfer_encoding", "The request's Transfer-Encoding is not supported"),
}
MAX_DETAIL = 200  # characters of Gunicorn's own description kept (it may quote the client's bytes)


def error_response(status: int, reason: str, detail: str) -> bytes:
    """The whole HTTP response for an error Gunicorn found: OpenAI error JSON, connection closed. In OpenAI's
    shape on every path: the request could not be read, so neither could the door it was meant for."""
    code, summary = _CODES.get(status, ("invalid_http_request", reason or "Bad request"))
    detail = " ".join(str(detail).split())[:MAX_DETAIL]
    message = f"{summary}: {detail}." if detail and status != 500 else f"{summary}."
    obj = error_body(message, error_type(status), None, code)
    rid = obj["error"]["request_id"] = request_id_of(None)  # as every answer has one (the request's is unread)
    body = json.dumps(obj, ensure_ascii=True).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"X-Request-ID: {rid}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1", "replace") + body


def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for gunicorn.util.write_error (same arguments, same non-blocking write)."""
    from gunicorn import util
    util.write_nonblock(sock, error_response(status_int, reason, mesg))


def install() -> None:
    """Make every Gunicorn worker answer its own errors with OpenAI error JSON (idempotent)."""
    from gunicorn import util
    util.write_error = write_error


def installed() -> bool:
    from gunicorn import util
    return util.write_error is write_error
