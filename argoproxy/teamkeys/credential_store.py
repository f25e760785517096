"""Where people's sealed MCP server tokens are kept (mcp/credential_vault.py seals them): the key store, as the team
keys are (KEYS_DB's SQLite file, a table of its own; or with REDIS_URL, Redis, shared by the replicas). A row is
(person id, server name) -> sealed bytes: nothing here can read a token.

A row's refresh is made by one worker of one replica at a time (a lease: `claim`, `release`), and its answer kept
only over the row it was made from (`swap`): a refresh token is never sent twice (a provider that sees one again
revokes the whole grant), and a connection revoked meanwhile is not brought back by a refresh that ends after."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from typing import Any, Callable, Protocol, TypeVar

from argoproxy import sqlite_files

REDIS_PREFIX = "cot_proxy:mcp_credentials:"  # + person id: a hash of server name -> sealed (base64)
REDIS_LEASE = "cot_proxy:mcp_credentials_lease:"  # + person id, server name: who refreshes it now
LEASE = "lease:"  # SQLite: + person id, a row of the lease's holder (its nonce) in place of sealed bytes
# Redis: server ARGV[1]'s row set to ARGV[3] (deleted without one) only while it holds ARGV[2]; a lease ended
# only by its holder
SWAP = """if redis.call('hget', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] then redis.call('hset', KEYS[1], ARGV[1], ARGV[3]) else redis.call('hdel', KEYS[1], ARGV[1]) end
return 1"""
T = TypeVar("T")
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


FLOW = "flow:"  # rows of connections being made (mcp/connect_flow.py): kept `ttl` seconds at most


class CredentialStore(Protocol):
    def put(self, person: str, server: str, sealed: bytes, ttl: float = 0.0) -> None: ...
    def get(self, person: str, server: str) -> bytes | None: ...
    def delete(self, person: str, server: str | None = None) -> int: ...
    def servers(self, person: str) -> list[str]: ...
    def swap(self, person: str, server: str, old: bytes, new: bytes | None) -> bool: ...
    def claim(self, person: str, server: str, seconds: float) -> str: ...
    def release(self, person: str, server: str, lease: str) -> None: ...


class SQLiteCredentials:
    def __init__(self, path: str) -> None:
        self.path, self.lock = path, threading.Lock()
        self._db: Any = None

    def _conn(self) -> Any:
        if self._db is None:
            db = sqlite_files.connect(self.path)
            sqlite_files.wal(db)
            db.execute("CREATE TABLE IF NOT EXISTS mcp_credentials (person TEXT NOT NULL, server TEXT NOT NULL, "
                       "sealed BLOB NOT NULL, updated REAL NOT NULL, PRIMARY KEY (person, server))")
            self._db = db
        return self._db

    def _run(self, work: Callable[[Any], T]) -> T:
        """`work` with the connection, off gevent's loop (sqlite_files.off_loop): SQLite's wait for the file's lock
        sleeps in C, and the loop it would stop may be running the very transaction that holds the lock (the key
        store's usage flush yields between its statements): it waited out its 5 s, "database is locked"."""
        with self.lock:
            return sqlite_files.off_loop(lambda: work(self._conn()))

    def put(self, person: str, server: str, sealed: bytes, ttl: float = 0.0) -> None:
        """A row kept; with `ttl` (a flow's), the flows older than that go first (abandoned ones never pile up)."""
        def kept(db: Any) -> None:
            if ttl:
                db.execute("DELETE FROM mcp_credentials WHERE person LIKE ? AND updated < ?",
                           (FLOW + "%", time.time() - ttl))
            db.execute("INSERT OR REPLACE INTO mcp_credentials VALUES (?, ?, ?, ?)", (person, server, sealed,
                                                                                    time.time()))
        self._run(kept)

    def get(self, person: str, server: str) -> bytes | None:
        row = self._run(lambda db: db.execute("SELECT sealed FROM mcp_credentials WHERE person = ? AND server = ?",
                                              (person, server)).fetchone())
        return bytes(row[0]) if row else None

    def delete(self, person: str, server: str | None = None) -> int:
        if server is None:
            return self._run(lambda db: int(db.execute("DELETE FROM mcp_credentials WHERE person = ?",
                                                       (person,)).rowcount))
        return self._run(lambda db: int(db.execute("DELETE FROM mcp_credentials WHERE person = ? AND server = ?",
                                                   (person, server)).rowcount))

    def servers(self, person: str) -> list[str]:
        rows = self._run(lambda db: db.execute("SELECT server FROM mcp_credentials WHERE person = ? ORDER BY server",
                                               (person,)).fetchall())
        return [str(row[0]) for row in rows]

    def swap(self, person: str, server: str, old: bytes, new: bytes | None) -> bool:
        """The row replaced by `new` (deleted when None) if it still holds `old`."""
        if new is None:
            return self._run(lambda db: bool(db.execute("DELETE FROM mcp_credentials WHERE person = ? AND server = ? "
                                                        "AND sealed = ?", (person, server, old)).rowcount == 1))
        return self._run(lambda db: bool(db.execute("UPDATE mcp_credentials SET sealed = ?, updated = ? WHERE "
                                                    "person = ? AND server = ? AND sealed = ?",
                                                    (new, time.time(), person, server, old)).rowcount == 1))

    def claim(self, person: str, server: str, seconds: float) -> str:
        """The lease on refreshing (person, server) for `seconds` at most: its nonce, or "" while another holds it."""
        nonce, now = secrets.token_hex(8), time.time()

        def taken(db: Any) -> bool:  # (a lease's row keeps when it ends in `updated`)
            db.execute("DELETE FROM mcp_credentials WHERE person = ? AND server = ? AND updated < ?",
                       (LEASE + person, server, now))
            return bool(db.execute("INSERT OR IGNORE INTO mcp_credentials VALUES (?, ?, ?, ?)",
                                   (LEASE + person, server, nonce.encode(), now + seconds)).rowcount == 1)
        return nonce if self._run(taken) else ""

    def release(self, person: str, server: str, lease: str) -> None:
        self.swap(LEASE + person, server, lease.encode(), None)


class RedisCredentials:
    def __init__(self, url: str, client: Any = None) -> None:
        if client is None:
            from argoproxy.teamkeys.redis_store import connect
            client = connect(url)
        self.redis = client

    def put(self, person: str, server: str, sealed: bytes, ttl: float = 0.0) -> None:
        self.redis.hset(REDIS_PREFIX + person, server, base64.b64encode(sealed).decode())
        if ttl:
            self.redis.expire(REDIS_PREFIX + person, max(1, int(ttl)))

    def get(self, person: str, server: str) -> bytes | None:
        value = self.redis.hget(REDIS_PREFIX + person, server)
        return base64.b64decode(value) if value else None

    def delete(self, person: str, server: str | None = None) -> int:
        if server is None:
            held = self.servers(person)
            self.redis.delete(REDIS_PREFIX + person)
            return len(held)
        return int(self.redis.hdel(REDIS_PREFIX + person, server))

    def servers(self, person: str) -> list[str]:
        return sorted(str(name) for name in self.redis.hkeys(REDIS_PREFIX + person))

    def swap(self, person: str, server: str, old: bytes, new: bytes | None) -> bool:
        said = [base64.b64encode(value).decode() for value in (old, new) if value is not None]
        return bool(self.redis.eval(SWAP, 1, REDIS_PREFIX + person, server, *said))

    def claim(self, person: str, server: str, seconds: float) -> str:
        nonce = secrets.token_hex(8)
        held = self.redis.set(f"{REDIS_LEASE}{person}\x00{server}", nonce, nx=True, px=max(1, int(seconds * 1000)))
        return nonce if held else ""

    def release(self, person: str, server: str, lease: str) -> None:
        self.redis.eval(RELEASE, 1, f"{REDIS_LEASE}{person}\x00{server}", lease)


def credential_store(keys_db: str, redis_url: str = "") -> CredentialStore:
    return RedisCredentials(redis_url) if redis_url else SQLiteCredentials(keys_db)


def credentials_of(key_store: Any) -> CredentialStore:
    """The store of connections beside a key store (the console's: an admin revokes a person's connections)."""
    store = getattr(key_store, "primary", key_store)  # Redis behind its outage policy: Redis itself
    if hasattr(store, "redis"):
        return RedisCredentials("", client=store.redis)
    return SQLiteCredentials(str(store.path))
