"""Usage summed for what the key store's sums do not group by: a person's or a lead's keys only (a set of key
names: the store's sums of each key, added up), by person (the store's sums by key, added up by owner) and by agent
session (the session rows, teamkeys/session_usage.py, summed here). The rows are the ones `keys usage` and `keys
usage --sessions` print, so the sums equal theirs to the token and the cent."""

from __future__ import annotations

from typing import Any

from argoproxy.teamkeys.usage_totals import summed_rows

MOST_VALUES = 1_000_000  # every value of a group (a key's days, models; every key's sums)
SERVICE = "(service keys)"  # the person of keys with no owner; no email is spelled so


def by_keys(store: Any, group: str, since: str, keys: frozenset[str], model: str | None) -> dict[str, list[int]]:
    """Sums by day, model or key of some keys: the store's sums of each key (its index names it), added up here,
    so a person's few keys cost a few indexed reads, not a read of every key's rows. Redis's store sums its (cached)
    rows in Python whatever is asked: there, one pass over the keys' rows."""
    if getattr(store, "redis", None) is not None:
        return summed_rows([row for row in store.usage_rows(since) if row[0] in keys], group, None, model)
    sums: dict[str, list[int]] = {}
    for key in sorted(keys):
        for value, *counts in store.usage_totals(group, since, key, model, "", MOST_VALUES):
            total = sums.setdefault(value, [0, 0, 0, 0, 0])
            for n, count in enumerate(counts):
                total[n] += count
    return sums


def by_person(store: Any, since: str, keys: frozenset[str] | None, model: str | None,
              owners: dict[str, str]) -> dict[str, list[int]]:
    """Sums by person: the store's sums by key, added up by each key's owner."""
    sums: dict[str, list[int]] = {}
    for key, *counts in store.usage_totals("key", since, None, model, "", MOST_VALUES):
        if keys is not None and key not in keys:
            continue
        total = sums.setdefault(owners.get(key, SERVICE), [0, 0, 0, 0, 0])
        for n, count in enumerate(counts):
            total[n] += count
    return sums


def by_session(store: Any, since: str, keys: frozenset[str] | None, model: str | None) -> dict[str, list[int]]:
    """Sums by agent session of the keys' session rows (None: every key's)."""
    sums: dict[str, list[int]] = {}
    for name, session, row_model, _day, requests, inputs, outputs, cost in store.session_usage(since):
        if (keys is not None and name not in keys) or (model is not None and row_model != model):
            continue
        total = sums.setdefault(session, [0, 0, 0, 0, 0])
        for n, count in enumerate((requests, inputs, outputs, cost)):
            total[n] += count
    return sums


def page_of(sums: dict[str, list[int]], group: str, after: str, limit: int) -> list[tuple[Any, ...]]:
    """A page of sums in the store's order (day: newest first; else by name), after a cursor."""
    newest = group == "day"
    ordered = sorted(sums, reverse=newest)
    if after:
        ordered = [v for v in ordered if (v < after if newest else v > after)]
    return [(v, *sums[v]) for v in ordered[:limit]]
