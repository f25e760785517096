"""The daily usage rows summed by day, model, key or team for the console (argoproxy/console/usage_api.py), a page
at a time after a keyset cursor. SQLite sums them in SQL (100,000 rows: tens of milliseconds); Redis's rows are read
and summed in Python (redis_usage_totals.py: summed_rows)."""

from __future__ import annotations

from typing import Any

from argoproxy.teamkeys.records import TEAM_WINDOWS, TOOL_WINDOWS

GROUPS = {"day": "day", "model": "model", "key": "name", "team": f"substr(name, {len(TEAM_WINDOWS) + 1})"}
Total = tuple[str, int, int, int, int, int]  # value, requests, input tokens, output tokens, nano-dollars, unpriced
Row = tuple[str, str, str, int, int, int, int, int]


def kind_of(name: str) -> str:
    """A usage row's owner: "key", "team" (TEAM_WINDOWS + its name) or "" (a tool window's)."""
    if name.startswith(TEAM_WINDOWS):
        return "" if name.startswith(TEAM_WINDOWS + TOOL_WINDOWS) else "team"
    return "" if name.startswith(TOOL_WINDOWS) else "key"


class SQLiteUsageTotals:
    _read: Any

    def usage_rows(self, since: str = "") -> list[Row]:
        rows: list[Row] = self._read("SELECT name, model, day, requests, input_tokens, output_tokens, cost, unpriced "
                                     "FROM usage WHERE day >= ? ORDER BY day, name, model", (since,))
        return rows

    def usage_totals(self, group: str, since: str = "", key: str | None = None, model: str | None = None,
                     after: str = "", limit: int = 50) -> list[Total]:
        """Sums by `group` (team: the teams' rows; else the keys'), in order (day: newest first), after `after`."""
        value, newest = GROUPS[group], group == "day"
        teams = f"substr(name, 1, {len(TEAM_WINDOWS)}) = ?"
        where = [f"{teams} AND substr(name, 1, {len(TEAM_WINDOWS + TOOL_WINDOWS)}) != ?" if group == "team" else
                 f"NOT {teams} AND substr(name, 1, {len(TOOL_WINDOWS)}) != ?", "day >= ?"]
        args: list[Any] = [TEAM_WINDOWS, TEAM_WINDOWS + TOOL_WINDOWS if group == "team" else TOOL_WINDOWS, since]
        for column, wanted in (("name", key if group != "team" else None), ("model", model)):
            if wanted is not None:
                where.append(f"{column} = ?")
                args.append(wanted)
        having = f" HAVING {value} {'<' if newest else '>'} ?" if after else ""
        rows: list[Total] = self._read(
            f"SELECT {value}, SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(cost), SUM(unpriced) FROM "
            f"usage WHERE {' AND '.join(where)} GROUP BY 1{having} ORDER BY 1 {'DESC' if newest else 'ASC'} LIMIT ?",
            (*args, *([after] if after else []), limit))
        return rows


def summed_rows(rows: list[Row], group: str, key: str | None, model: str | None) -> dict[str, list[int]]:
    """The rows' counts summed by `group` (team: the teams' rows; else the keys')."""
    wanted = "team" if group == "team" else "key"
    sums: dict[str, list[int]] = {}
    for name, row_model, day, *counts in rows:
        if kind_of(name) != wanted or (key is not None and wanted == "key" and name != key) or \
                (model is not None and row_model != model):
            continue
        value = {"day": day, "model": row_model, "key": name, "team": name[len(TEAM_WINDOWS):]}[group]
        total = sums.setdefault(value, [0, 0, 0, 0, 0])
        for n, count in enumerate(counts):
            total[n] += count
    return sums
