"""Typed reads of a client's request fields, for every front door's translator: a helper returns a field's value
when it has the type the door's API gives it (or None when it is absent) and raises the door's 400 naming the
field otherwise, so a wrong type is never a TypeError (a 500) further on.

Each door words its errors its own way, so each helper takes the door's error factory, `bad(message, param)`:
the message says what the field must be ("must be a string, not a number."), the factory adds where.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from argoproxy.errors import ProxyError

Bad = Callable[[str, str], ProxyError]

# JSON type -> the Python types json.loads gives it (bool is not a number here, as in JSON).
_KINDS: dict[str, tuple[type, ...]] = {"a string": (str,), "a boolean": (bool,), "an object": (dict,),
                                       "an array": (list,), "an integer": (int,), "a number": (int, float)}


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for name in ("a string", "an integer", "a number", "an object", "an array"):
        if isinstance(value, _KINDS[name]):
            return name
    return type(value).__name__


def has_kind(value: Any, kind: str) -> bool:
    """Whether a parsed value is of the JSON kind named ("a string", "an object"...)."""
    if isinstance(value, bool) and kind != "a boolean":
        return False
    return isinstance(value, _KINDS[kind])


def field(holder: Mapping[str, Any], key: str, kind: str, param: str, bad: Bad, required: bool = False) -> Any:
    """holder[key] when it is of `kind` ("a string", "an object"...); None when absent (or null) and not
    required; the door's 400 naming `param` otherwise."""
    value = holder.get(key)
    if value is None:
        if required:
            raise bad(f"Field required: {kind}.", param)
        return None
    if not has_kind(value, kind):
        raise bad(f"must be {kind}, not {json_type(value)}.", param)
    return value


def string(holder: Mapping[str, Any], key: str, param: str, bad: Bad, required: bool = False) -> str | None:
    value: str | None = field(holder, key, "a string", param, bad, required)
    return value


def boolean(holder: Mapping[str, Any], key: str, param: str, bad: Bad) -> bool | None:
    value: bool | None = field(holder, key, "a boolean", param, bad)
    return value


def obj(holder: Mapping[str, Any], key: str, param: str, bad: Bad, required: bool = False) -> dict[str, Any] | None:
    value: dict[str, Any] | None = field(holder, key, "an object", param, bad, required)
    return value


def array(holder: Mapping[str, Any], key: str, param: str, bad: Bad, required: bool = False) -> list[Any] | None:
    value: list[Any] | None = field(holder, key, "an array", param, bad, required)
    return value
