"""Which HTTP headers cross the proxy, in each direction."""

from __future__ import annotations

import re
import uuid
from typing import Iterable, Mapping

from argoproxy.redaction import header_value
from argoproxy.upstream.relayed_headers import relayed

# RFC 9110 section 7.6.1 hop-by-hop headers, plus the ones the proxy sets itself.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
NOT_FORWARDED_UP = HOP_BY_HOP | {"host", "content-length"}


_TOKEN = re.compile(r"[!#$%&'*+.^`|~0-9A-Za-z-]+")  # RFC 9110 field-name


def _connection_listed(connection: str | None) -> set[str]:
    return {name.strip().lower() for name in connection.split(",")} if connection else set()


def _header_name(key: str) -> str | None:
    """The HTTP name of a WSGI environ key, or None when the header does not go upstream."""
    if key.startswith("HTTP_"):
        name = key[5:].replace("_", "-").title()
    elif key == "CONTENT_TYPE":
        name = "Content-Type"
    else:
        return None
    if not _TOKEN.fullmatch(name):  # an empty or odd name a lenient HTTP parser let through
        return None
    return None if name.lower() in NOT_FORWARDED_UP else name


_NAMES: dict[str, str | None] = {}  # environ key -> header name; bounded by what clients send, capped anyway
_NAMES_CAP = 4096


def request_headers(environ: Mapping[str, object]) -> dict[str, str]:
    """The client's headers as they go upstream (from the WSGI environ, which is cheaper than Flask's view)."""
    headers: dict[str, str] = {}
    names = _NAMES
    for key, value in environ.items():
        try:
            name = names[key]
        except KeyError:
            name = _header_name(key)
            if len(names) < _NAMES_CAP and len(key) <= 64:  # a junk name (up to 8 KB) is not worth keeping
                names[key] = name
        if name is not None and value:
            headers[name] = str(value)
    connection = environ.get("HTTP_CONNECTION")
    for name in _connection_listed(connection if isinstance(connection, str) else None):  # headers the client marked hop-by-hop
        headers.pop(name.title(), None)
    if "X-Request-Id" in headers and not _is_uuid(headers["X-Request-Id"]):
        del headers["X-Request-Id"]  # llama.cpp's server answers 400 "Wrong uuid" to any other form
    return headers


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


_RELAYS: dict[str, bool] = {}  # lower-case name -> relayed(name), asked once per name; capped as _NAMES is


def response_headers(upstream: Mapping[str, str], *, drop_encoding: bool,
                     replaced: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The upstream's headers as they go to the client: only those on the allow-list
    (upstream/relayed_headers.py), each value cleaned of internal addresses, one value per name (repeated
    headers joined, as RFC 9110 allows); Content-Encoding dropped when the body was decoded, and the names in
    `replaced` (the proxy sets its own), whatever their case."""
    dropped = _connection_listed(upstream.get("Connection")) | {n.lower() for n in replaced}
    if drop_encoding:
        dropped = dropped | {"content-encoding"}
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    relays = _RELAYS
    for name, value in upstream.items():
        low = name.lower()
        if low in dropped:
            continue
        allowed = relays.get(low)
        if allowed is None:
            allowed = relayed(low)
            if len(relays) < _NAMES_CAP and len(low) <= 64:
                relays[low] = allowed
        if not allowed:
            continue
        value = header_value(value)
        at = seen.get(low)
        if at is None:
            seen[low] = len(out)
            out.append((name, value))
        else:
            out[at] = (out[at][0], f"{out[at][1]}, {value}")
    return out
