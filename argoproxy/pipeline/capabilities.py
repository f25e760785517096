"""What a model accepts: the shipped table of model families (capabilities.yaml, beside this module), with the
user's overrides on top (`model_capabilities` / MODEL_CAPABILITIES, and a routing entry's `capabilities`).

`CapabilityTable.lookup(upstream_name, asked)` gives one model's `Caps` (cached per name pair), or None for a
model the table does not know and no override names: such a request is sent as the client wrote it.
argoproxy/pipeline/adapt.py edits requests with what this returns; docs/capabilities.md is the table for people.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from argoproxy.edge.client_caches import BoundedCache

TABLE_FILE = Path(__file__).with_name("capabilities.yaml")
WHERE = ("any", "argo")
MODEL_NAME_CHARS = 256
LOOKUP_CACHE = 512  # models remembered per table, keyed by the names a client sent
_PREFIX = re.compile(r"^.*[/:]")  # "openai/", "argo:", "anthropic/claude..." -> the model's own name
_NON_ALNUM = re.compile(r"[^a-z0-9]")


@dataclass(frozen=True)
class Caps:
    """One model's capabilities; a field at its default means "not known to be refused"."""

    family: str = ""
    temperature: bool | float = True  # False: refused; a number: the only value taken
    top_p: bool | float = True
    sampling_together: bool = True
    thinking: tuple[str, ...] | None = None  # thinking.type values taken; None: any
    thinking_budget: bool = True
    effort: tuple[str, ...] | None = None  # reasoning effort values taken; None: any; (): refused
    thinking_with_effort: bool = True
    max_tokens: int | None = None  # supplied when a request has no limit
    max_tokens_field: str = "max_tokens"
    token_limits_together: bool = True
    vision: bool | None = None  # documented, not acted on
    tools: bool | None = None
    adapt: bool = True  # False: requests for this model are sent as written


# ---------------------------------------------------------------- field parsers (one-line errors name the field)
def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _flag_or_number(value: Any) -> bool | float:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    raise ValueError(f"expected true, false or the one number taken, got {value!r}")


def _names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(value)


def _limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def _limit_field(value: Any) -> str:
    if value not in ("max_tokens", "max_completion_tokens"):
        raise ValueError(f"expected max_tokens or max_completion_tokens, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a name, got {value!r}")
    return value.strip()


FIELDS = {"temperature": _flag_or_number, "top_p": _flag_or_number, "sampling_together": _flag,
          "thinking": _names, "thinking_budget": _flag, "effort": _names, "thinking_with_effort": _flag,
          "max_tokens": _limit, "max_tokens_field": _limit_field, "token_limits_together": _flag,
          "vision": _flag, "tools": _flag, "adapt": _flag}
OVERRIDE_KEYS = (*FIELDS, "like")


def parse_fields(item: Mapping[str, Any], at: str, allowed: tuple[str, ...] = OVERRIDE_KEYS) -> dict[str, Any]:
    """Capability fields of one table entry or override, typed; ValueError names the bad one ("{at}.top_p: ...")."""
    if not isinstance(item, Mapping):
        raise ValueError(f"{at}: expected an object of capability fields, got {type(item).__name__}")
    out: dict[str, Any] = {}
    for key, value in item.items():
        if key not in allowed:
            raise ValueError(f"{at}.{key}: unknown capability (known: {', '.join(allowed)})")
        try:
            out[key] = _like(value) if key == "like" else FIELDS[key](value)
        except ValueError as exc:
            raise ValueError(f"{at}.{key}: {exc}") from None
    return out


def _like(value: Any) -> str:
    name = _text(value)
    if _family_named(name) is None:
        raise ValueError(f"no family {name!r} in the table (known: {', '.join(f.caps.family for f in builtin_table())})")
    return name


# ---------------------------------------------------------------- the shipped table
@dataclass(frozen=True)
class Family:
    caps: Caps
    match: tuple[str, ...]
    where: str = "any"


