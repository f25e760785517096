"""`/admin/v1/usage`: requests, tokens and dollars from the key store's daily usage rows (the ones `keys usage` and
`teams usage` print), summed by `group` (day, newest first; model, key, team, session or person, by name), 50 a
page; `?since=` YYYY-MM-DD, `?key=`, `?model=`, `?person=` (an email) narrow it. `?format=csv` is the command line's
CSV, row for row: `keys usage --csv` (`teams usage TEAM --csv` with ?team=). An admin's sums by day, model, key or
team are the store's (teamkeys/usage_totals.py); the rest, and whatever a person or a lead asks, over the keys their
role sees only (roles.py), are summed here (usage_scoped.py)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from argoproxy.console.admin_call import AdminCall, no_such, not_allowed
from argoproxy.console.key_owner import owner_by_email
from argoproxy.console.paging import PAGE, listed
from argoproxy.console.usage_scoped import by_keys, by_person, by_session, page_of
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.spend import dollars
from argoproxy.teamkeys.records import TEAM_WINDOWS
from argoproxy.teamkeys.usage_totals import GROUPS, kind_of

ALL_GROUPS = (*GROUPS, "session", "person")

CSV_HEADER = ("model", "day", "requests", "input_tokens", "output_tokens", "cost_usd", "unpriced_requests")


def serve(call: AdminCall) -> Answer:
    if call.rest or call.method != "GET":
        raise not_allowed("/admin/v1/usage", "GET")
    params = call.params("group", "since", "key", "model", "team", "format", "cursor", "person")
    since, team = day_param(params.get("since", "")), params.get("team")
    if team is not None:
        call.scope.require_lead(team, "read a team's usage")
    keys = keys_of(call, params.get("key"), params.get("person"), team)
    form = params.get("format", "json")
    if form == "csv":
        return csv_answer(call, since, keys if keys is not None or params.get("key") is None else
                          frozenset((params["key"],)), params.get("model"), team)
    if form != "json":
        raise ProxyError(400, "format is json or csv.", param="format", code="invalid_value")
    group = params.get("group", "day")
    if group not in ALL_GROUPS or (group == "team" and keys is not None):
        raise ProxyError(400, f"group is one of {', '.join(ALL_GROUPS)} (team: an admin's, without ?person=).",
                         param="group", code="invalid_value")
    totals = sums(call, group, since, keys, params.get("key"), params.get("model"), params.get("cursor", ""))
    rows = [{group: value, "requests": requests, "input_tokens": inputs, "output_tokens": outputs,
             "tokens": inputs + outputs, "cost_usd": dollars(cost), "unpriced_requests": unpriced}
            for value, requests, inputs, outputs, cost, unpriced in totals[:PAGE]]
    return Answer.json({**listed(rows, rows[-1][group] if len(totals) > PAGE else None), "group": group})


def keys_of(call: AdminCall, key: str | None, person: str | None, team: str | None) -> frozenset[str] | None:
    """The keys whose usage is read: the one asked for, a person's, a team's, or all the caller sees (None: every
    key, an admin's). A key or person the caller does not see is not found."""
    scope = call.scope
    seen = [r for r in call.store.records() if scope.sees_key(r) and team in (None, r.team)]
    if person is not None:
        owner = person_seen(call, person)
        seen = [r for r in seen if r.owner == owner]
    if scope.admin and person is None and team is None:
        return None  # every key's, narrowed by ?key= in the store
    if key is not None:
        if not any(r.name == key for r in seen):
            raise ProxyError(404, "No key of that name that you may see.", param="key", code="key_not_found")
        return frozenset((key,))
    return frozenset(r.name for r in seen)


def person_seen(call: AdminCall, email: str) -> str:
    """The id of the person of that email, if the caller sees them (roles.py); else not found, whether or not they
    exist."""
    if call.scope.admin:
        return owner_by_email(call, email)
    try:
        owner = owner_by_email(call, email)
    except ProxyError:
        owner = ""
    person = call.store.person(owner) if owner else None
    if person is None or not call.scope.sees_person(person, call.store.teams(), call.default_team):
        raise no_such("person", email)
    return owner


def sums(call: AdminCall, group: str, since: str, keys: frozenset[str] | None, key: str | None, model: str | None,
         after: str) -> list[tuple[Any, ...]]:
    """A page of sums (and one more row, to tell whether another page follows)."""
    if keys is None and group in GROUPS:  # an admin's: the store sums them
        totals: list[tuple[Any, ...]] = call.store.usage_totals(group, since, key, model, after, PAGE + 1)
        return totals
    if keys is None and key is not None:
        keys = frozenset((key,))
    if group == "person":
        emails = {p.id: p.email or p.id for p in call.store.people()}
        owners = {r.name: emails.get(r.owner, r.owner) for r in call.store.records() if r.owner}
        return page_of(by_person(call.store, since, keys, model, owners), group, after, PAGE + 1)
    if group == "session":
        return page_of(by_session(call.store, since, keys, model), group, after, PAGE + 1)
    return page_of(by_keys(call.store, group, since, keys or frozenset(), model), group, after, PAGE + 1)


def day_param(text: str) -> str:
    if not text:
        return ""
    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise ProxyError(400, f"since is a day, YYYY-MM-DD; got {text[:40]!r}.", param="since",
                         code="invalid_value") from None


def csv_answer(call: AdminCall, since: str, keys: frozenset[str] | None, model: str | None,
               team: str | None) -> Answer:
    """The command line's CSV (teamkeys/cli.py's `keys usage --csv`, teams_cli.py's `teams usage NAME --csv`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("team" if team is not None else "key", *CSV_HEADER))
    for row in call.store.usage_rows(since):
        name = row[0]
        if (name != TEAM_WINDOWS + team if team is not None else kind_of(name) != "key" or
                (keys is not None and name not in keys)) \
                or model not in (None, row[1]):
            continue
        writer.writerow((team if team is not None else name, *map(str, row[1:6]), dollars(row[6]), str(row[7])))
    answer = Answer(out.getvalue().encode(), 200, content_type="text/csv; charset=utf-8")
    answer.headers["Content-Disposition"] = 'attachment; filename="usage.csv"'
    return answer
