"""The team key store in SQLite: an embedded file next to the config (nothing to install), shared by every
worker and by the `keys` subcommand. Keys are stored as SHA-256 digests, never in plain text.

Each admission and each answer's usage is one short write transaction (WAL journal, synchronous=NORMAL: no
fsync per commit), so every worker counts against the same windows. A store error (locked for longer than
BUSY_SECONDS, disk full) is the caller's to handle.
"""

from __future__ import annotations

import dataclasses

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from argoproxy.sqlite_files import BUSY_SECONDS, ReadConnection, connect, first_here, immediate, off_loop, wal
from argoproxy.teamkeys.records import TEAM_WINDOWS, Budget, KeyRecord, MoneyBudget, TeamRecord, money_refusal
from argoproxy.teamkeys import windows
from argoproxy.teamkeys.audit_stores import AUDIT_TABLE, SQLiteAudit
from argoproxy.teamkeys.people_rows import ADDED_FOR_PEOPLE, OWNER_OF, PEOPLE_SCHEMA, SEP, PeopleRows
from argoproxy.teamkeys.usage_totals import SQLiteUsageTotals, day_sums_made

if TYPE_CHECKING:
    from argoproxy.teamkeys.local_windows import LocalWindows

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY, digest TEXT UNIQUE NOT NULL, prefix TEXT NOT NULL, models TEXT NOT NULL,
    rpm INTEGER NOT NULL, tpm INTEGER NOT NULL, budget_tokens INTEGER NOT NULL, budget_period TEXT NOT NULL,
    expires REAL NOT NULL, created REAL NOT NULL, revoked REAL NOT NULL, max_parallel INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0, budget_usd INTEGER NOT NULL DEFAULT 0,
    budget_usd_period TEXT NOT NULL DEFAULT '', team TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS teams (
    name TEXT PRIMARY KEY, models TEXT NOT NULL, rpm INTEGER NOT NULL, tpm INTEGER NOT NULL,
    budget_tokens INTEGER NOT NULL, budget_period TEXT NOT NULL, expires REAL NOT NULL, created REAL NOT NULL,
    max_parallel INTEGER NOT NULL, priority INTEGER NOT NULL, budget_usd INTEGER NOT NULL,
    budget_usd_period TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS windows (
    name TEXT PRIMARY KEY, start INTEGER NOT NULL, req INTEGER NOT NULL, prev_req INTEGER NOT NULL,
    tok INTEGER NOT NULL, prev_tok INTEGER NOT NULL, budget_start REAL NOT NULL, budget_used INTEGER NOT NULL,
    money_start REAL NOT NULL DEFAULT 0, money_used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS usage (
    name TEXT NOT NULL, model TEXT NOT NULL, day TEXT NOT NULL, requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost INTEGER NOT NULL DEFAULT 0,
    unpriced INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (name, model, day));
CREATE TABLE IF NOT EXISTS tool_usage (
    name TEXT NOT NULL, server TEXT NOT NULL, tool TEXT NOT NULL, day TEXT NOT NULL, calls INTEGER NOT NULL,
    errors INTEGER NOT NULL, millis INTEGER NOT NULL, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL,
    cost INTEGER NOT NULL, PRIMARY KEY (name, server, tool, day));
CREATE TABLE IF NOT EXISTS session_usage (
    name TEXT NOT NULL, session TEXT NOT NULL, model TEXT NOT NULL, day TEXT NOT NULL, requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost INTEGER NOT NULL,
    PRIMARY KEY (name, session, model, day));
""" + AUDIT_TABLE
# Columns a store made by an earlier release lacks (--max-parallel, --priority, dollar budgets, usage's cost in
# nano-dollars and unpriced requests, a key's team, MCP tool globs and limits): added when it is opened (the teams table likewise, by SCHEMA).
_ADDED = (("keys", "max_parallel", "INTEGER NOT NULL DEFAULT 0"), ("keys", "priority", "INTEGER NOT NULL DEFAULT 0"),
          ("keys", "budget_usd", "INTEGER NOT NULL DEFAULT 0"),
          ("keys", "budget_usd_period", "TEXT NOT NULL DEFAULT ''"), ("windows", "money_start", "REAL NOT NULL DEFAULT 0"),
          ("windows", "money_used", "INTEGER NOT NULL DEFAULT 0"), ("usage", "cost", "INTEGER NOT NULL DEFAULT 0"),
          ("usage", "unpriced", "INTEGER NOT NULL DEFAULT 0"), ("keys", "team", "TEXT NOT NULL DEFAULT ''"),
          ("keys", "tools", "TEXT NOT NULL DEFAULT ''"), ("teams", "tools", "TEXT NOT NULL DEFAULT ''"),
          ("keys", "tool_rpm", "INTEGER NOT NULL DEFAULT 0"), ("keys", "tool_parallel", "INTEGER NOT NULL DEFAULT 0"),
          ("teams", "tool_rpm", "INTEGER NOT NULL DEFAULT 0"), ("teams", "tool_parallel", "INTEGER NOT NULL DEFAULT 0"),
          *ADDED_FOR_PEOPLE)
_KEY_COLUMNS = ("name, digest, prefix, models, rpm, tpm, budget_tokens, budget_period, expires, created, revoked, "
                "max_parallel, priority, budget_usd, budget_usd_period, team, tools, tool_rpm, tool_parallel, owner, "
                "argo_user")
_KEY_VALUES = ",".join("?" * 21)
_TEAM_COLUMNS = ("name, models, rpm, tpm, budget_tokens, budget_period, expires, created, max_parallel, priority, "
                 "budget_usd, budget_usd_period, tools, tool_rpm, tool_parallel, member_groups, leads")
_TEAM_VALUES = ",".join("?" * 17)


class KeyExists(ValueError):
    """A key of that name is active."""


class TeamError(ValueError):
    """No team of that name, one exists already, or it has keys (the message says which)."""


def no_team(name: str) -> TeamError:
    return TeamError(f"no team named {name!r} (`teams create {name}` makes it)")


def team_has_keys(name: str, keys: list[str]) -> TeamError:
    shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
    return TeamError(f"team {name!r} has {len(keys)} key(s) ({shown}): move them to another team or out of it "
                     "(`keys update NAME --team none`), or delete it with --move-keys-out")


class SQLiteKeyStore(PeopleRows, SQLiteAudit, SQLiteUsageTotals):
    """Keys, teams, their windows and usage rows; the audit log (audit_stores.py); usage summed for the console
    (usage_totals.py)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()  # the writing connection's (gthread workers share it)
        self._db: sqlite3.Connection | None = None
        # Reads have a connection of their own: in WAL mode they never wait for a writer, so a look-up does not
        # queue behind a usage write waiting for another process's lock.
        self._reader = ReadConnection(self.path, self._prepare)
        self._local: LocalWindows | None = None  # the instance's shared rate windows, made on first use

    # ------------------------------------------------------------ connection
    def available(self) -> bool:
        """Whether there is a store to read: the proxy never creates it (`cot-proxy keys create` does)."""
        return self._db is not None or self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            new = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if new:  # readable by its owner only: it names who may use the proxy
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            db = connect(self.path)
            wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA + PEOPLE_SCHEMA)
            with immediate(db):  # one process adds a column; another that started with it then sees it there
                for table, column, kind in _ADDED:
                    if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                day_sums_made(db)  # after the usage table has its cost and unpriced columns
            self._db = db
        return self._db

    @contextmanager
    def _write(self) -> Iterator[OffLoop]:
        with self._lock, immediate(OffLoop(off_loop(self._connect))) as db:
            yield db

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Tried on the event loop first (sqlite_files.first_here), where a read needs no wait: a one-row read
        through gevent's thread pool took 0.1-0.4 s on a busy 2-core machine (the pool's thread waits for the
        interpreter lock, then for the loop's turn), and each request that needed a key's record waited that long.
        A read that meets a lock, and the first (it makes the file and its schema), go to the pool."""
        return first_here(lambda: self._rows(sql, args))

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._reader.locked() as db:
            return db.execute(sql, args).fetchall()

    def _prepare(self) -> None:
        with self._lock:
            self._connect()  # the file, its schema and WAL mode

    # ------------------------------------------------------------ records
    def create(self, record: KeyRecord) -> None:
        with self._write() as db:
            row = db.execute("SELECT revoked FROM keys WHERE name = ?", (record.name,)).fetchone()
            if row is not None and not row[0]:
                raise KeyExists(f"a key named {record.name!r} is active: revoke it first, or choose another name")
            if record.team and not db.execute("SELECT 1 FROM teams WHERE name = ?", (record.team,)).fetchone():
                raise no_team(record.team)
            db.execute("DELETE FROM keys WHERE name = ?", (record.name,))
            db.execute(f"INSERT INTO keys ({_KEY_COLUMNS}) VALUES ({_KEY_VALUES})", _row_of(record))
            db.execute("DELETE FROM windows WHERE name = ?", (record.name,))

    def update(self, name: str, changes: dict[str, Any]) -> bool:
        """Change an active key's models or limits (KeyRecord field names); False when none is active."""
        with self._write() as db:
            row = db.execute(f"SELECT {_KEY_COLUMNS} FROM keys WHERE name = ? AND revoked = 0", (name,)).fetchone()
            if row is None:
                return False
            record = dataclasses.replace(_record_of(row), **changes)
            if changes.get("team") and not db.execute("SELECT 1 FROM teams WHERE name = ?", (record.team,)).fetchone():
                raise no_team(record.team)
            db.execute(f"INSERT OR REPLACE INTO keys ({_KEY_COLUMNS}) VALUES ({_KEY_VALUES})", _row_of(record))
            return True

    def revoke(self, name: str, now: float | None = None) -> bool:
        with self._write() as db:
            done = db.execute("UPDATE keys SET revoked = ? WHERE name = ? AND revoked = 0",
                              (now or time.time(), name))
            return done.rowcount > 0

    def find(self, key_digest: str) -> KeyRecord | None:
        """The key's record, with its team's (one read)."""
        rows = self._read(f"SELECT {_KEY_OF}, {_TEAM_OF}, {OWNER_OF} FROM keys LEFT JOIN teams t ON t.name = "
                          "keys.team LEFT JOIN people p ON p.id = keys.owner WHERE keys.digest = ?", (key_digest,))
        return _with_team(rows[0]) if rows else None

    def records(self) -> list[KeyRecord]:
        return [_with_team(row) for row in self._read(f"SELECT {_KEY_OF}, {_TEAM_OF}, {OWNER_OF} FROM keys LEFT JOIN "
                                                      "teams t ON t.name = keys.team LEFT JOIN people p ON p.id = "
                                                      "keys.owner ORDER BY keys.name")]

    # ------------------------------------------------------------ teams
    def create_team(self, team: TeamRecord) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM teams WHERE name = ?", (team.name,)).fetchone():
                raise TeamError(f"a team named {team.name!r} exists: update it, or choose another name")
            db.execute(f"INSERT INTO teams ({_TEAM_COLUMNS}) VALUES ({_TEAM_VALUES})", _team_row(team))
            db.execute("DELETE FROM windows WHERE name = ?", (team.windows.name,))  # an old team's counts go
            db.execute("DELETE FROM usage WHERE name = ?", (team.windows.name,))
            db.execute("DELETE FROM session_usage WHERE name = ?", (team.windows.name,))

    def update_team(self, name: str, changes: dict[str, Any]) -> TeamRecord:
        """Change a team's models or limits (TeamRecord field names); its keys, usage and counts stay."""
        with self._write() as db:
            row = db.execute(f"SELECT {_TEAM_COLUMNS} FROM teams WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise no_team(name)
            team = dataclasses.replace(_team_of(row), **changes)
            db.execute(f"INSERT OR REPLACE INTO teams ({_TEAM_COLUMNS}) VALUES ({_TEAM_VALUES})", _team_row(team))
            return team

    def delete_team(self, name: str, move_keys_out: bool = False) -> list[str]:
        """Delete a team; refused while it has active keys unless `move_keys_out` (then they leave it, and keep
        their own limits). Returns the names of the keys moved out."""
        with self._write() as db:
            if not db.execute("SELECT 1 FROM teams WHERE name = ?", (name,)).fetchone():
                raise no_team(name)
            keys = [r[0] for r in db.execute("SELECT name FROM keys WHERE team = ? AND revoked = 0 ORDER BY name",
                                             (name,)).fetchall()]
            if keys and not move_keys_out:
                raise team_has_keys(name, keys)
            db.execute("UPDATE keys SET team = '' WHERE team = ?", (name,))
            db.execute("DELETE FROM teams WHERE name = ?", (name,))
            return keys

    def team(self, name: str) -> TeamRecord | None:
        rows = self._read(f"SELECT {_TEAM_COLUMNS} FROM teams WHERE name = ?", (name,))
        return _team_of(rows[0]) if rows else None

    def teams(self) -> list[TeamRecord]:
        return [_team_of(row) for row in self._read(f"SELECT {_TEAM_COLUMNS} FROM teams ORDER BY name")]

    def has_keys(self) -> bool:
        return bool(self._read("SELECT 1 FROM keys LIMIT 1"))

    # ------------------------------------------------------------ counting
    def admit(self, record: KeyRecord, now: float, reserve: int = 0, money: int = 0) -> tuple[float, str]:
        """Count one request if the key's limits allow it now, holding `reserve` tokens while it runs (settle
        gives them back): (0, "") then; else (seconds to wait, what is exhausted: "requests", "tokens", "budget"
        or "parallel"). In the workers' shared cells (one instance: one host); in the database only when those
        have no free slot (then nothing is held: 4,096 keys met by this instance)."""
        waiting, by, _ = self.reserve(record, now, reserve, money)
        return waiting, by

    def _admit_stored(self, record: KeyRecord, now: float, money: int = 0) -> tuple[float, str]:
        """admit in the database's windows, the key's and its team's in one transaction (nothing held)."""
        team = record.windows
        with self._write() as db:
            state = self._window(db, record.name)
            decision = windows.admit(state, record.rpm, record.tpm, record.budget, now, budget_usd=record.budget_usd,
                                     money=money)
            if team is not None and not decision[1]:
                team_state = self._window(db, team.name)
                waiting, by = windows.admit(team_state, team.rpm, team.tpm, team.budget, now,
                                            budget_usd=team.budget_usd, money=money)
                if by:
                    return waiting, "team_" + by  # the key's state unsaved: nothing counted for it
                self._save(db, team.name, team_state)
            self._save(db, record.name, state)
        return decision

    def reserve(self, record: KeyRecord, now: float, tokens: int, money: int = 0) -> tuple[float, str, str]:
        """admit, holding `tokens` and `money` nano-dollars for the request while it runs; and where the hold is
        ("cells"; "": none)."""
        team = record.windows
        local = self._local_windows()
        decision = local.admit(record, now, tokens, money) if team is None else \
            local.admit_with_team(record, team, now, tokens, money)
        if decision is not None:
            return decision[0], decision[1], "cells"
        return (*self._admit_stored(record, now, money), "")

    def release_hold(self, record: KeyRecord, hold: str, reserved: int, tokens: int, now: float, held: int = 0,
                     cost: int = 0) -> bool:
        """settle a hold reserve made; False when there is none (the tokens are counted by record_usage)."""
        if hold != "cells":
            return False
        team = record.windows
        if team is not None:  # admitted in both (admit_with_team)
            self.settle(team, reserved, tokens, now, held, cost)
        return self.settle(record, reserved, tokens, now, held, cost)

    def heartbeat(self) -> None:
        """Nothing: a killed worker's holds are taken off by the master (local_windows.release_dead_worker)."""

    def settle(self, record: KeyRecord, reserved: int, tokens: int, now: float, held: int = 0, cost: int = 0) -> bool:
        """A request admitted with `reserved` tokens ended having used `tokens`: its hold given back and its tokens
        counted where admission reads them, at once (the workers' shared cells: an flock, no database write,
        which would stop a gevent worker while SQLite waits for its lock); False when the key has no cell (then
        the database windows admit it, written by record_usage)."""
        return self._local_windows().settle(record, reserved, tokens, now, held, cost) is not None

    def count_now(self, record: KeyRecord, tokens: int, now: float, cost: int = 0) -> bool:
        """An answer's tokens and cost in the windows admission reads, at once (see settle)."""
        return self._local_windows().add_tokens(record, tokens, now, cost) is not None

    def record_usage(self, name: str, model: str, input_tokens: int, output_tokens: int, now: float,
                     budget: Budget | None, requests: int = 1, cost: int = 0, unpriced: int = 0,
                     budget_usd: MoneyBudget | None = None, counted: bool = False) -> None:
        """A usage row: `cost` in nano-dollars, `unpriced` requests whose model has no price. `counted`: the tokens
        and cost are in the shared cells already (count_now)."""
        if self._local is not None and not counted:  # the rate windows this instance admits by
            record = self._record_named(name)
            if record is not None:
                self._local.add_tokens(record, input_tokens + output_tokens, now, cost)
        with self._write() as db:
            state = self._window(db, name)
            windows.add_tokens(state, input_tokens + output_tokens, budget, now, cost, budget_usd)
            self._save(db, name, state)
            db.execute("INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, model, day) DO UPDATE SET "
                       "requests = requests + excluded.requests, input_tokens = input_tokens + excluded.input_tokens, "
                       "output_tokens = output_tokens + excluded.output_tokens, cost = cost + excluded.cost, "
                       "unpriced = unpriced + excluded.unpriced",
                       (name, model, usage_day(now), requests, input_tokens, output_tokens, cost, unpriced))

    def record_tool_usage(self, name: str, server: str, tool: str, now: float, calls: int, errors: int, millis: int,
                          bytes_in: int, bytes_out: int, cost: int = 0) -> None:
        """A key's MCP tool calls (argoproxy/mcp/recording.py): one row per key, server, tool and day, `cost` in
        nano-dollars."""
        with self._write() as db:
            db.execute("INSERT INTO tool_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, server, tool, day) "
                       "DO UPDATE SET calls = calls + excluded.calls, errors = errors + excluded.errors, millis = "
                       "millis + excluded.millis, bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + "
                       "excluded.bytes_out, cost = cost + excluded.cost",
                       (name, server, tool, usage_day(now), calls, errors, millis, bytes_in, bytes_out, cost))

    def tool_usage(self, since: str = "") -> list[tuple[str, str, str, str, int, int, int, int, int, int]]:
        """(key name, server, tool, day, calls, errors, milliseconds, bytes in, bytes out, cost in nano-dollars), by
        day then name, server and tool."""
        return self._read("SELECT name, server, tool, day, calls, errors, millis, bytes_in, bytes_out, cost FROM "
                          "tool_usage WHERE day >= ? ORDER BY day, name, server, tool", (since,))

    def record_session_usage(self, name: str, session: str, model: str, now: float, requests: int,
                             input_tokens: int, output_tokens: int, cost: int) -> None:
        """A key's calls in one agent session (session_usage.py): one row per key, session, model and day."""
        with self._write() as db:
            db.execute("INSERT INTO session_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, session, model, "
                       "day) DO UPDATE SET requests = requests + excluded.requests, input_tokens = input_tokens + "
                       "excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens, cost = cost + "
                       "excluded.cost",
                       (name, session, model, usage_day(now), requests, input_tokens, output_tokens, cost))

    def session_usage(self, since: str = "") -> list[tuple[str, str, str, str, int, int, int, int]]:
        """(key name, session, model, day, requests, input tokens, output tokens, nano-dollars), by day then name,
        session and model."""
        return self._read("SELECT name, session, model, day, requests, input_tokens, output_tokens, cost FROM "
                          "session_usage WHERE day >= ? ORDER BY day, name, session, model", (since,))

    def release_leases(self, expired_only: bool = True) -> None:
        """Nothing to give back: this store's workers count in shared memory, not by leases (redis_store.py)."""

    def in_flight(self, name: str) -> int:
        """The key's requests in flight on this instance, as admission counts them (the status page)."""
        record = self._record_named(name)
        return self._local_windows().in_flight(record) if record is not None else 0

    def _local_windows(self) -> LocalWindows:
        if self._local is None:
            from argoproxy.teamkeys.local_windows import LocalWindows
            self._local = LocalWindows(self.used_in_period, spent_in_period=self.spent_in_period)
        return self._local

    def _record_named(self, name: str) -> KeyRecord | None:
        """A key's record, or a team's windows record (TEAM_WINDOWS + its name)."""
        if name.startswith(TEAM_WINDOWS):
            team = self.team(name[len(TEAM_WINDOWS):])
            return team.windows if team is not None else None
        rows = self._read(f"SELECT {_KEY_COLUMNS} FROM keys WHERE name = ?", (name,))
        return _record_of(rows[0]) if rows else None

    def used_in_period(self, record: KeyRecord, now: float) -> int:
        """Tokens the key used in its budget's current period, as far as daily usage rows tell."""
        if record.budget is None:
            return 0
        start, _ = windows.period_bounds(record.budget.period, now)
        rows = self._read("SELECT COALESCE(SUM(input_tokens + output_tokens), 0) FROM usage WHERE name = ? AND "
                          "day >= ?", (record.name, usage_day(start)))
        return int(rows[0][0]) if record.budget.period != "hour" else 0

    def spent_in_period(self, record: KeyRecord, now: float) -> int:
        """Nano-dollars the key spent in its dollar budget's current period, as far as daily usage rows tell (an
        hourly budget starts again after a restart, as a token budget does)."""
        if record.budget_usd is None or record.budget_usd.period == "hour":
            return 0
        start, _ = windows.period_bounds(record.budget_usd.period, now)
        day = usage_day(start)
        rows = self._read("SELECT COALESCE(SUM(cost), 0) FROM usage WHERE name = ? AND day >= ?", (record.name, day))
        # and its priced MCP tool calls' (a team's: its keys' rows; tool rows are kept per key)
        team = record.name[len(TEAM_WINDOWS):] if record.name.startswith(TEAM_WINDOWS) else None
        tools = self._read("SELECT COALESCE(SUM(cost), 0) FROM tool_usage WHERE day >= ? AND " +
                           ("name IN (SELECT name FROM keys WHERE team = ?)" if team is not None else "name = ?"),
                           (day, team if team is not None else record.name))
        return int(rows[0][0]) + int(tools[0][0])

    def hold_money(self, record: KeyRecord, now: float, money: int) -> tuple[float, str, str]:
        """A priced MCP tool call's price held in the key's and its team's dollar budgets while it runs (the shared
        cells, as a request's most is): (0, "", where) held; else (seconds to wait, "budget_usd" or
        "team_budget_usd", ""). Without a free cell, what was spent is checked and nothing held."""
        owners = record.dollar_budgets
        decision = self._local_windows().hold_money(owners, now, money)
        if decision is not None:
            waiting, refused = decision
            return (0.0, "", "cells") if refused < 0 else (waiting, money_refusal(record, owners[refused]), "")
        for owner in owners:
            assert owner.budget_usd is not None
            if self.spent_in_period(owner, now) + money > owner.budget_usd.nanos:
                return windows.period_bounds(owner.budget_usd.period, now)[1] - now, money_refusal(record, owner), ""
        return 0.0, "", ""

    def release_money(self, record: KeyRecord, where: str, held: int, cost: int, now: float) -> None:
        """A tool call's held price given back and `cost` spent (its usage row keeps it for spent_in_period)."""
        if where == "cells":
            self._local_windows().release_money(record.dollar_budgets, now, held, cost)

    def spent(self, record: KeyRecord, now: float) -> int:
        """What the status page shows: the running total admission counts, else the usage rows'."""
        counted = self._local_windows().spent(record, now) if record.budget_usd is not None else None
        return counted if counted is not None else self.spent_in_period(record, now)

    def usage(self, since: str = "") -> list[tuple[str, str, str, int, int, int, int, int]]:
        """(key name, model, day, requests, input tokens, output tokens, cost in nano-dollars, unpriced requests),
        by day then name then model."""
        return self._read("SELECT name, model, day, requests, input_tokens, output_tokens, cost, unpriced FROM usage "
                          "WHERE day >= ? ORDER BY day, name, model", (since,))

    @staticmethod
    def _window(db: OffLoop, name: str) -> list[float]:
        row = db.execute("SELECT start, req, prev_req, tok, prev_tok, budget_start, budget_used, money_start, "
                         "money_used FROM windows WHERE name = ?", (name,)).fetchone()
        if not row:
            return list(windows.NEW_STATE)
        return list(row[:7]) + [0, 0] + [row[7], row[8], 0]  # no holds kept in the database

    @staticmethod
    def _save(db: OffLoop, name: str, state: list[float]) -> None:
        db.execute("INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (name, *state[:windows.RESERVED], state[windows.MONEY_START], state[windows.MONEY_USED]))


class Rows:
    """A statement's rows, read whole where it ran."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


class OffLoop:
    """The connection, each statement run off the event loop (off_loop): SQLite's wait for a lock another
    process holds (up to BUSY_SECONDS) stopped a whole gevent worker, /health included."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> Rows:
        def run() -> Rows:
            cursor = self._db.execute(sql, args)
            return Rows(cursor.fetchall(), cursor.rowcount)
        return off_loop(run)


def usage_day(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d")


def _row_of(r: KeyRecord) -> tuple[Any, ...]:
    return (r.name, r.digest, r.prefix, ",".join(r.models), r.rpm, r.tpm, r.budget.tokens if r.budget else 0,
            r.budget.period if r.budget else "", r.expires, r.created, r.revoked, r.max_parallel, r.priority,
            r.budget_usd.nanos if r.budget_usd else 0, r.budget_usd.period if r.budget_usd else "", r.team,
            ",".join(r.tools), r.tool_rpm, r.tool_parallel, r.owner, r.argo_user)


def _record_of(row: tuple[Any, ...]) -> KeyRecord:
    (name, digest, prefix, models, rpm, tpm, tokens, period, expires, created, revoked, max_parallel, priority, usd,
     usd_period, team, tools, tool_rpm, tool_parallel, owner, argo_user) = row
    return KeyRecord(name, digest, prefix, tuple(m for m in models.split(",") if m), rpm, tpm,
                     Budget(tokens, period) if tokens else None, expires, created, revoked, max_parallel, priority,
                     MoneyBudget(usd, usd_period) if usd else None, team, tools=_globs(tools),
                     tool_rpm=tool_rpm, tool_parallel=tool_parallel, owner=owner or "", argo_user=argo_user or "")


_KEY_OF = ", ".join("keys." + column for column in _KEY_COLUMNS.split(", "))
_TEAM_OF = ", ".join("t." + column for column in _TEAM_COLUMNS.split(", "))  # a key's team's row, beside it


_KEYS, _TEAMS = len(_KEY_COLUMNS.split(", ")), len(_TEAM_COLUMNS.split(", "))


def _with_team(row: tuple[Any, ...]) -> KeyRecord:
    """A key's row, its team's (NULLs: no team, or none of that name) and its owner's state, as its record."""
    record = _record_of(row[:_KEYS])
    team = row[_KEYS:_KEYS + _TEAMS]
    owner: dict[str, Any] = {"owner_disabled": row[-3] or 0.0, "owner_seen": row[-2] or 0.0,
                             "owner_argo_user": row[-1] or ""} if record.owner else {}
    return dataclasses.replace(record, team_record=_team_of(team), **owner) if team[0] is not None else \
        dataclasses.replace(record, **owner) if owner else record


def _team_row(t: TeamRecord) -> tuple[Any, ...]:
    return (t.name, ",".join(t.models), t.rpm, t.tpm, t.budget.tokens if t.budget else 0,
            t.budget.period if t.budget else "", t.expires, t.created, t.max_parallel, t.priority,
            t.budget_usd.nanos if t.budget_usd else 0, t.budget_usd.period if t.budget_usd else "", ",".join(t.tools),
            t.tool_rpm, t.tool_parallel, SEP.join(t.groups), ",".join(t.leads))


def _team_of(row: tuple[Any, ...]) -> TeamRecord:
    (name, models, rpm, tpm, tokens, period, expires, created, max_parallel, priority, usd, usd_period, tools, tool_rpm,
     tool_parallel, groups, leads) = row
    return TeamRecord(name, tuple(m for m in models.split(",") if m), rpm, tpm, Budget(tokens, period) if tokens else None,
                      expires, created, max_parallel, priority, MoneyBudget(usd, usd_period) if usd else None,
                      _globs(tools), tool_rpm, tool_parallel, tuple(g for g in (groups or "").split(SEP) if g),
                      _globs(leads))


def _globs(text: str | None) -> tuple[str, ...]:
    return tuple(g for g in (text or "").split(",") if g)
