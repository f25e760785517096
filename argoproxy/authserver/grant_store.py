"""The authorization server's records, kept in the key store so that any replica serves them: registered clients,
authorization codes, refresh tokens and their families, and the signing key. A record is a name and a JSON text
with an expiry; `swap` replaces a live one and gives back what it held in one step (a code or a refresh token is taken
once, even by two replicas at the same moment). SQLite (KEYS_DB's file, a table of its own) or, with REDIS_URL,
Redis."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Protocol, TypeVar

from argoproxy import sqlite_files

T = TypeVar("T")

REDIS_PREFIX = "cot_proxy:oauth:"
COUNTED = frozenset({"client"})  # the kinds whose live records Redis counts (registrations: capped)
SCHEMA = ("CREATE TABLE IF NOT EXISTS oauth_grants (name TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL)",
          "CREATE INDEX IF NOT EXISTS oauth_grants_expires ON oauth_grants (expires)")


class GrantStore(Protocol):
    def put(self, name: str, value: str, ttl: float) -> None: ...
    def get(self, name: str) -> str | None: ...
    def swap(self, name: str, value: str, ttl: float) -> str | None: ...
    def add(self, name: str, value: str, ttl: float) -> bool: ...
    def count(self, prefix: str) -> int: ...


class SQLiteGrants:
    def __init__(self, path: str, clock: Any = time.time) -> None:
        self.path, self.clock, self.lock = path, clock, threading.Lock()
        self._db: Any = None

    def _conn(self) -> Any:
        if self._db is None:
            db = sqlite_files.connect(self.path)
            sqlite_files.wal(db)
            for statement in SCHEMA:
                db.execute(statement)
            self._db = db
        return self._db

    def _run(self, work: Callable[[Any], T]) -> T:
        """`work` with the connection, off gevent's loop: SQLite's wait for the file's lock sleeps in C, and the loop
        it would stop may be running the transaction that holds the lock (the key store's usage flush yields between
        its statements; teamkeys/credential_store.py says more)."""
        with self.lock:
            return sqlite_files.off_loop(lambda: work(self._conn()))

    def put(self, name: str, value: str, ttl: float) -> None:
        now = self.clock()

        def kept(conn: Any) -> None:
            with sqlite_files.immediate(conn) as db:
                db.execute("DELETE FROM oauth_grants WHERE expires < ?", (now,))  # the expired go (an index finds them)
                db.execute("INSERT OR REPLACE INTO oauth_grants VALUES (?, ?, ?)", (name, value, now + ttl))
        self._run(kept)

    def get(self, name: str) -> str | None:
        row = self._run(lambda db: db.execute("SELECT value FROM oauth_grants WHERE name = ? AND expires >= ?",
                                              (name, self.clock())).fetchone())
        return str(row[0]) if row else None

    def swap(self, name: str, value: str, ttl: float) -> str | None:
        """Replace a live record with `value`, giving back what it held, in one transaction; None (and nothing
        written) when there is none: a name a client made up leaves no row."""
        now = self.clock()

        def swapped(conn: Any) -> Any:
            with sqlite_files.immediate(conn) as db:
                row = db.execute("SELECT value FROM oauth_grants WHERE name = ? AND expires >= ?",
                                 (name, now)).fetchone()
                if row:
                    db.execute("UPDATE oauth_grants SET value = ?, expires = ? WHERE name = ?",
                               (value, now + ttl, name))
            return row
        row = self._run(swapped)
        return str(row[0]) if row else None

    def add(self, name: str, value: str, ttl: float) -> bool:
        """Keep `value` only when nothing live has the name: False when something had."""
        now = self.clock()

        def added(conn: Any) -> bool:
            with sqlite_files.immediate(conn) as db:
                db.execute("DELETE FROM oauth_grants WHERE name = ? AND expires < ?", (name, now))
                done = db.execute("INSERT OR IGNORE INTO oauth_grants VALUES (?, ?, ?)", (name, value, now + ttl))
            return bool(done.rowcount > 0)
        return self._run(added)

    def count(self, prefix: str) -> int:
        row = self._run(lambda db: db.execute("SELECT count(*) FROM oauth_grants WHERE name >= ? AND name < ? AND "
                                              "expires >= ?", (prefix, prefix + "\U0010ffff", self.clock())).fetchone())
        return int(row[0])


class RedisGrants:
    """Each record a string key expiring with it; the names of the kinds counted (COUNTED: the text before the
    first ':') in a sorted set by expiry too, which `count` reads and trims."""

    def __init__(self, client: Any, clock: Any = time.time) -> None:
        self.redis, self.clock = client, clock

    def _index(self, name: str) -> str:
        return f"{REDIS_PREFIX}index:{name.partition(':')[0]}"

    def _indexed(self, pipe: Any, name: str, ttl: float) -> None:
        if name.partition(":")[0] in COUNTED:
            pipe.zadd(self._index(name), {name: self.clock() + ttl})

    def put(self, name: str, value: str, ttl: float) -> None:
        pipe = self.redis.pipeline()
        pipe.set(REDIS_PREFIX + name, value, ex=max(1, int(ttl)))
        self._indexed(pipe, name, ttl)
        pipe.execute()

    def get(self, name: str) -> str | None:
        value = self.redis.get(REDIS_PREFIX + name)
        return str(value) if value is not None else None

    def swap(self, name: str, value: str, ttl: float) -> str | None:
        old = self.redis.set(REDIS_PREFIX + name, value, ex=max(1, int(ttl)), xx=True, get=True)  # SET XX GET
        return str(old) if old is not None else None

    def add(self, name: str, value: str, ttl: float) -> bool:
        if not self.redis.set(REDIS_PREFIX + name, value, ex=max(1, int(ttl)), nx=True):
            return False
        pipe = self.redis.pipeline()
        self._indexed(pipe, name, ttl)
        pipe.execute()
        return True

    def count(self, prefix: str) -> int:
        index = self._index(prefix)
        self.redis.zremrangebyscore(index, "-inf", self.clock())
        return int(self.redis.zcard(index))


def grants_of(key_store: Any) -> GrantStore:
    """The grants beside a key store: Redis itself (behind its outage policy) when it is Redis, else its file."""
    store = getattr(key_store, "primary", key_store)
    if hasattr(store, "redis"):
        return RedisGrants(store.redis)
    return SQLiteGrants(str(store.path))
