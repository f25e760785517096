"""Errors Gunicorn answers itself, before the app runs, in the API's error shape instead of an HTML page.

A request Gunicorn cannot parse (a bad request line, an obs-folded or invalid header, a bad chunk size: 400; a
request line too long: 414; too many or too large headers: 431; an unsupported Transfer-Encoding: 501) never
reaches the app. Every worker class (sync, gthread, gevent and the balanced gevent worker) answers these in
``Worker.handle_error``, which writes the page through ``gunicorn.util.write_error``; that one function is
replaced (in the fence: fastpath/server_reach.py), so the answer is the same whichever worker runs and whether
the fast path is on or off.
``install`` runs in the Gunicorn master while the configuration is read, so every forked worker has it.

The answer comes in the shape of the door the client called: handle_error writes it while handling the parse
error, whose traceback holds what the parser had read of the request line (fastpath/server_reach.py:
parsed_target); the worker's app (``answer_for``, when it is built) says whose route that is, as for any
request (Anthropic's shape on /v1/messages, OpenAI's on its routes and wherever the door is unknown).
The verified Gunicorn version is in tests/unit/test_gunicorn_errors.py.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from argoproxy.edge.request_ids import PROXY_ID, new_request_id
from argoproxy.errors import error_body, error_type
from argoproxy.fastpath.server_reach import error_writer, parsed_target, write_errors_with
from argoproxy.redaction import LOG_CUT_MARGIN, redact_log_text

if TYPE_CHECKING:
    from argoproxy.fronts import Front
    from argoproxy.serve.door import Door

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
_door: Door | None = None  # the worker's app's door (answer_for): whose route a refused request was for


def answer_for(door: Door) -> None:
    """Shape Gunicorn's own errors by this door's routes (the worker's app, when it is built)."""
    global _door
    _door = door


def error_response(status: int, reason: str, detail: str, front: Front | None = None) -> bytes:
    """The whole HTTP response for an error Gunicorn found: error JSON in the door's shape (OpenAI's when `front`
    is None), connection closed."""
    code, summary = _CODES.get(status, ("invalid_http_request", reason or "Bad request"))
    # Gunicorn's description may quote the client's header line (its Python parser does): never a credential
    detail = redact_log_text(" ".join(_unwrapped(str(detail)).split())[:MAX_DETAIL + LOG_CUT_MARGIN])[:MAX_DETAIL]
    message = f"{summary}: {detail}." if detail and status != 500 else f"{summary}."
    rid = new_request_id()  # as every answer has one (the request's headers are unread)
    err = error_body(message, error_type(status), None, code)["error"]
    obj = front.error_body(status, err, rid) if front is not None else {"error": {**err, "request_id": rid}}
    ids = {"X-Request-ID": rid, PROXY_ID: rid, **(front.id_headers(rid) if front is not None else {})}
    body = json.dumps(obj, ensure_ascii=True).encode()
    head = f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n" + \
        "".join(f"{name}: {value}\r\n" for name, value in ids.items()) + f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1", "replace") + body


def _unwrapped(detail: str) -> str:
    """Gunicorn's 431 says "Error parsing headers: '<why>'": the why alone."""
    prefix = "Error parsing headers: '"
    return detail[len(prefix):-1] if detail.startswith(prefix) and detail.endswith("'") else detail


def front_of_refused() -> Front | None:
    """The door of the request whose parse error is being handled now (None: OpenAI's, or unknown)."""
    exc = sys.exc_info()[1]
    if exc is None or _door is None:
        return None
    try:
        target = parsed_target(exc)
        return _door.front_of(target) if target is not None else None
    except Exception:  # noqa: BLE001 - choosing the shape must never cost the client its answer (OpenAI's then)
        return None


def answer(status: int, reason: str, mesg: str) -> bytes:
    """What Gunicorn writes for its own error: handle_error writes it while handling the error (in its `except`
    clause), so sys.exc_info() holds it."""
    return error_response(status, reason, mesg, front_of_refused())


def install() -> None:
    """Make every Gunicorn worker answer its own errors with error JSON in the API's shape (idempotent)."""
    write_errors_with(answer)


def installed() -> bool:
    return error_writer() is answer
