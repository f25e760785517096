"""One WebSocket session's logic, without a socket: a client's text message in, the text messages to send out.

A `response.create` event is the body of POST /v1/responses (`type` taken off, `stream: true` put on) and goes
through the door it is handed, as its own request (its own request id, the connection's headers and key): what
the door answers is what the SSE stream would have carried, each event's JSON sent as one message. An answer that
is not a stream (a refusal, a bad request) becomes an `error` event with the HTTP status beside it, as OpenAI
sends them; a 401 (the key revoked, expired, unknown) also closes the connection with 1008.

The connection-local cache holds the last response of the connection: its whole input and its output, as input
items. A `previous_response_id` naming it continues from there without the store (`store: false`, and warm-ups);
one naming a stored response goes to the door, which reads the store. `generate: false` answers a response that
generated nothing (no upstream call; the key is checked by `check_key`), whose id the next event may continue.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Iterator

from argoproxy.edge.http_objects import Answer, Request
from argoproxy.edge.request_ids import new_request_id
from argoproxy.errors import ProxyError, error_body
from argoproxy.fronts.responses.response import usage_to_responses
from argoproxy.ids import new_id
from argoproxy.jsonfast import dumps

PATH = "/v1/responses"
# RFC 6455 section 7.4.1's close codes, as the session uses them.
NORMAL, GOING_AWAY, POLICY, TOO_BIG, FAILURE = 1000, 1001, 1008, 1009, 1011
# Members of a response.create that are the WebSocket's, not POST /v1/responses' (sent on, they would be refused
# as unknown): its type, the warm-up switch, the lane id (one lane here: responses run one after another).
ENVELOPE = ("type", "generate", "stream_id")
# The upgrade's headers that are the WebSocket handshake's, never a response's.
HANDSHAKE_HEADERS = frozenset({"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
                               "Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Content-Length",
                               "Transfer-Encoding"})
FINAL_EVENTS = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')


class Closing(Exception):
    """The session ends: the close code and reason the connection closes with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class Cached:
    """The connection's last response: its id, the whole conversation up to it as input items, whether the store
    keeps it (then the door continues it, not this cache)."""
    id: str
    items: list[Any]
    stored: bool


def error_event(status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                code: str | None = None) -> str:
    """An `error` server event (OpenAI's WebSocket shape: the error object, and the HTTP status it stands for)."""
    return dumps({"type": "error", "status": status, **error_body(message, type, param, code)}).decode()


