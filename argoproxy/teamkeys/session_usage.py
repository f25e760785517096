"""Usage by agent session (edge/agent_sessions.py): a key's requests, tokens and cost per session, model and day,
beside its usage rows and apart from them (`keys usage --sessions`, `teams usage NAME --sessions`).

Apart, because the usage rows are what budgets are read from and what a Redis outage replays exactly once; a
session's rows only report. A request that names no session costs nothing here. The rows are summed in the worker
and written with the usage rows' flush (usage_rows.py), one store write per row; a row the store refuses is kept
for the next flush. Session ids are the clients' word: a worker records at most SESSIONS_PER_KEY_DAY of them per
key and day, and counts the rest under OTHER_SESSIONS, so a client naming a new session per request cannot grow
the table by a row per request.

SQLite keeps them in the session_usage table (store.py), Redis in a hash a day (RedisSessionUsage below).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from argoproxy.teamkeys.redis_usage_totals import day_number, literal_match as glob
from argoproxy.teamkeys.store import usage_day

log = logging.getLogger("cot_proxy")

SESSIONS_PER_KEY_DAY = 1000
OTHER_SESSIONS = "(other)"  # holds characters no sanitized session id has
SessionKey = tuple[str, str, str, float]  # key name, session, model, day (epoch of its midnight)
SessionRow = tuple[str, str, str, str, int, int, int, int]  # name, session, model, day, requests, input, output, cost


class SessionUsage:
    """TeamKeys has these methods (the usage rows' writer, usage_rows.py, flushes them)."""
    store: Any
    clock: Callable[[], float]
    _pending_lock: threading.Lock
    _sessions: dict[SessionKey, list[int]]
    _sessions_kept: dict[SessionKey, list[int]]
    _sessions_seen: dict[tuple[str, float], set[str]]
    holding: Callable[[], None]  # usage_rows.py's: starts the flusher

    def session_used(self, names: tuple[str, ...], session: str, model: str, prompt: int, completion: int,
                     cost: int) -> None:
        """A call's usage in its session's rows, for its key (and its team's windows: `names`)."""
        day = self.clock() // 86400 * 86400
        with self._pending_lock:
            for name in names:
                row = self._sessions.setdefault((name, self._counted_as(name, session, day), model, day), [0, 0, 0, 0])
                row[0] += 1
                row[1] += prompt
                row[2] += completion
                row[3] += cost
        self.holding()  # the flusher runs (a Redis store's calls may have written no usage row through it)

    def _counted_as(self, name: str, session: str, day: float) -> str:
        """The session a key's call is counted under: its own, or OTHER_SESSIONS past the key's day's bound."""
        seen = self._sessions_seen.get((name, day))
        if seen is None:
            if len(self._sessions_seen) >= 4096:  # keys' days: yesterday's go first
                self._sessions_seen = {k: v for k, v in self._sessions_seen.items() if k[1] == day}
            seen = self._sessions_seen[(name, day)] = set()
        if session in seen:
            return session
        if len(seen) >= SESSIONS_PER_KEY_DAY:
            return OTHER_SESSIONS
        seen.add(session)
        return session

    def flush_sessions(self, errors: tuple[type[BaseException], ...]) -> None:
        """The sessions' rows, one store write each; one the store refuses is kept for the next flush."""
        with self._pending_lock:
            batch, self._sessions = self._sessions, {}
            kept_before, self._sessions_kept = self._sessions_kept, {}
        for key, numbers in kept_before.items():
            row = batch.setdefault(key, [0, 0, 0, 0])
            for i, value in enumerate(numbers):
                row[i] += value
        kept: dict[SessionKey, list[int]] = {}
        for (name, session, model, day), numbers in batch.items():
            try:
                self.store.record_session_usage(name, session, model, day, *numbers)
            except errors:
                kept[(name, session, model, day)] = numbers
            except Exception:  # noqa: BLE001 - counting must never end the worker
                log.exception("team keys: session usage of key %s not recorded", name)
        if kept:
            with self._pending_lock:
                for key, numbers in kept.items():
                    if len(self._sessions_kept) < SESSIONS_PER_KEY_DAY * 100:  # bounded while the store is away
                        self._sessions_kept[key] = numbers


KEY = "cot_proxy:session_usage"  # the layout before: one hash of every row (moved at the first read)
DAY_ROWS, DAYS = KEY + ":d:", KEY + ":days"
SEP = "\x1f"  # as redis_store.py's: in no day, key name, session id or model name
COUNTED = ("requests", "input", "output", "cost")
SCAN_COUNT = 2_000  # fields a round trip reads of a day's rows (within redis_deadline's deadline on a busy machine)
MOVE_ROWS = 500
# Old rows moved (KEYS[1]: the old hash, KEYS[2]: DAYS; ARGV[1]: DAY_ROWS, then day, its number and the row's field
# prefix "<name>\x1f<session>\x1f<model>\x1f", per row): each taken out of the old hash and added to its day's in
# one step, so a row another process moved first is counted no second time.
MOVE_OLD = """
local whats = {'requests', 'input', 'output', 'cost'}
for i = 2, #ARGV, 3 do
  local old = ARGV[i] .. '\\31' .. ARGV[i + 2]
  for _, what in ipairs(whats) do
    local n = redis.call('HGET', KEYS[1], old .. what)
    if n then
      redis.call('HDEL', KEYS[1], old .. what)
      redis.call('HINCRBY', ARGV[1] .. ARGV[i], ARGV[i + 2] .. what, n)
      redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
    end
  end
end
return 1
"""


class RedisSessionUsage:
    """The session rows in Redis, a hash a day (DAY_ROWS + day: fields key, session, model and what is counted, each an
    increment of its own: a write sent twice adds, never overwrites) and the days in DAYS, so that a run's cost
    (launch/run_session.py) and `--since` read only their days, each in bounded HSCAN steps. RedisKeyStore has these
    methods."""
    redis: Any

    def record_session_usage(self, name: str, session: str, model: str, now: float, requests: int, input_tokens: int,
                             output_tokens: int, cost: int) -> None:
        day = usage_day(now)
        field = SEP.join((name, session, model)) + SEP
        pipe = self.redis.pipeline(transaction=True)
        for what, value in zip(COUNTED, (requests, input_tokens, output_tokens, cost)):
            if value:
                pipe.hincrby(DAY_ROWS + day, field + what, value)
        pipe.zadd(DAYS, {day: int(now // 86400)})
        pipe.execute()

    def session_usage(self, since: str = "") -> list[SessionRow]:
        """(key name, session, model, day, requests, input tokens, output tokens, nano-dollars), by day then name,
        session and model."""
        self.move_old_sessions()
        rows: list[SessionRow] = []
        for day in self._session_days(since):
            totals: dict[tuple[str, str, str], dict[str, int]] = {}
            for field, value in self.redis.hscan_iter(DAY_ROWS + day, count=SCAN_COUNT):
                name, session, rest = field.split(SEP, 2)  # the model's name last: the client chose it
                model, _, what = rest.rpartition(SEP)
                totals.setdefault((name, session, model), {})[what] = int(value)
            rows += [(name, session, model, day, *[t.get(what, 0) for what in COUNTED])  # type: ignore[misc]
                     for (name, session, model), t in sorted(totals.items())]
        return rows

    def _session_days(self, since: str) -> list[str]:
        days: list[str] = self.redis.zrange(DAYS, 0, -1)
        return sorted(day for day in days if day >= since)

    def forget_sessions(self, name: str) -> None:
        """A name's session rows gone (a team made again starts afresh)."""
        for day in self._session_days(""):
            fields = [f for f, _ in self.redis.hscan_iter(DAY_ROWS + day, match=glob(name) + SEP + "*",
                                                          count=SCAN_COUNT)]
            if fields:
                self.redis.hdel(DAY_ROWS + day, *fields)

    def move_old_sessions(self) -> None:
        """Rows of the one-hash layout moved into the day's hashes (each once, whichever process moves it)."""
        if not self.redis.exists(KEY):
            return
        rows: dict[tuple[str, str], None] = {}
        for field, _ in self.redis.hscan_iter(KEY, count=SCAN_COUNT):
            day, _, rest = field.partition(SEP)
            rows[(day, rest.rpartition(SEP)[0] + SEP)] = None
            if len(rows) >= MOVE_ROWS:
                self._move_sessions(list(rows))
                rows = {}
        if rows:
            self._move_sessions(list(rows))

    def _move_sessions(self, rows: list[tuple[str, str]]) -> None:
        args: list[Any] = [DAY_ROWS]
        for day, prefix in rows:
            args += [day, day_number(day), prefix]
        self.redis.eval(MOVE_OLD, 2, KEY, DAYS, *args)


def by_session(rows: list[SessionRow], named: Callable[[str], bool]) -> list[tuple[str, str, int, int, int, int]]:
    """The rows of the keys `named` accepts summed by key and session over models and days: (key, session,
    requests, input tokens, output tokens, nano-dollars), by key then session."""
    sums: dict[tuple[str, str], list[int]] = {}
    for name, session, _model, _day, *numbers in rows:
        if named(name):
            total = sums.setdefault((name, session), [0, 0, 0, 0])
            for i, value in enumerate(numbers):
                total[i] += value
    return [(name, session, *numbers) for (name, session), numbers in sorted(sums.items())]  # type: ignore[misc]
