"""`/admin/v1/usage`: requests, tokens and dollars from the key store's daily usage rows (the ones `keys usage` and
`teams usage` print), summed by `group` (day, newest first; model, key or team, by name), 50 a page; `?since=`
YYYY-MM-DD, `?key=`, `?model=`, `?team=` narrow it. `?format=csv` is the command line's CSV, row for row:
`keys usage --csv` (`teams usage TEAM --csv` with ?team=)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any, Iterable

from argoproxy.console.admin_call import AdminCall, not_allowed
from argoproxy.console.paging import listed, page
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.spend import dollars
from argoproxy.teamkeys.records import TEAM_WINDOWS, TOOL_WINDOWS

GROUPS = ("day", "model", "key", "team")
CSV_HEADER = ("model", "day", "requests", "input_tokens", "output_tokens", "cost_usd", "unpriced_requests")
Row = tuple[str, str, str, int, int, int, int, int]  # the store's: name, model, day, requests, in, out, nanos, unpriced


def serve(call: AdminCall) -> Answer:
    if call.rest or call.method != "GET":
        raise not_allowed("/admin/v1/usage", "GET")
    params = call.params("group", "since", "key", "model", "team", "format", "cursor")
    since = day_param(params.get("since", ""))
    team = params.get("team")
    rows = [r for r in call.store.usage(since) if wanted(r, params, team)]
    if params.get("format", "json") == "csv":
        return csv_answer(rows, team)
    if params.get("format", "json") != "json":
        raise ProxyError(400, "format is json or csv.", param="format", code="invalid_value")
    group = params.get("group", "day")
    if group not in GROUPS:
        raise ProxyError(400, f"group is one of {', '.join(GROUPS)}.", param="group", code="invalid_value")
    totals = grouped(rows, group)
    shown, after = page(sorted(totals, key=lambda t: t[group], reverse=group == "day"), lambda t: t[group],
                        params.get("cursor", ""), descending=group == "day")
    return Answer.json({**listed(shown, after), "group": group})


def day_param(text: str) -> str:
    if not text:
        return ""
    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise ProxyError(400, f"since is a day, YYYY-MM-DD; got {text[:40]!r}.", param="since",
                         code="invalid_value") from None


def wanted(row: Row, params: dict[str, str], team: str | None) -> bool:
    """A key's row (with ?team=: that team's rows, every key's requests while in it), as the filters say."""
    name = row[0]
    if team is not None:
        return name == TEAM_WINDOWS + team and params.get("model", row[1]) == row[1]
    if params.get("group") == "team":
        return name.startswith(TEAM_WINDOWS) and not name.startswith(TEAM_WINDOWS + TOOL_WINDOWS)
    return not name.startswith((TEAM_WINDOWS, TOOL_WINDOWS)) and params.get("key", name) == name \
        and params.get("model", row[1]) == row[1]


def grouped(rows: Iterable[Row], group: str) -> list[dict[str, Any]]:
    totals: dict[str, list[int]] = {}
    for name, model, day, requests, inputs, outputs, cost, unpriced in rows:
        value = {"day": day, "model": model, "key": name, "team": name[len(TEAM_WINDOWS):]}[group]
        t = totals.setdefault(value, [0, 0, 0, 0, 0])
        t[0] += requests
        t[1] += inputs
        t[2] += outputs
        t[3] += cost
        t[4] += unpriced
    return [{group: value, "requests": t[0], "input_tokens": t[1], "output_tokens": t[2], "tokens": t[1] + t[2],
             "cost_usd": dollars(t[3]), "unpriced_requests": t[4]} for value, t in totals.items()]


def csv_answer(rows: list[Row], team: str | None) -> Answer:
    """The command line's CSV (teamkeys/cli.py's `keys usage --csv`, teams_cli.py's `teams usage NAME --csv`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("team" if team is not None else "key", *CSV_HEADER))
    for row in rows:
        writer.writerow((team if team is not None else row[0], *map(str, row[1:6]), dollars(row[6]), str(row[7])))
    answer = Answer(out.getvalue().encode(), 200, content_type="text/csv; charset=utf-8")
    answer.headers["Content-Disposition"] = 'attachment; filename="usage.csv"'
    return answer
