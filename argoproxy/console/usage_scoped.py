"""Usage summed in Python for what the key store's sums do not group by: a person's or a lead's keys only (a set of
key names), by agent session (the session rows, teamkeys/session_usage.py) and by person (a key's owner). The rows
are the ones `keys usage` and `keys usage --sessions` print, so the sums equal theirs to the token and the cent."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from argoproxy.teamkeys.usage_totals import kind_of

SERVICE = "(service keys)"  # the person of keys with no owner; no email is spelled so
Counted = tuple[str, str, str, str, list[int]]  # key, model, day, session, [requests, input, output, cost, unpriced]


def counted(store: Any, group: str, since: str) -> Iterator[Counted]:
    """The keys' usage rows (the session rows when grouping by session), each as Counted."""
    if group == "session":
        for name, session, model, day, requests, inputs, outputs, cost in store.session_usage(since):
            yield name, model, day, session, [requests, inputs, outputs, cost, 0]
        return
    for name, model, day, *counts in store.usage_rows(since):
        if kind_of(name) == "key":
            yield name, model, day, "", list(counts)


def summed(rows: Iterable[Counted], group: str, keys: frozenset[str] | None, model: str | None,
           owners: dict[str, str]) -> dict[str, list[int]]:
    """Sums by `group` of the rows of `keys` (None: every key's) and `model`; `owners`: key name -> person."""
    sums: dict[str, list[int]] = {}
    for name, row_model, day, session, counts in rows:
        if (keys is not None and name not in keys) or (model is not None and row_model != model):
            continue
        value = {"day": day, "model": row_model, "key": name, "session": session,
                 "person": owners.get(name, SERVICE) if group == "person" else ""}[group]
        total = sums.setdefault(value, [0, 0, 0, 0, 0])
        for n, count in enumerate(counts):
            total[n] += count
    return sums


def page_of(sums: dict[str, list[int]], group: str, after: str, limit: int) -> list[tuple[Any, ...]]:
    """A page of sums in the store's order (day: newest first; else by name), after a cursor."""
    newest = group == "day"
    ordered = sorted(sums, reverse=newest)
    if after:
        ordered = [v for v in ordered if (v < after if newest else v > after)]
    return [(v, *sums[v]) for v in ordered[:limit]]
