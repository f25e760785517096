"""`/admin/v1/usage`: requests, tokens and dollars from the key store's daily usage rows (the ones `keys usage` and
`teams usage` print), summed by `group` (day, newest first; model, key or team, by name) in the store
(teamkeys/usage_totals.py), 50 a page; `?since=` YYYY-MM-DD, `?key=`, `?model=` narrow it. `?format=csv` is the
command line's CSV, row for row: `keys usage --csv` (`teams usage TEAM --csv` with ?team=)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from argoproxy.console.admin_call import AdminCall, not_allowed
from argoproxy.console.paging import PAGE, listed
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.spend import dollars
from argoproxy.teamkeys.records import TEAM_WINDOWS
from argoproxy.teamkeys.usage_totals import GROUPS, kind_of

CSV_HEADER = ("model", "day", "requests", "input_tokens", "output_tokens", "cost_usd", "unpriced_requests")


def serve(call: AdminCall) -> Answer:
    if call.rest or call.method != "GET":
        raise not_allowed("/admin/v1/usage", "GET")
    params = call.params("group", "since", "key", "model", "team", "format", "cursor")
    since = day_param(params.get("since", ""))
    form = params.get("format", "json")
    if form == "csv":
        return csv_answer(call, since, params.get("key"), params.get("model"), params.get("team"))
    if form != "json":
        raise ProxyError(400, "format is json or csv.", param="format", code="invalid_value")
    group = params.get("group", "day")
    if group not in GROUPS:
        raise ProxyError(400, f"group is one of {', '.join(GROUPS)}.", param="group", code="invalid_value")
    totals = call.store.usage_totals(group, since, params.get("key"), params.get("model"), params.get("cursor", ""),
                                     PAGE + 1)
    rows = [{group: value, "requests": requests, "input_tokens": inputs, "output_tokens": outputs,
             "tokens": inputs + outputs, "cost_usd": dollars(cost), "unpriced_requests": unpriced}
            for value, requests, inputs, outputs, cost, unpriced in totals[:PAGE]]
    return Answer.json({**listed(rows, rows[-1][group] if len(totals) > PAGE else None), "group": group})


def day_param(text: str) -> str:
    if not text:
        return ""
    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise ProxyError(400, f"since is a day, YYYY-MM-DD; got {text[:40]!r}.", param="since",
                         code="invalid_value") from None


def csv_answer(call: AdminCall, since: str, key: str | None, model: str | None, team: str | None) -> Answer:
    """The command line's CSV (teamkeys/cli.py's `keys usage --csv`, teams_cli.py's `teams usage NAME --csv`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("team" if team is not None else "key", *CSV_HEADER))
    for row in call.store.usage_rows(since):
        name = row[0]
        if (name != TEAM_WINDOWS + team if team is not None else kind_of(name) != "key" or key not in (None, name)) \
                or model not in (None, row[1]):
            continue
        writer.writerow((team if team is not None else name, *map(str, row[1:6]), dollars(row[6]), str(row[7])))
    answer = Answer(out.getvalue().encode(), 200, content_type="text/csv; charset=utf-8")
    answer.headers["Content-Disposition"] = 'attachment; filename="usage.csv"'
    return answer
