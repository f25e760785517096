"""A long request body's top-level members with where each value lies in the client's bytes, so that a proxy
that changes a few of them (the model, the user, stream options) sends the others as the client wrote them.

Encoding a parsed body again costs more than parsing it (a 5 MB context: 11 ms against 4), and most of a long
body is one member (`messages`, `input`) that nothing changed. The members are parsed by the json module's own
decoder, one value at a time (`raw_decode` at each value's index), so the result and every error are the json
module's; anything unusual at the top level (white space before the object, a byte-order mark, not an object)
is left to the whole-text parse instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from argoproxy.jsonfast import dumps

# Shorter bodies are encoded again whole when they change: well under a tenth of a millisecond.
SPANS_FROM = 64 * 1024

# More members than this and the whole-text parse is cheaper (a Python step per member: a million flat members
# cost 4x json.loads); the bodies this is for hold one long member beside a few short ones.
MAX_MEMBERS = 256

Offsets = dict[str, tuple[int, int]]
_WS = re.compile(r"[ \t\n\r]*")


@dataclass(frozen=True)
class Spans:
    """Where each top-level value lies in the body's text."""
    chars: Offsets  # in the decoded text
    ascii: bool  # the text is ASCII: the same offsets in its bytes

    def in_bytes(self, raw: bytes) -> Offsets:
        """The offsets in `raw` (converted only when needed: a pass over a non-ASCII text)."""
        return self.chars if self.ascii else _byte_offsets(raw.decode("utf-8"), self.chars)


def parse_members(raw: bytes, decoder: json.JSONDecoder) -> tuple[dict[str, Any], Spans] | None:
    """The object `raw` holds, parsed by `decoder`, and where each top-level value lies; None when the text is
    not a plain, valid UTF-8 object (the caller's whole-text parse then gives the answer or the error)."""
    if raw[:1] != b"{" or raw[1:2] == b"\x00":  # white space first, a BOM, UTF-16/32, not an object
        return None
    try:  # strictly: bytes json.loads lets through as lone surrogates must not reach the upstream as they are
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    found = _members(text, decoder)
    if found is None:
        return None
    pairs, offsets = found
    body = decoder.object_pairs_hook(pairs) if decoder.object_pairs_hook is not None else dict(pairs)
    return body, Spans(offsets, len(text) == len(raw))


def _members(text: str, decoder: json.JSONDecoder) -> tuple[list[tuple[str, Any]], Offsets] | None:
    scan, ws = decoder.raw_decode, _skip
    pairs: list[tuple[str, Any]] = []
    spans: Offsets = {}
    at = ws(text, 1)
    if text[at:at + 1] == "}":
        at += 1
    else:
        while True:
            if text[at:at + 1] != '"':
                return None
            key, at = scan(text, at)
            at = ws(text, at)
            if text[at:at + 1] != ":":
                return None
            start = ws(text, at + 1)
            value, at = scan(text, start)
            pairs.append((key, value))
            spans[key] = (start, at)
            if len(pairs) > MAX_MEMBERS:
                return None
            at = ws(text, at)
            mark = text[at:at + 1]
            at += 1
            if mark == "}":
                break
            if mark != ",":
                return None
            at = ws(text, at)
    return (pairs, spans) if ws(text, at) == len(text) else None


def _skip(text: str, at: int) -> int:
    """The index after the white space at `at`."""
    space = _WS.match(text, at)
    return space.end() if space else at


def _byte_offsets(text: str, spans: Offsets) -> Offsets:
    """Character offsets as byte offsets of the UTF-8 text (members come in order, so one pass)."""
    out: Offsets = {}
    chars = size = 0
    for key, (start, end) in sorted(spans.items(), key=lambda item: item[1]):
        size += len(text[chars:start].encode())
        head = size
        size += len(text[start:end].encode())
        out[key], chars = (head, size), end
    return out


def encode_members(raw: bytes, spans: Spans, body: dict[str, Any], touched: Iterable[str]) -> bytes:
    """`body` as JSON: members not in `touched` that came from `raw` as written there, the rest encoded."""
    fresh = set(touched)
    offsets = spans.in_bytes(raw)
    view = memoryview(raw)  # slices of it are not copies: the one copy is the join
    parts: list[bytes | memoryview] = [b"{"]
    for key, value in body.items():
        span = None if key in fresh else offsets.get(key)
        parts += (dumps(key), b":", view[span[0]:span[1]] if span else dumps(value), b",")
    if len(parts) > 1:
        parts[-1] = b"}"  # in place of the last comma
    else:
        parts.append(b"}")
    return b"".join(parts)
