"""The daily usage rows in Redis, laid out by day so that a read touches only the days and names it shows, and the
console's sums of them (usage_totals.py has SQLite's).

Layout, under PREFIX + "usage:", each field's counts one of WHATS (cost in nano-dollars):
- d:<day> (hash "<name>\\x1f<model>\\x1f<what>"): the rows of that day;
- n:<day> (hash "<name>\\x1f<what>"): that day's rows summed by name (a key's, or a team's: team/NAME);
- m:<day> (hash "<model>\\x1f<what>"): that day's keys' rows summed by model (what group=day and group=model show);
- days (sorted set: each day with a row, scored by its number since 1970), last (sorted set: each name, scored by
  the last day it has a row).
ADD_USAGE writes a row into all five in the same script (redis_store.py's RECORD_ONCE, which a replay after an
outage runs at most once), so the roll-ups never disagree with the rows. Rows of the layout before it (one hash,
"usage", a field per day, name, model and count: 400,000 fields at 100,000 rows, seconds to read) are moved into
this one at the first read, a chunk per atomic step (MOVE_OLD), so two processes moving them count each once."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from argoproxy.teamkeys.redis_records import PREFIX, SEP
from argoproxy.teamkeys.usage_totals import Row, Total, kind_of

OLD = PREFIX + "usage"  # the layout before this one
ROWS, BY_NAME, BY_MODEL = PREFIX + "usage:d:", PREFIX + "usage:n:", PREFIX + "usage:m:"
DAYS, LAST = PREFIX + "usage:days", PREFIX + "usage:last"
WHATS = ("requests", "input", "output", "cost", "unpriced")
SCAN_COUNT = 2_000  # fields a round trip reads of a day's rows (within redis_deadline's deadline on a busy machine)
MOVE_ROWS = 500  # old rows moved per atomic step

# add_usage(prefix, day, day number, name, model, is a key's (1|0), the five counts): one row's counts added to the
# rows and the roll-ups; requests, input and output always written (a row's presence), cost and unpriced when not 0.
ADD_USAGE = """
local function add_usage(prefix, day, day_no, name, model, keys_row, counts)
  local whats = {'requests', 'input', 'output', 'cost', 'unpriced'}
  for i, what in ipairs(whats) do
    local n = counts[i]  -- as sent: a Lua number past 14 digits is written in exponent form
    if i <= 3 or n ~= '0' then
      redis.call('HINCRBY', prefix .. 'd:' .. day, name .. '\\31' .. model .. '\\31' .. what, n)
      redis.call('HINCRBY', prefix .. 'n:' .. day, name .. '\\31' .. what, n)
      if keys_row == '1' then redis.call('HINCRBY', prefix .. 'm:' .. day, model .. '\\31' .. what, n) end
    end
  end
  redis.call('ZADD', prefix .. 'days', day_no, day)
  local last = redis.call('ZSCORE', prefix .. 'last', name)
  if (not last) or tonumber(last) < tonumber(day_no) then redis.call('ZADD', prefix .. 'last', day_no, name) end
end
"""
# One row (ARGV: as add_usage's, counts last), for a write without a write number.
ADD_ONE = ADD_USAGE + "add_usage(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], {ARGV[7], ARGV[8], ARGV[9], " \
                      "ARGV[10], ARGV[11]})\nreturn 1\n"
# Old rows moved (KEYS[1]: the old hash; ARGV[1] the prefix, then day, day number, name, model, is a key's, per
# row): each row's fields taken out of the old hash and added here in one step; a row another process moved first
# is gone from the old hash and counted no second time.
MOVE_OLD = ADD_USAGE + """
local whats = {'requests', 'input', 'output', 'cost', 'unpriced'}
for i = 2, #ARGV, 5 do
  local old = ARGV[i] .. '\\31' .. ARGV[i + 2] .. '\\31' .. ARGV[i + 3] .. '\\31'
  local counts, found = {}, false
  for j, what in ipairs(whats) do
    local n = redis.call('HGET', KEYS[1], old .. what)
    if n then found = true; redis.call('HDEL', KEYS[1], old .. what) end
    counts[j] = n or '0'
  end
  if found then add_usage(ARGV[1], ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], counts) end
