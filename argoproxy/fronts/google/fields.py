"""The Google door's field reads: a field under its JSON name or its proto name (`maxOutputTokens` or
`max_output_tokens`), type-checked; a bad one is a 400 naming where it is
(`contents[2].parts[0].inlineData.mimeType: ...`).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping

from argoproxy.errors import ProxyError
from argoproxy.fronts.fields import has_kind, json_type
from argoproxy.fronts.front import bad_request


def bad(message: str, where: str) -> ProxyError:
    return bad_request(f"{where}: {message}", where)


@functools.lru_cache(maxsize=None)  # keys are this module's own literals
def snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def value_of(obj: Mapping[str, Any], key: str, where: str = "") -> Any:
    """A field under its JSON name or its proto name (`maxOutputTokens` or `max_output_tokens`): Google's
    parsers take both, and so do its SDKs send both. Given both ways it is a 400 (which would win is a guess)."""
    other = snake(key)
    if other == key or other not in obj:
        return obj.get(key)
    if key in obj:
        raise bad(f"is given twice (as {key} and {other}).", f"{where}{key}")
    return obj[other]


def has_key(obj: Mapping[str, Any], key: str) -> bool:
    return key in obj or snake(key) in obj


def typed(obj: Mapping[str, Any], key: str, kind: str, where: str) -> Any:
    """obj[key] when present and of this JSON kind ("a string"...; None when absent or null), else a 400 naming
    it (argoproxy/fronts/fields.py words the type, as on the other doors)."""
    value = value_of(obj, key, where)
    if value is None:
        return None
    if not has_kind(value, kind):
        raise bad(f"must be {kind}, not {json_type(value)}.", f"{where}{key}")
    return value


def number(obj: Mapping[str, Any], key: str, where: str) -> float | int | None:
    value: float | int | None = typed(obj, key, "a number", where)
    return value


def whole_number(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    """An integer field. Google's JSON mapping of its integer fields takes a whole number written with a
    fraction (`20.0`), which is what the google-genai SDK sends: it types top_k as a float."""
    raw = value_of(obj, key, where)
    value: int | None = int(raw) if type(raw) is float and raw.is_integer() else typed(obj, key, "an integer", where)
    if value is not None and not INT32[0] <= value <= INT32[1]:  # Google's are int32 (TYPE_INT32): a 400 there
        raise bad(f"must be a 32-bit integer ({INT32[0]} to {INT32[1]}).", f"{where}{key}")
    return value


INT32 = (-2 ** 31, 2 ** 31 - 1)


def integer(obj: Mapping[str, Any], key: str, where: str, minimum: int = 0) -> int | None:
    value = whole_number(obj, key, where)
    if value is not None and value < minimum:
        raise bad(f"must be at least {minimum}.", f"{where}{key}")
    return value


def object_field(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value: dict[str, Any] | None = typed(obj, key, "an object", where)
    return value


def list_field(obj: Mapping[str, Any], key: str, where: str) -> list[Any] | None:
    value: list[Any] | None = typed(obj, key, "an array", where)
    return value


def string_field(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value: str | None = typed(obj, key, "a string", where)
    return value