class Session:
    """One connection's sequence of responses. `handle`: the door (a Request in, an Answer out); `headers`: the
    upgrade's (the key among them), copied for each request; `check_key`: raises the door's ProxyError when the
    key is no longer accepted (for what asks nothing of the door: warm-ups); `path`: the upgrade's route
    (/v1/responses, /responses)."""

    def __init__(self, handle: Callable[[Request], Answer], headers: dict[str, str],
                 check_key: Callable[[], None], path: str = PATH) -> None:
        self.handle, self.check_key, self.path = handle, check_key, path
        self.headers = {name: value for name, value in headers.items() if name.title() not in HANDSHAKE_HEADERS}
        self.headers["Content-Type"] = "application/json"
        self.cached: Cached | None = None
        self.responses = 0  # response.create events answered (the connection's log line counts them)

    # ------------------------------------------------------------ one client message
    def respond(self, text: str) -> Generator[str, None, None]:
        """The messages that answer one client message, in order; Closing when the connection must end."""
        event = self.event_of(text)
        self.responses += not isinstance(event, str)
        if isinstance(event, str):
            yield event
            return
        body = {name: value for name, value in event.items() if name not in ENVELOPE}
        if body.get("background"):
            yield error_event(400, "background is not supported over a WebSocket: send it over HTTP "
                                   "(POST /v1/responses).", param="background", code="unsupported_parameter")
            return
        body.pop("background", None)
        try:
            history = self.history_of(body)
        except ValueError:
            yield error_event(400, "`input` is a string or an array of items.", param="input", code="invalid_input")
            return
        if event.get("generate") is False:
            yield from self.warm_up(body, history)
            return
        if history is not None:
            body["input"] = history
        body["stream"] = True
        yield from self.answered(body)

    def event_of(self, text: str) -> dict[str, Any] | str:
        """The client event, or the error event that answers it."""
        try:
            event = json.loads(text)
        except (ValueError, RecursionError):
            return error_event(400, "The message is not JSON: send each client event as one JSON object.",
                               code="invalid_json")
        if not isinstance(event, dict):
            return error_event(400, "A client event is a JSON object.", code="invalid_event")
        kind = event.get("type")
        if kind != "response.create":
            shown = kind if isinstance(kind, str) and len(kind) <= 64 else "?"
            return error_event(400, f"Unknown client event type {shown!r}: this connection takes response.create.",
                               param="type", code="unknown_event_type")
        return event

    def history_of(self, body: dict[str, Any]) -> list[Any] | None:
        """The whole input when `previous_response_id` names the cached response (taken off the body), or None
        (none named, or the door's to find: a stored response); ValueError for an `input` that cannot follow."""
        previous, cached = body.get("previous_response_id"), self.cached
        if cached is None or previous != cached.id or cached.stored:
            return None
        del body["previous_response_id"]
        given = body.get("input", [])
        if isinstance(given, str):
            given = [{"role": "user", "content": given}]
        if not isinstance(given, list):
            raise ValueError("input")
        return [*cached.items, *given]

    # ------------------------------------------------------------ generate: false
    def warm_up(self, body: dict[str, Any], history: list[Any] | None) -> Iterator[str]:
        """A response that generated nothing: its id continues from the input given (and any history)."""
        try:
            self.check_key()
        except ProxyError as err:
            yield from self.refused(err.status, err.body())
            return
        if history is None and body.get("previous_response_id") is not None:
            yield error_event(400, f"Previous response with id {str(body['previous_response_id'])[:128]!r} not "
                                   "found on this connection: a warm-up continues only the connection's last "
                                   "response.", param="previous_response_id", code="previous_response_not_found")
            return
        given = body.get("input", [])
        items = history if history is not None else \
            [{"role": "user", "content": given}] if isinstance(given, str) else given if isinstance(given, list) else []
        now = int(time.time())
        response = {"id": new_id("resp_"), "object": "response", "created_at": now, "status": "in_progress",
                    "completed_at": None, "background": False, "error": None, "incomplete_details": None,
                    "instructions": body.get("instructions"), "model": body.get("model"), "output": [],
                    "previous_response_id": None, "store": False, "tools": body.get("tools") or [],
                    "tool_choice": body.get("tool_choice", "auto"), "parallel_tool_calls": True,
                    "usage": usage_to_responses(None)}
        yield dumps({"type": "response.created", "sequence_number": 0, "response": response}).decode()
        self.cached = Cached(response["id"], list(items), stored=False)
        response = {**response, "status": "completed", "completed_at": now}
        yield dumps({"type": "response.completed", "sequence_number": 1, "response": response}).decode()

    # ------------------------------------------------------------ through the door
    def answered(self, body: dict[str, Any]) -> Iterator[str]:
        """The door's answer to one response.create, event by event ("" while the upstream is silent: the
        connection then looks at its socket)."""
        data = dumps(body)
        req = Request.of("POST", self.path, data, dict(self.headers), request_id=new_request_id())
        answer = self.handle(req)
        if not answer.is_streamed or answer.status_code >= 400:
            yield from self.refused(answer.status_code, error_of(answer.get_data()))
            return
        given = body.get("input")
        items = [{"role": "user", "content": given}] if isinstance(given, str) else \
            list(given) if isinstance(given, list) else []
        try:
            for payload in sse_data(answer.chunks):
                if payload and any(final in payload[:80] for final in FINAL_EVENTS):
                    self.keep(payload, items)
                yield payload.decode("utf-8", "replace")
        finally:
            close = getattr(answer.response, "close", None)
            if close is not None:  # as a WSGI server closes a body: the call observed, the upstream let go
                close()

    def keep(self, payload: bytes, items: list[Any]) -> None:
        """The cache after a response's last event: its input and output, or nothing (a failed response)."""
        try:
            response = json.loads(payload).get("response") or {}
        except (ValueError, AttributeError):
            return
        output = response.get("output")
        if response.get("status") == "failed" or not isinstance(output, list) or not isinstance(response.get("id"), str):
            self.cached = None
            return
        self.cached = Cached(response["id"], [*items, *output], stored=bool(response.get("store")))

    def refused(self, status: int, body: dict[str, Any]) -> Iterator[str]:
        """An answer that is not a stream, as an error event; a refused key ends the connection (1008)."""
        error = body.get("error")
        if not isinstance(error, dict):
            error = {}
        message = error.get("message") if isinstance(error.get("message"), str) else f"HTTP {status}"
        yield dumps({"type": "error", "status": status,
                     "error": {"type": error.get("type") or "server_error", "code": error.get("code"),
                               "message": message, "param": error.get("param"),
                               **{k: v for k, v in error.items() if k in ("request_id", "client_request_id")}}}
                    ).decode()
        if status == 401:
            raise Closing(POLICY, "the key was refused")


def error_of(data: bytes) -> dict[str, Any]:
    """The error object of a door's error answer (OpenAI's shape), or an empty one."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def sse_data(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The `data` of each SSE event of a stream, as bytes; b"" for a comment (a keepalive), so that the caller
    looks at its socket while the upstream is silent."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while True:
            end = pending.find(b"\n\n")
            if end < 0:
                break
            block, pending = pending[:end], pending[end + 2:]
            data = b"\n".join(line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:"))
            if data != b"[DONE]":
                yield data  # b"": a comment (keepalive)
