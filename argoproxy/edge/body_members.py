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
from typing import Any, Iterable

from argoproxy.jsonfast import dumps

# Shorter bodies are encoded again whole when they change: well under a tenth of a millisecond.
SPANS_FROM = 64 * 1024

Spans = dict[str, tuple[int, int]]
_WS = re.compile(r"[ \t\n\r]*")


def parse_members(raw: bytes, decoder: json.JSONDecoder) -> tuple[dict[str, Any], Spans] | None:
    """The object `raw` holds, parsed by `decoder`, and each top-level value's byte span; None when the text is
    not a plain UTF-8 object (the caller's whole-text parse then gives the answer or the error)."""
    if raw[:1] != b"{":  # leading white space, a BOM, UTF-16/32 or not an object: the ordinary path
        return None
    text = raw.decode("utf-8", "surrogatepass")  # what json.loads does with UTF-8 bytes
    found = _members(text, decoder)
    if found is None:
        return None
    pairs, spans = found
    body = decoder.object_pairs_hook(pairs) if decoder.object_pairs_hook is not None else dict(pairs)
    return body, spans if len(text) == len(raw) else _byte_spans(text, spans)


def _members(text: str, decoder: json.JSONDecoder) -> tuple[list[tuple[str, Any]], Spans] | None:
    scan, ws = decoder.raw_decode, _skip
    pairs: list[tuple[str, Any]] = []
    spans: Spans = {}
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


def _byte_spans(text: str, spans: Spans) -> Spans:
    """Character spans as byte spans of the UTF-8 text (members come in order, so one pass)."""
    out: Spans = {}
    chars = size = 0
    for key, (start, end) in sorted(spans.items(), key=lambda item: item[1]):
        size += len(text[chars:start].encode("utf-8", "surrogatepass"))
        head = size
        size += len(text[start:end].encode("utf-8", "surrogatepass"))
        out[key], chars = (head, size), end
    return out


def encode_members(raw: bytes, spans: Spans, body: dict[str, Any], touched: Iterable[str]) -> bytes:
    """`body` as JSON: members not in `touched` that came from `raw` as written there, the rest encoded."""
    fresh = set(touched)
    view = memoryview(raw)  # slices of it are not copies: the one copy is the join
    parts: list[bytes | memoryview] = [b"{"]
    for key, value in body.items():
        span = None if key in fresh else spans.get(key)
        parts += (dumps(key), b":", view[span[0]:span[1]] if span else dumps(value), b",")
    if len(parts) > 1:
        parts[-1] = b"}"  # in place of the last comma
    else:
        parts.append(b"}")
    return b"".join(parts)
