"""A request body read by msgspec, taken only where that reading is certainly the json module's.

The json module reads a 5 MB context in about 3.6 ms (its string scanner, and a Python call per object for the
repeated-key check); msgspec in 1.4 ms. msgspec reads what json reads the same way (integers of any length,
floats, escapes) and refuses more: NaN and Infinity, numbers out of a float's range, lone surrogate escapes, a
byte-order mark, other encodings, nesting past its limit. Whatever it refuses goes to the json module, whose
answer (and words, in a 400) stand. What it takes silently is a key given twice in one object (the last wins),
which the proxy refuses (the proxy and the upstream could read different values): that is checked here by
counting, and a body it cannot clear goes to the json module too.
"""

from __future__ import annotations

from itertools import chain, compress, repeat
from operator import is_
from typing import Any

import msgspec

from argoproxy.edge.byte_counts import count_byte

_DECODER = msgspec.json.Decoder()
UNREAD = object()  # msgspec's reading was not taken: the json module decides


def read_body(raw: bytes) -> Any:
    """The JSON value `raw` holds as the json module reads it, or UNREAD."""
    value = decoded(raw)
    return value if value is UNREAD or no_repeated_key(raw, value) else UNREAD


def decoded(raw: bytes) -> Any:
    """msgspec's reading of `raw`, keys given twice not checked yet; UNREAD when it refuses the text."""
    try:
        return _DECODER.decode(raw)
    except (ValueError, RecursionError):  # DecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        return UNREAD


_CONTAINER = frozenset((dict, list))


def members_and_depth(value: Any, containers: int) -> tuple[int, int]:
    """How many keys the objects of a parsed value hold, and how deep its arrays and objects nest, given how
    many arrays and objects it holds (`containers`, counted in its text: json_scan.py; more is safe).

    A long body's repeated-key check compares the keys with the text's colons outside strings
    (json_scan.JsonCounts.colons), so no string is looked at. The value is walked a level at a time, each step a
    C loop over the whole level (map, compress, chain: no Python code per item, array or object), and once
    all `containers` are found no item is looked at again: 200,000 empty arrays or a million numbers cost
    tens of milliseconds (bench/hostile_bodies.py)."""
    if type(value) is not dict and type(value) is not list:
        return 0, 0
    members = depth = 0
    found = 1
    level: list[Any] = [value]
    while level:
        depth += 1
        kinds = list(map(type, level))
        dicts: list[dict[str, Any]] = list(compress(level, map(is_, kinds, repeat(dict))))
        members += sum(map(len, dicts))
        if found >= containers:  # every array and object is found: none of this level holds another
            break
        lists: list[list[Any]] = list(compress(level, map(is_, kinds, repeat(list))))
        # one list alone (a long array of numbers or strings, the usual hostile body) is looked at as it is
        items: list[Any] = lists[0] if len(lists) == 1 and not dicts else list(
            chain(chain.from_iterable(map(dict.values, dicts)), chain.from_iterable(lists)))
        level = list(compress(items, map(_CONTAINER.__contains__, map(type, items))))
        found += len(level)
    return members, depth


def no_repeated_key(raw: bytes, value: Any) -> bool:
    """True when no object in `raw` (whose parsed value is `value`) gives a key twice; False when it does or
    when this cannot tell.

    Outside strings a `:` only ever separates a key from its value, so the text holds one per member written:
    as many as the parsed objects have keys when none was given twice (a repeated key leaves fewer). The colons
    inside strings are those of the parsed strings, except one written as the escape `\\u003a`, which is a
    colon when parsed and not in the text: where a string holds a colon and the text holds `\\u003` (any of
    sixteen escapes, rare), the count cannot tell."""
    members, in_strings = _members_and_colons(value)
    if in_strings and b"\\" in raw and b"\\u003" in raw:  # a byte's search (memchr) first: most bodies have none
        return False
    return count_byte(raw, b":") - in_strings == members


def _members_and_colons(value: Any) -> tuple[int, int]:
    """How many keys the objects of a parsed JSON value hold, and how many colons its strings (keys too)."""
    if type(value) is not dict and type(value) is not list:
        return 0, count_byte(value, ":") if type(value) is str else 0
    members = colons = 0
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict:
            members += len(node)
            items: Any = node.values()
            for key in node:
                if ":" in key:
                    colons += count_byte(key, ":")
        else:
            items = node
        for item in items:
            kind = type(item)
            if kind is str:
                if ":" in item:  # a search (memchr) first: most strings have none
                    colons += count_byte(item, ":")
            elif kind is dict or kind is list:
                push(item)
    return members, colons
