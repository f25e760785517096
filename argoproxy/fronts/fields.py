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


# ------------------------------------------------------------------ rules: fields a door checks and leaves out

# A rule checks one field's value as its API's document gives it, and raises the door's 400 naming the field
# (or the part of it) that is wrong. Doors hold the fields they take but do not translate to rules, so that a
# request the document refuses is refused rather than passed on with the part dropped.
Rule = Callable[[Any, str, Bad], None]


def must_be(value: Any, name: str, param: str, bad: Bad) -> None:
    """The door's 400 unless the value is of the JSON kind named ("a string", "an object"...)."""
    if not has_kind(value, name):
        raise bad(f"must be {name}, not {json_type(value)}.", param)


def kind(name: str) -> Rule:
    """A value of one JSON kind."""
    types, boolean = _KINDS[name], name == "a boolean"

    def rule(value: Any, param: str, bad: Bad) -> None:  # has_kind written out: the commonest rule
        if not isinstance(value, types) or (isinstance(value, bool) and not boolean):
            raise bad(f"must be {name}, not {json_type(value)}.", param)
    return rule


def integer(minimum: int | None = None, maximum: int | None = None) -> Rule:
    def rule(value: Any, param: str, bad: Bad) -> None:
        must_be(value, "an integer", param, bad)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            if maximum is None:
                raise bad(f"must be an integer of at least {minimum}.", param)
            raise bad(f"must be an integer from {minimum} to {maximum}." if minimum is not None
                      else f"must be an integer of at most {maximum}.", param)
    return rule


def number(lowest: float, highest: float) -> Rule:
    def rule(value: Any, param: str, bad: Bad) -> None:
        must_be(value, "a number", param, bad)
        if not lowest <= value <= highest:
            raise bad(f"must be a number from {lowest:g} to {highest:g}.", param)
    return rule


def text(shortest: int = 0, longest: int | None = None) -> Rule:
    """A string of shortest to longest characters."""
    def rule(value: Any, param: str, bad: Bad) -> None:
        must_be(value, "a string", param, bad)
        if len(value) < shortest or (longest is not None and len(value) > longest):
            size = f"{shortest} to {longest}" if longest is not None else f"at least {shortest}"
            raise bad(f"must be a string of {size} characters.", param)
    return rule


def one_of(*values: str) -> Rule:
    def rule(value: Any, param: str, bad: Bad) -> None:
        if not isinstance(value, str) or value not in values:
            raise bad(f"must be one of {', '.join(values)}.", param)
    return rule


def or_null(inner: Rule) -> Rule:
    def rule(value: Any, param: str, bad: Bad) -> None:
        if value is not None:
            inner(value, param, bad)
    return rule


def list_of(item: Rule, index: str = ".{}", shortest: int = 0, longest: int | None = None) -> Rule:
    """A list of shortest to longest items, each following `item` (index: how the door writes an item's place
    after the list's)."""
    def rule(value: Any, param: str, bad: Bad) -> None:
        must_be(value, "an array", param, bad)
        if len(value) < shortest or (longest is not None and len(value) > longest):
            size = f"{shortest} to {longest}" if longest is not None else f"at least {shortest}"
            raise bad(f"must be a list of {size} items.", param)
        for i, each in enumerate(value):
            item(each, param + index.format(i), bad)
    return rule


def fields_of(rules: Mapping[str, Rule], required: tuple[str, ...] = ()) -> Rule:
    """An object whose fields named in `rules` follow them (those `required` present); other fields are not
    looked at (the door leaves them out)."""
    def rule(value: Any, param: str, bad: Bad) -> None:
        must_be(value, "an object", param, bad)
        checked(value, rules, param, bad, required)
    return rule


def checked(holder: Mapping[str, Any], rules: Mapping[str, Rule], where: str, bad: Bad,
            required: tuple[str, ...] = ()) -> None:
    """The fields of `holder` named in `rules`, each checked when present; those `required` must be (where="":
    the request's own fields). The field's name is only spelled out for a field present."""
    for key in required:
        if key not in holder:
            raise bad("Field required.", f"{where}.{key}" if where else key)
    # whichever is shorter is walked: a tool or block holds a few of the many fields its rules name
    for key in holder if len(holder) < len(rules) else rules:
        rule = rules.get(key)
        if rule is not None and key in holder:
            rule(holder[key], f"{where}.{key}" if where else key, bad)


def by_type(kinds: Mapping[str, Rule]) -> Rule:
    """An object whose `type` picks its rule among `kinds`."""
    def rule(value: Any, param: str, bad: Bad) -> None:
        must_be(value, "an object", param, bad)
        if not isinstance(value.get("type"), str) or value["type"] not in kinds:
            raise bad(f"must be one of {', '.join(kinds)}.", f"{param}.type")
        kinds[value["type"]](value, param, bad)
    return rule