end
return 1
"""


def day_number(day: str) -> int:
    """A day "YYYY-MM-DD" (UTC, as store.usage_day writes it) as days since 1970."""
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()) // 86400


def add_args(day: str, name: str, model: str) -> list[Any]:
    """add_usage's first arguments for a row."""
    return [PREFIX + "usage:", day, day_number(day), name, model, "1" if kind_of(name) == "key" else "0"]


class RedisUsageTotals:
    """RedisKeyStore has these methods."""
    redis: Any

    def usage_rows(self, since: str = "") -> list[Row]:
        """Every usage row from `since`, by day, name and model: each day's rows read in bounded HSCAN steps."""
        self.move_old_rows()
        rows: list[Row] = []
        for day in self._days(since):
            counted: dict[tuple[str, str], dict[str, int]] = {}
            for field, number in self.redis.hscan_iter(ROWS + day, count=SCAN_COUNT):
                name, _, rest = field.partition(SEP)  # no key's name holds SEP; a model's might
                model, _, what = rest.rpartition(SEP)
                counted.setdefault((name, model), {})[what] = int(number)
            rows += [(name, model, day, *[c.get(what, 0) for what in WHATS])  # type: ignore[misc]
                     for (name, model), c in sorted(counted.items())]
        return rows

    def usage_totals(self, group: str, since: str = "", key: str | None = None, model: str | None = None,
                     after: str = "", limit: int = 50) -> list[Total]:
        """As SQLite's (usage_totals.py): sums by `group`, in order (day: newest first), after `after`."""
        self.move_old_rows()
        if key is not None and group in ("day", "model") and kind_of(key) != "key":
            return []  # only keys' rows are summed by day and model
        if group == "day":
            return self._by_day(since, key, model, after, limit)
        if group == "model":
            return self._by_model(since, key, model, after, limit)
        return self._by_name(group, since, key if group == "key" else None, model, after, limit)

    def _days(self, since: str) -> list[str]:
        days: list[str] = self.redis.zrangebyscore(DAYS, day_number(since) if since else "-inf", "+inf")
        return [day for day in days if day >= since]

    def _by_day(self, since: str, key: str | None, model: str | None, after: str, limit: int) -> list[Total]:
        days = [day for day in reversed(self._days(since)) if not after or day < after]
        totals: list[Total] = []
        for start in range(0, len(days), limit):  # a page of days at a time, until `limit` have rows
            chunk = days[start:start + limit]
            pipe = self.redis.pipeline(transaction=False)
            for day in chunk:
                if key is None:
                    pipe.hgetall(BY_MODEL + day)
                else:
                    pipe.hmget(*_row_fields(day, key, model))
            for day, got in zip(chunk, pipe.execute()):
                total = _summed(_by_model(got, model).values()) if key is None else _present(got)
                if total is not None:
                    totals.append(_total(day, total))
            if len(totals) >= limit:
                break
        return totals[:limit]

    def _by_model(self, since: str, key: str | None, model: str | None, after: str, limit: int) -> list[Total]:
        days = self._days(since)
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(BY_MODEL + day)
        sums: dict[str, list[int]] = {}
        per_day = [_by_model(got, model) for got in pipe.execute()]
        if key is None:
            for found in per_day:
                for name, counts in found.items():
                    _add(sums.setdefault(name, [0] * len(WHATS)), counts)
        else:  # the key's own rows, of the models its days have
            pipe = self.redis.pipeline(transaction=False)
            asked = [(day, m) for day, found in zip(days, per_day) for m in sorted(found)]
            for day, m in asked:
                pipe.hmget(*_row_fields(day, key, m))
            for (day, m), got in zip(asked, pipe.execute()):
                row = _present(got)
                if row is not None:
                    _add(sums.setdefault(m, [0] * len(WHATS)), row)
        return [_total(m, sums[m]) for m in sorted(sums) if m > after][:limit]

    def _by_name(self, group: str, since: str, key: str | None, model: str | None, after: str,
                 limit: int) -> list[Total]:
        """Keys' (or teams') sums, a page of names at a time: only names with a row since `since` are read."""
        days = self._days(since)
        recent = self.redis.zrangebyscore(LAST, day_number(since) if since else "-inf", "+inf")
        prefix = PREFIX_OF[group]
        names = sorted(n for n in recent if kind_of(n) == group and n[len(prefix):] > after and key in (None, n))
        totals: list[Total] = []
        for start in range(0, len(names), limit):
            chunk = names[start:start + limit]
            pipe = self.redis.pipeline(transaction=False)
            for day in days:
                pipe.hmget(*_names_fields(day, chunk, model))
            sums: dict[str, list[int]] = {}
            for got in pipe.execute():
                for n, name in enumerate(chunk):
                    counts = _present(got[n * len(WHATS):(n + 1) * len(WHATS)])
                    if counts is not None:
                        _add(sums.setdefault(name, [0] * len(WHATS)), counts)
            totals += [_total(name[len(prefix):], sums[name]) for name in chunk if name in sums]
            if len(totals) >= limit:
                break
        return totals[:limit]

    def move_old_rows(self) -> None:
        """Rows in the layout before this one moved into it (each row once, whichever process moves it)."""
        if not self.redis.exists(OLD):
            return
        rows: dict[tuple[str, str, str], None] = {}
        for field, _ in self.redis.hscan_iter(OLD, count=SCAN_COUNT):
            row, _, _what = field.rpartition(SEP)
            day, name, model = row.split(SEP, 2)
            rows[(day, name, model)] = None
            if len(rows) >= MOVE_ROWS:
                self._move(list(rows))
                rows = {}
        if rows:
            self._move(list(rows))

    def _move(self, rows: list[tuple[str, str, str]]) -> None:
        args: list[Any] = [PREFIX + "usage:"]
        for day, name, model in rows:
            args += add_args(day, name, model)[1:]
        self.redis.eval(MOVE_OLD, 1, OLD, *args)

    def forget_usage(self, name: str) -> None:
        """A name's usage rows, and what the roll-ups hold of them, gone (a team made again starts afresh)."""
        for day in self._days(""):
            found = {f: int(v) for f, v in self.redis.hscan_iter(ROWS + day, match=literal_match(name) + SEP + "*",
                                                                 count=SCAN_COUNT)}
            if not found:
                continue
            pipe = self.redis.pipeline(transaction=True)
            pipe.hdel(ROWS + day, *found)
            pipe.hdel(BY_NAME + day, *[name + SEP + what for what in WHATS])
            if kind_of(name) == "key":
                for field, number in found.items():
                    pipe.hincrby(BY_MODEL + day, field.partition(SEP)[2], -number)
            pipe.execute()
        self.redis.zrem(LAST, name)


