"""The daily usage rows summed by day, model, key or team for the console (argoproxy/console/usage_api.py), a page
at a time after a keyset cursor. SQLite sums them in SQL; by day and by model from usage_day_sums, the keys' rows
summed by day and model, which triggers on the usage table keep (summing 100,000 rows at each read took 40-200 ms on
a busy 2-core machine); Redis keeps its own roll-ups (redis_usage_totals.py). summed_rows: the same sums of rows in
Python, which both are tested against."""

from __future__ import annotations

from typing import Any

from argoproxy.teamkeys.records import TEAM_WINDOWS, TOOL_WINDOWS

GROUPS = {"day": "day", "model": "model", "key": "name", "team": f"substr(name, {len(TEAM_WINDOWS) + 1})"}
Total = tuple[str, int, int, int, int, int]  # value, requests, input tokens, output tokens, nano-dollars, unpriced
Row = tuple[str, str, str, int, int, int, int, int]
_COUNTS = ("requests", "input_tokens", "output_tokens", "cost", "unpriced")


def _is_keys(row: str) -> str:
    """SQL: the usage row `row` (NEW or OLD) is a key's (kind_of's "key")."""
    return f"substr({row}.name, 1, {len(TEAM_WINDOWS)}) != '{TEAM_WINDOWS}' AND " \
           f"substr({row}.name, 1, {len(TOOL_WINDOWS)}) != '{TOOL_WINDOWS}'"


def _added(row: str, sign: str) -> str:
    """SQL: the row's counts added to (sign +) or taken from (-) its day and model's sums."""
    return (f"INSERT INTO usage_day_sums VALUES ({row}.day, {row}.model, {sign}1, "
            + ", ".join(f"{sign}{row}.{c}" for c in _COUNTS) + ") ON CONFLICT (day, model) DO UPDATE SET rows = rows + "
            "excluded.rows, " + ", ".join(f"{c} = {c} + excluded.{c}" for c in _COUNTS) + ";")


# The keys' usage rows summed by day and model, kept by triggers in the transaction that writes a row; `rows`: how
# many rows are in the sum (a day or model is listed while it has one). Made, and filled from the rows there, by
# the first process that opens a store without it (day_sums_made).
DAY_SUMS = ["CREATE TABLE IF NOT EXISTS usage_day_sums (day TEXT NOT NULL, model TEXT NOT NULL, rows INTEGER NOT NULL, "
            + ", ".join(f"{c} INTEGER NOT NULL" for c in _COUNTS) + ", PRIMARY KEY (day, model))",
            f"CREATE TRIGGER usage_day_sums_insert AFTER INSERT ON usage WHEN {_is_keys('NEW')} BEGIN "
            f"{_added('NEW', '+')} END",
            f"CREATE TRIGGER usage_day_sums_update_old AFTER UPDATE ON usage WHEN {_is_keys('OLD')} BEGIN "
            f"{_added('OLD', '-')} END",
            f"CREATE TRIGGER usage_day_sums_update_new AFTER UPDATE ON usage WHEN {_is_keys('NEW')} BEGIN "
            f"{_added('NEW', '+')} END",
            f"CREATE TRIGGER usage_day_sums_delete AFTER DELETE ON usage WHEN {_is_keys('OLD')} BEGIN "
            f"{_added('OLD', '-')} END",
            "INSERT INTO usage_day_sums SELECT day, model, COUNT(*), " + ", ".join(f"SUM({c})" for c in _COUNTS)
            + f" FROM usage WHERE {_is_keys('usage')} GROUP BY day, model"]


def day_sums_made(db: Any) -> None:
    """usage_day_sums and its triggers, in the caller's write transaction, unless the store has them."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'usage_day_sums_insert'").fetchone():
        for statement in DAY_SUMS:
            db.execute(statement)


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
        if group in ("day", "model") and key is None:
            return self._day_sums(group, since, model, after, limit)
        value, newest = GROUPS[group], group == "day"
        teams = f"substr(name, 1, {len(TEAM_WINDOWS)}) = ?"
        where = [f"{teams} AND substr(name, 1, {len(TEAM_WINDOWS + TOOL_WINDOWS)}) != ?" if group == "team" else
                 f"NOT {teams} AND substr(name, 1, {len(TOOL_WINDOWS)}) != ?", "day >= ?"]
        args: list[Any] = [TEAM_WINDOWS, TEAM_WINDOWS + TOOL_WINDOWS if group == "team" else TOOL_WINDOWS, since]
        if group == "team":  # the teams' names as a range of the key's index: a seek, not a scan past every key's
            where.append("name > ? AND name < ?")
            args += [TEAM_WINDOWS, TEAM_WINDOWS[:-1] + chr(ord(TEAM_WINDOWS[-1]) + 1)]
        for column, wanted in (("name", key if group != "team" else None), ("model", model)):
            if wanted is not None:
                where.append(f"{column} = ?")
                args.append(wanted)
        # A team's rows grouped by their name (TEAM_WINDOWS + the team's), so the key's index gives their order and a
        # page stops after `limit` of them (grouped by the team's name: every row read and sorted, 20 ms at 10,000).
        grouped, after = ("name", TEAM_WINDOWS + after if after else "") if group == "team" else ("1", after)
        having = f" HAVING {value if grouped == '1' else grouped} {'<' if newest else '>'} ?" if after else ""
        rows: list[Total] = self._read(
            f"SELECT {value}, SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(cost), SUM(unpriced) FROM "
            f"usage WHERE {' AND '.join(where)} GROUP BY {grouped}{having} ORDER BY {grouped} "
            f"{'DESC' if newest else 'ASC'} LIMIT ?", (*args, *([after] if after else []), limit))
        return rows

    def _day_sums(self, group: str, since: str, model: str | None, after: str, limit: int) -> list[Total]:
        newest = group == "day"
        where, args = ["day >= ?"], [since]
        if model is not None:
            where.append("model = ?")
            args.append(model)
        having = f" AND {group} {'<' if newest else '>'} ?" if after else ""
        rows: list[Total] = self._read(
            f"SELECT {group}, " + ", ".join(f"SUM({c})" for c in _COUNTS) + f" FROM usage_day_sums WHERE "
            f"{' AND '.join(where)} GROUP BY 1 HAVING SUM(rows) > 0{having} ORDER BY 1 {'DESC' if newest else 'ASC'} "
            "LIMIT ?", (*args, *([after] if after else []), limit))
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
