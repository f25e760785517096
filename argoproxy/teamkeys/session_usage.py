"""Usage by agent session (edge/agent_sessions.py): a key's requests, tokens and cost per session, model and day,
beside its usage rows and apart from them (`keys usage --sessions`, `teams usage NAME --sessions`).

Apart, because the usage rows are what budgets are read from and what a Redis outage replays exactly once; a
session's rows only report. A request that names no session costs nothing here. The rows are summed in the worker
and written with the usage rows' flush (usage_rows.py), one store write per row; a row the store refuses is kept
for the next flush. Session ids are the clients' word: a worker records at most SESSIONS_PER_KEY_DAY of them per
key and day, and counts the rest under OTHER_SESSIONS, so a client naming a new session per request cannot grow
the table by a row per request.

SQLite keeps them in the session_usage table (store.py), Redis in one hash (RedisSessionUsage below).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

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


KEY = "cot_proxy:session_usage"
SEP = "\x1f"  # as redis_store.py's: in no day, key name, session id or model name
COUNTED = ("requests", "input", "output", "cost")


class RedisSessionUsage:
    """The session rows in Redis: one hash of counters, its fields day, key, session, model and what is counted, each
    an increment of its own (a write sent twice adds, never overwrites). RedisKeyStore has these methods."""
    redis: Any

    def record_session_usage(self, name: str, session: str, model: str, now: float, requests: int, input_tokens: int,
                             output_tokens: int, cost: int) -> None:
        field = SEP.join((usage_day(now), name, session, model)) + SEP
        pipe = self.redis.pipeline(transaction=False)
        for what, value in zip(COUNTED, (requests, input_tokens, output_tokens, cost)):
            if value:
                pipe.hincrby(KEY, field + what, value)
        pipe.execute()

    def session_usage(self, since: str = "") -> list[SessionRow]:
        """(key name, session, model, day, requests, input tokens, output tokens, nano-dollars), by day then name,
        session and model."""
        totals: dict[tuple[str, str, str, str], dict[str, int]] = {}
        for field, value in self.redis.hgetall(KEY).items():
            row, _, what = field.rpartition(SEP)
            day, name, session, model = row.split(SEP, 3)  # the model's name last: the client chose it
            if day >= since:
                totals.setdefault((day, name, session, model), {})[what] = int(value)
        return [(name, session, model, day, *[t.get(what, 0) for what in COUNTED])  # type: ignore[misc]
                for (day, name, session, model), t in sorted(totals.items())]


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
