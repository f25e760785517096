"""Writing an event that holds a long string without copying it: the string is swapped for a marker, the
small rest is encoded as usual, and the marker's place is filled with the string JSON-escaped a slice at a
time. Responses' closing events repeat the whole output (up to MAX_SSE_EVENT_BYTES): encoded at once, each
would cost three copies of it (the encoder's str, its bytes, the SSE framing)."""

from __future__ import annotations

import os
from typing import Any, Iterator

from argoproxy.jsonfast import dumps

SLICE = 1 << 20  # characters: strings longer than this are written in slices of this size
# A marker no client can write into a string it sends (a per-process nonce between NULs).
_MARK = "\x00cot-proxy-long-" + os.urandom(8).hex() + "-%d\x00"


class Short(dict[str, Any]):
    """An event its maker knows holds no string longer than SLICE (a door that bounds what it echoes and what
    its answer holds so far): swap passes it by unread. Walking a Responses stream's eight events that repeat
    the response object, or an item, cost more than encoding them."""

    __slots__ = ()


def swap(obj: Any) -> tuple[Any, list[str]]:
    """obj with every string longer than SLICE replaced by a marker, and those strings in order (obj itself,
    unchanged, when it has none)."""
    if type(obj) is Short or _short_delta(obj) or not holds_long(obj):  # most events: looked at, not copied
        return obj, []
    texts: list[str] = []
    return _swap(obj, texts), texts


def _short_delta(event: Any) -> bool:
    """A delta event, most of a stream: one chunk's text in `delta` (Messages: `delta.text`, `partial_json` or
    `thinking`) beside a few ids and indices, so its `delta` is all that could be long."""
    if type(event) is not dict or len(event) > 8:
        return False
    delta = event.get("delta")
    if type(delta) is dict and len(delta) <= 3:
        delta = delta.get("text") or delta.get("partial_json") or delta.get("thinking") or ""
    return type(delta) is str and len(delta) <= SLICE


def holds_long(obj: Any) -> bool:
    """Does obj (JSON-shaped) hold a string longer than SLICE?"""
    stack = [obj]
    pop, extend = stack.pop, stack.extend
    while stack:
        value = pop()
        kind = type(value)
        if kind is str:
            if len(value) > SLICE:
                return True
        elif kind is dict:
            extend(value.values())
        elif kind is list:
            extend(value)
    return False


def _swap(obj: Any, texts: list[str]) -> Any:
    if type(obj) is str:
        if len(obj) <= SLICE:
            return obj
        texts.append(obj)
        return _MARK % (len(texts) - 1)
    if type(obj) is dict:
        return {key: _swap(value, texts) for key, value in obj.items()}
    if type(obj) is list:
        return [_swap(value, texts) for value in obj]
    return obj


def spliced(data: bytes, texts: list[str]) -> Iterator[bytes] | None:
    """The encoded event with each marker (its JSON string, quotes kept) filled by its text in slices; None
    when an encoder did not write every marker as JSON (the caller then encodes the event as it is). The
    markers appear in the order swap() met them, which is the order the encoder writes them."""
    cuts, at = [], 0
    for i in range(len(texts)):
        marker = dumps(_MARK % i)[1:-1]
        at = data.find(marker, at)
        if at < 0:
            return None
        cuts.append((at, at + len(marker)))
        at += len(marker)
    return _filled(data, cuts, texts)


def _filled(data: bytes, cuts: list[tuple[int, int]], texts: list[str]) -> Iterator[bytes]:
    start = 0
    for (begin, end), text in zip(cuts, texts):
        yield data[start:begin]
        for first in range(0, len(text), SLICE):
            yield dumps(text[first:first + SLICE])[1:-1]
        start = end
    yield data[start:]
