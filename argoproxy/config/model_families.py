"""What model families accept, as data: the shared table (capabilities.yaml, beside this module: families on
any backend), each provider's own families (a provider's record names its file: they apply only on its
backend, ahead of the shared ones), and the user's overrides (`model_capabilities` / MODEL_CAPABILITIES, a
routing entry's `capabilities`), parsed at start-up with one-line errors that name the field.

argoproxy/pipeline/capabilities.py looks a model up in them per request; docs/capabilities.md is the table
for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from argoproxy.config import provider_registry
from argoproxy.config.json_setting import json_setting

TABLE_FILE = Path(__file__).with_name("capabilities.yaml")


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
    if isinstance(value, str) and value in ("max_tokens", "max_completion_tokens"):
        return value
    raise ValueError(f"expected max_tokens or max_completion_tokens, got {value!r}")


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
    if family_named(name) is None:
        raise ValueError(f"no family {name!r} in the table (known: {', '.join(f.caps.family for f in all_families())})")
    return name


# ---------------------------------------------------------------- the shipped table
@dataclass(frozen=True)
class FamilyCaps:
    caps: Caps
    match: tuple[str, ...]


def parse_table(data: Any) -> tuple[FamilyCaps, ...]:
    """The `families` list of a capabilities.yaml."""
    families = []
    for i, item in enumerate((data or {}).get("families") or ()):
        at = f"families[{i}]"
        item = dict(item)
        name, match = _text(item.pop("family", None)), item.pop("match", None)
        if not isinstance(match, list) or not all(isinstance(m, str) and m for m in match):
            raise ValueError(f"{at}.match: expected a list of globs")
        fields = parse_fields(item, at, tuple(FIELDS))
        families.append(FamilyCaps(Caps(family=name, **fields), tuple(m.lower() for m in match)))
    return tuple(families)


def _read(path: Path) -> tuple[FamilyCaps, ...]:
    return parse_table(yaml.safe_load(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def builtin_table() -> tuple[FamilyCaps, ...]:
    """The shared table shipped in the package (families on any backend), read once per process."""
    return _read(TABLE_FILE)


@lru_cache(maxsize=None)
def families_for(backend: str) -> tuple[FamilyCaps, ...]:
    """The families that apply on a backend, in the order they are tried: the provider's own (its record's
    `capabilities` file), then the shared table. A backend the registry does not know has the shared ones."""
    names = provider_registry.names()
    own = provider_registry.get(backend).capabilities if backend in names else None
    return (_read(own) if own else ()) + builtin_table()


def all_families() -> tuple[FamilyCaps, ...]:
    """Every family an override's `like` may name: each registered provider's, then the shared ones."""
    return tuple(f for name in provider_registry.names() for f in families_for(name)
                 if f not in builtin_table()) + builtin_table()


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
    value = json_setting(value)
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


def family_named(name: str) -> Caps | None:
    return next((f.caps for f in all_families() if f.caps.family == name), None)
