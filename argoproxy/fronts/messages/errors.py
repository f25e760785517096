"""The Messages door's errors: Anthropic's error types by HTTP status, and a bad request's 400 naming the field
in its message, as Anthropic words it."""

from __future__ import annotations

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import bad_request


# HTTP status -> Anthropic error type (https://docs.claude.com/en/api/errors).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               502: "api_error", 503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def bad(message: str, param: str) -> ProxyError:
    # Anthropic's errors have no `param`: the location goes into the message, as Anthropic words it.
    return bad_request(f"{param}: {message}", param)
