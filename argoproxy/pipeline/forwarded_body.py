"""A forwarded request's body when it is a JSON object: what its reservation, its usage estimate and the limit
its reservation sends read (the proxy forwards the bytes as they came otherwise)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from argoproxy.edge.request_body import parse_object
from argoproxy.errors import ProxyError
from argoproxy.jsonfast import loads

if TYPE_CHECKING:
    from argoproxy.pipeline.call import Call

_FIRST_BYTE = re.compile(rb"[^ \t\r\n]")  # after JSON's white space, which every parser skips before a value


def forwarded_body(call: Call, strict: bool = False) -> dict[str, Any] | None:
    """A forwarded request's body when it is a JSON object (what its reservation and usage estimate read), after
    any white space the upstream's parser skips too. `strict`, for its reservation: read as the API routes read
    one, a key given twice or in two cases refused (a server written in Go reads `Options` as `options`), and an
    object the proxy cannot read refused too: Go's parser takes what it refuses (invalid UTF-8, deep nesting), and
    a body reserved unread would be sent with no limit."""
    raw = call.plan.raw_body
    first = _FIRST_BYTE.search(raw) if raw else None
    if first is None or first.group() != b"{":
        return None
    try:
        body = parse_object(raw) if strict else loads(raw)
    except ProxyError as exc:
        if strict or exc.code == "duplicate_key":
            raise
        return None  # not JSON after all: reserved as a body the proxy does not read
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