def parse_table(data: Any) -> tuple[Family, ...]:
    """The `families` list of capabilities.yaml."""
    families = []
    for i, item in enumerate((data or {}).get("families") or ()):
        at = f"families[{i}]"
        item = dict(item)
        name, match, where = _text(item.pop("family", None)), item.pop("match", None), item.pop("where", "any")
        if not isinstance(match, list) or not all(isinstance(m, str) and m for m in match):
            raise ValueError(f"{at}.match: expected a list of globs")
        if where not in WHERE:
            raise ValueError(f"{at}.where: expected one of {', '.join(WHERE)}")
        fields = parse_fields(item, at, tuple(FIELDS))
        families.append(Family(Caps(family=name, **fields), tuple(m.lower() for m in match), where))
    return tuple(families)


@lru_cache(maxsize=1)
def builtin_table() -> tuple[Family, ...]:
    """The table shipped in the package, read once per process."""
    return parse_table(yaml.safe_load(TABLE_FILE.read_text(encoding="utf-8")))


def squashed(name: str) -> str:
    """A model name as the table's globs see it: no provider prefix, lower-case letters and digits only."""
    return _NON_ALNUM.sub("", _PREFIX.sub("", name.strip().lower()))


# ---------------------------------------------------------------- the setting
@dataclass(frozen=True)
class Overrides:
    """`model_capabilities`: (model glob, fields) in the order given; later ones win."""

    items: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def then(self, glob: str, fields: Mapping[str, Any]) -> "Overrides":
        """These overrides with one more on top (a routing entry's `capabilities`, for every model it serves)."""
        return Overrides((*self.items, (glob, tuple(fields.items()))))

    def __bool__(self) -> bool:
        return bool(self.items)

    def as_written(self) -> dict[str, dict[str, Any]]:
        """model_capabilities as a user writes it in YAML (`--show` prints this, not the dataclass)."""
        return {glob: dict(fields) for glob, fields in self.items}


def parse_overrides(value: Any) -> Overrides:
    """model_capabilities: a YAML mapping (or JSON text from MODEL_CAPABILITIES) of model name or glob ->
    capability fields (and `like`: a shipped family to start from)."""
    if isinstance(value, str):
        if not value.strip():
            return Overrides()
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if value is None:
        return Overrides()
    if not isinstance(value, dict):
        raise ValueError(f"expected an object mapping a model name to capability fields, got {type(value).__name__}")
    items = []
    for glob, fields in value.items():
        if not isinstance(glob, str) or not glob.strip():
            raise ValueError(": model names must be non-empty strings")
        parsed = parse_fields(fields, f".{glob}")
        items.append((glob.strip(), tuple(parsed.items())))
    return Overrides(tuple(items))


def _family_named(name: str) -> Caps | None:
    return next((f.caps for f in builtin_table() if f.caps.family == name), None)


# ---------------------------------------------------------------- lookup
class CapabilityTable:
    """The families that apply on one backend, with the overrides in force; lookups cached."""

    def __init__(self, backend: str, overrides: Overrides = Overrides(),
                 families: tuple[Family, ...] | None = None) -> None:
        where = ("any", backend)  # families of the table marked with a backend's name apply on that backend
        self.families = tuple(f for f in (builtin_table() if families is None else families) if f.where in where)
        self.overrides = overrides
        self._cache: BoundedCache[Caps | None] = BoundedCache(LOOKUP_CACHE)

    def lookup(self, upstream: str | None, asked: str | None = None) -> Caps | None:
        """The capabilities of the model sent upstream as `upstream` (the client asked for `asked`)."""
        name = upstream or asked
        if not name:
            return None
        return self._cache.get((upstream, asked), lambda: self._resolve(name, asked))

    def _resolve(self, upstream: str, asked: str | None) -> Caps | None:
        caps = self.family_of(upstream)
        names = {n.lower() for n in (upstream, asked) if n}
        for glob, fields in self.overrides.items:
            if any(fnmatch.fnmatchcase(n, glob.lower()) for n in names):
                caps = _overridden(caps, dict(fields))
        return caps if caps is not None and caps.adapt else None

    def family_of(self, name: str) -> Caps | None:
        if len(name) > MODEL_NAME_CHARS:  # no real model name is this long
            return None
        key = squashed(name)
        for family in self.families:
            if any(fnmatch.fnmatchcase(key, glob) for glob in family.match):
                return family.caps
        return None


def _overridden(caps: Caps | None, fields: dict[str, Any]) -> Caps:
    like = fields.pop("like", None)
    if like is not None:
        caps = _family_named(like)
    return dataclasses.replace(caps or Caps(family="configured"), **fields)
