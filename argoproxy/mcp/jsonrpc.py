"""JSON-RPC 2.0 as MCP uses it: one message per POST (no batches since 2025-06-18), read strictly, and the
errors the specification gives for what is not one (parse error, invalid request, method not found).

A message is a request (`method` and an `id`: a string or an integer), a notification (`method`, no `id`) or
a response (an `id` and exactly one of `result` and `error`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argoproxy.edge.byte_counts import brackets
from argoproxy.edge.msgspec_body import members_and_depth
from argoproxy.edge.request_body import MAX_DEPTH
from argoproxy.jsonfast import loads

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server errors (-32000 to -32099):
RESOURCE_NOT_FOUND = -32002  # the specification's, for resources/read
SERVER_UNAVAILABLE = -32001  # the proxy's: the server behind is not running, or died during the call
REQUEST_TIMEOUT = -32003  # the proxy's: the server did not answer within the call's deadline
REQUEST_CANCELLED = -32800  # the client cancelled it (the code LSP and the SDKs use; nobody reads this answer)

RequestId = str | int


class RpcError(Exception):
    """A JSON-RPC error to answer with (to `id`, None when the message's id could not be read)."""

    def __init__(self, code: int, message: str, id: RequestId | None = None, data: Any = None,
                 status: int = 200) -> None:
        super().__init__(message)
        self.code, self.message, self.id, self.data, self.status = code, message, id, data, status

    def answer(self) -> dict[str, Any]:
        return error(self.id, self.code, self.message, self.data)


def error(id: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": id, "error": body}


def refusal(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """The proxy's error in OpenAI's shape, as a JSON-RPC error: what MCP clients read in a 4xx's body (the SDKs show
    its message; of any other body only the status), OpenAI's fields in `data`."""
    return error(None, INTERNAL_ERROR if status >= 500 else INVALID_REQUEST, body["error"]["message"], body["error"])


def result(id: RequestId, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "result": value}


@dataclass(frozen=True)
class Message:
    raw: dict[str, Any]

    @property
    def method(self) -> str | None:
        return self.raw.get("method")

    @property
    def id(self) -> RequestId | None:
        return self.raw.get("id")

    @property
    def is_request(self) -> bool:
        return "method" in self.raw and "id" in self.raw

    @property
    def is_notification(self) -> bool:
        return "method" in self.raw and "id" not in self.raw

    @property
    def params(self) -> dict[str, Any]:
        return self.raw.get("params") or {}


def valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse(body: bytes, max_bytes: int) -> Message:
    """The one message a POST carries, or the RpcError the specification gives (HTTP 400 or 413 with it)."""
    if len(body) > max_bytes:
        raise RpcError(INVALID_REQUEST, f"Message too large: at most {max_bytes} bytes.", status=413)
    opened = brackets(body)
    try:
        value = loads(body)
    except (ValueError, UnicodeDecodeError):
        if opened > MAX_DEPTH:  # the parser's own depth bound (about a thousand levels) is past the proxy's
            raise too_deep() from None
        raise RpcError(PARSE_ERROR, "Parse error: the body is not JSON.", status=400) from None
    if opened > MAX_DEPTH and members_and_depth(value, opened)[1] > MAX_DEPTH:
        raise too_deep()
    if isinstance(value, list):
        raise RpcError(INVALID_REQUEST, "Invalid Request: batches are not supported; send one message per POST.",
                       status=400)
    return checked(value)


def too_deep() -> RpcError:
    """The proxy's bound on nesting, as its other routes have it (edge/request_body.py): no server is asked to parse
    deeper than that."""
    return RpcError(PARSE_ERROR, f"Parse error: the message is nested more than {MAX_DEPTH} levels deep.", status=400)


def checked(value: Any) -> Message:
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid Request: expected a JSON-RPC 2.0 object ("jsonrpc": "2.0").',
                       status=400)
    id = value.get("id")
    if "id" in value and not valid_id(id):
        raise RpcError(INVALID_REQUEST, "Invalid Request: id must be a string or an integer.", status=400)
    if "method" in value:
        if not isinstance(value["method"], str) or not value["method"]:
            raise RpcError(INVALID_REQUEST, "Invalid Request: method must be a non-empty string.", id, status=400)
        if "params" in value and not isinstance(value["params"], dict):
            raise RpcError(INVALID_REQUEST, "Invalid Request: params must be an object.", id, status=400)
        if "result" in value or "error" in value:
            raise RpcError(INVALID_REQUEST, "Invalid Request: a request has no result or error.", id, status=400)
        return Message(value)
    if "id" not in value or ("result" in value) == ("error" in value):
        raise RpcError(INVALID_REQUEST, "Invalid Request: neither a request, a notification nor a response.", id,
                       status=400)
    return Message(value)


def progress_token(message: dict[str, Any]) -> Any:
    """The progress token a request's `_meta` gives (None: it asks for no progress notifications)."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get("progressToken") if isinstance(meta, dict) else None
