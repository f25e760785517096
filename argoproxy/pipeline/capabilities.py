"""What a model accepts, looked up per request: the families that apply on the backend in use (the shared
table and the provider's own, argoproxy/config/model_families.py), with the user's overrides on top.

`CapabilityTable.lookup(upstream_name, asked)` gives one model's `Caps` (cached per name pair), or None for a
model the table does not know and no override names: such a request is sent as the client wrote it.
argoproxy/pipeline/adapt.py edits requests with what this returns. Which backend a family applies to is the
providers' data: nothing here names one.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from typing import Any

from argoproxy.config.model_families import (  # noqa: F401  (Overrides, parse_overrides: read with the table)
    Caps, FamilyCaps, Overrides, builtin_table, families_for, family_named, parse_overrides)
from argoproxy.edge.client_caches import BoundedCache

MODEL_NAME_CHARS = 256
LOOKUP_CACHE = 512  # models remembered per table, keyed by the names a client sent
_PREFIX = re.compile(r"^.*[/:]")  # a prefix ("vendor/", "vendor:") -> the model's own name
_NON_ALNUM = re.compile(r"[^a-z0-9]")


def squashed(name: str) -> str:
    """A model name as the table's globs see it: no provider prefix, lower-case letters and digits only."""
    return _NON_ALNUM.sub("", _PREFIX.sub("", name.strip().lower()))


# ---------------------------------------------------------------- lookup
class CapabilityTable:
    """The families that apply on one backend, with the overrides in force; lookups cached."""

    def __init__(self, backend: str, overrides: Overrides = Overrides(),
                 families: tuple[FamilyCaps, ...] | None = None) -> None:
        self.families = families_for(backend) if families is None else families
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
        caps = family_named(like)
    return dataclasses.replace(caps or Caps(family="configured"), **fields)
