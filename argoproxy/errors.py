"""The one error shape of the product: OpenAI's {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import json
from typing import Any

# HTTP status -> OpenAI error type, as OpenAI's API uses them.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ProxyError(Exception):
    """An error the proxy answers with itself; carries everything the client sees."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        cause: str | None = None,
    ) -> None:
        if len(message) > MAX_MESSAGE:  # one that quotes what a client sent (a model name of 20 MB)
            message = message[:MAX_MESSAGE] + "..."
        super().__init__(message)
        self.raw = raw  # an upstream error body relayed as it was (pass-through modes)
        self.status = status
        self.message = message
        self.type = type or error_type(status)
        self.param = param
        self.code = code
        self.headers = headers or {}
        # Why the proxy refused, where status and code cannot say (a 429 for a key's budget, not its rate): the
        # metrics and the status page count refusals by cause (argoproxy/observe/refusals.py).
        self.cause = cause

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


MAX_MESSAGE = 4096  # characters of an error message: our own are a few lines, an upstream's is cut to 1000


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def named(err: dict[str, Any], request_id: str, client_request_id: str = "") -> dict[str, Any]:
    """An error object naming its request: the proxy's own id (`request_id`, the one in X-Cot-Proxy-Request-ID,
    the journals, logs and spans), and the client's X-Request-ID beside it (`client_request_id`) when it sent one."""
    err["request_id"] = request_id
    if client_request_id:
        err["client_request_id"] = client_request_id
    return err


def error_json(message: str, type: str, param: str | None = None, code: str | None = None) -> bytes:
    return json.dumps(error_body(message, type, param, code)).encode()

