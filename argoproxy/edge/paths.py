"""Canonical request paths: what the client's request target means, decided once, before anything routes it.

The raw target (Gunicorn's RAW_URI, else REQUEST_URI) is read, not PATH_INFO: the server has already
percent-decoded PATH_INFO, so `%2F`, `%3F` and `%23` would be indistinguishable from the real characters.
The path is decoded exactly once and refused (a 400, never forwarded) when its meaning depends on who reads
it: an encoded `/`, `?` or `#`, a raw `#`, NUL or any control character, a backslash, a `;` (path
parameters), a dot segment (`.` or `..`, raw or encoded in any case), bad percent escapes or invalid UTF-8.
Repeated slashes collapse and a trailing slash is dropped (`/v1//chat/completions/` is the chat route).

The canonical path is what classification sees and what the upstream receives, re-encoded the same way
every time; so the proxy and the upstream always agree on which route a request is. Case is handled by
the route table (argoproxy/edge/classify.py). See docs/edge.md.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from argoproxy.errors import ProxyError

# Characters a decoded path segment may hold unencoded when it is forwarded (RFC 3986 pchar, without ';').
SEGMENT_SAFE = "-._~!$&'()*+,=:@"
# Decoded characters that would change the structure of the path if an upstream decoded them again.
_STRUCTURAL = {"/": "an encoded '/' (%2F)", "?": "an encoded '?' (%3F)", "#": "an encoded '#' (%23)"}
_HEX = frozenset("0123456789abcdefABCDEF")
# Segments of unreserved characters (and ':', as in /v1beta/models/{model}:generateContent) that do not start with
# '.', single slashes: already canonical (encode_path would write them the same).
_PLAIN = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9_.~:-]*)*/?")


class PathError(ProxyError):
    """A request target the proxy will not interpret: always a 400 that names what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, f"The request path is not accepted: it contains {reason}.", code="invalid_path")


class Target(msgspec.Struct, frozen=True):
    """A request target after canonicalisation: `path` has no leading '/' ('' is the root). One per request: a
    Struct, made in C."""

    path: str  # segments re-encoded, joined by '/'
    query: str  # as the client sent it
    parts: tuple[str, ...] = ()  # the decoded segments


def raw_target(environ: dict[str, Any]) -> str:
    """The request target exactly as the client sent it (path and query, still percent-encoded)."""
    raw: str | None = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw
    # No raw target from this server: rebuild one from the decoded parts (WSGI strings are latin-1).
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "surrogateescape")
    query = environ.get("QUERY_STRING", "")
    return quote(path, safe="/" + SEGMENT_SAFE, errors="surrogateescape") + (f"?{query}" if query else "")


def canonical(raw: str) -> Target:
    """The canonical form of a raw request target, or a PathError saying why there is none."""
    if raw and not raw.startswith("/"):
        if raw == "*":
            raise PathError("an asterisk-form target")
        split = urlsplit(raw)  # absolute-form (GET http://host/path HTTP/1.1): keep path and query
        if not split.scheme or not split.netloc:
            raise PathError("no leading '/'")
        raw = (split.path or "/") + (f"?{split.query}" if split.query else "") + ("#" if "#" in raw else "")
    path, _, query = raw.partition("?")
    if "#" in raw:
        raise PathError("a '#' (fragments are never sent to a server)")
    if _PLAIN.fullmatch(path):  # the common case: nothing to decode, collapse or refuse
        stripped = path.strip("/")
        return Target(stripped, query, tuple(stripped.split("/")) if stripped else ())
    parts = tuple(_segment(s) for s in path.split("/") if s)
    return Target(encode_path(parts), query, parts)


def encode_path(parts: tuple[str, ...] | list[str]) -> str:
    """Decoded segments as the one spelling the upstream receives."""
    return "/".join(quote(s, safe=SEGMENT_SAFE) for s in parts)


def _segment(raw: str) -> str:
    """One path segment, decoded once and checked."""
    if "\\" in raw:
        raise PathError("a backslash")
    if ";" in raw:
        raise PathError("a ';' (path parameters are not accepted)")
    text = _decode(raw) if not raw.isalnum() else raw
    for ch in text:
        if ch in _STRUCTURAL and ch not in raw:  # "?" and "#" cannot be raw here; "/" split already
            raise PathError(_STRUCTURAL[ch])
        if ord(ch) < 0x20 or ord(ch) == 0x7F or 0x80 <= ord(ch) < 0xA0:
            raise PathError("a NUL or control character" if ch != "\x00" else "a NUL character (%00)")
        if ch == "\\":
            raise PathError("an encoded backslash (%5C)")
        if ch == ";":
            raise PathError("an encoded ';' (%3B)")
    if text in (".", ".."):
        raise PathError(f"a dot segment ('{raw}')")
    if text.isspace() or text != text.strip():
        raise PathError("leading or trailing white space in a segment")
    return text


def _decode(raw: str) -> str:
    """Percent-decode once; malformed escapes and invalid UTF-8 are refused rather than guessed at."""
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == "%":
            pair = raw[i + 1:i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise PathError("a malformed percent escape")
            out.append(int(pair, 16))
            i += 3
        else:  # WSGI strings carry the raw bytes as latin-1; a str beyond latin-1 is already text
            out += bytes([ord(ch)]) if ord(ch) < 256 else ch.encode("utf-8")
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise PathError("percent escapes that are not UTF-8") from None


def target_of(environ: dict[str, Any]) -> Target:
    """The canonical target of a WSGI request (PathError when it has none)."""
    return canonical(raw_target(environ))