PREFIX_OF = {"key": "", "team": "team/"}  # records.TEAM_WINDOWS: a team's rows are named so


def _row_fields(day: str, key: str, model: str | None) -> list[str]:
    """HMGET's arguments for a key's counts in a day: its own roll-up, or its row of one model."""
    if model is None:
        return [BY_NAME + day, *[key + SEP + what for what in WHATS]]
    return [ROWS + day, *[key + SEP + model + SEP + what for what in WHATS]]


def _names_fields(day: str, names: list[str], model: str | None) -> list[str]:
    if model is None:
        return [BY_NAME + day, *[name + SEP + what for name in names for what in WHATS]]
    return [ROWS + day, *[name + SEP + model + SEP + what for name in names for what in WHATS]]


def _total(value: str, counts: list[int]) -> Total:
    requests, inputs, outputs, cost, unpriced = counts
    return value, requests, inputs, outputs, cost, unpriced


def _present(values: list[str | None]) -> list[int] | None:
    """HMGET's answer for one row's WHATS: its counts, or None when there is no such row (no requests field)."""
    if values[0] is None:
        return None
    return [int(v) if v is not None else 0 for v in values]


def _by_model(fields: dict[str, str], model: str | None) -> dict[str, list[int]]:
    """A day's m:<day> hash as {model: counts}, of `model` alone when named."""
    found: dict[str, list[int]] = {}
    for field, number in fields.items():
        name, _, what = field.rpartition(SEP)
        if model is None or name == model:
            found.setdefault(name, [0] * len(WHATS))[WHATS.index(what)] = int(number)
    return found


def _summed(rows: Any) -> list[int] | None:
    total: list[int] | None = None
    for counts in rows:
        total = _add(total or [0] * len(WHATS), counts)
    return total


def _add(total: list[int], counts: list[int]) -> list[int]:
    for n, count in enumerate(counts):
        total[n] += count
    return total


def literal_match(text: str) -> str:
    """`text` matched literally by a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
