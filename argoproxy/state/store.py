"""The response store in SQLite: responses.db in the proxy's data directory (beside keys.db), shared by the
workers of one instance; nothing to install. One row a response (its JSON whole), one a conversation, one a
conversation item. Bounds are checked in the write's own transaction, so workers racing cannot pass them
together. Every call is synchronous and short; callers run it off the gevent loop (argoproxy/sqlite_files.py).

Calls are tried on a gevent worker's loop first, without waiting (sqlite_files.first_here: a hop to the thread
pool and back cost more CPU than the write itself); a lock met sends the call to the pool. What may take long is
kept off the loop: connecting, deleting expired rows (RESPONSES_RETENTION; at most once a minute per worker) and
moving the write-ahead log into the file (a checkpoint, which syncs it: every CHECKPOINT_EVERY writes), each done
by `maintain` when `maintenance_due` says so.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from argoproxy.jsonfast import dumps
from argoproxy.sqlite_files import Busy, ReadConnection, busy_timeout, connect, held, immediate, native_lock, waits, wal
from argoproxy.state.records import StoredConversation, StoredResponse, StoreFull, encoded

log = logging.getLogger("cot_proxy")

SWEEP_EVERY = 60.0  # seconds between two sweeps of expired rows by one worker
CHECKPOINT_EVERY = 200  # a worker's writes between two checkpoints of the write-ahead log (SQLite's own: 1000 pages)
SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL, size INTEGER NOT NULL,
    background INTEGER NOT NULL, live INTEGER NOT NULL, heartbeat REAL NOT NULL, cancelled INTEGER NOT NULL,
    data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires);
CREATE INDEX IF NOT EXISTS responses_live ON responses (heartbeat, owner) WHERE live = 1;
DROP INDEX IF EXISTS responses_owner;
CREATE TABLE IF NOT EXISTS events (
    resp TEXT NOT NULL, seq INTEGER NOT NULL, owner TEXT NOT NULL, expires REAL NOT NULL, size INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (resp, seq));
CREATE INDEX IF NOT EXISTS events_owner ON events (owner, size);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, size);
CREATE TABLE IF NOT EXISTS items (
    conversation TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, owner TEXT NOT NULL, size INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (conversation, seq));
CREATE INDEX IF NOT EXISTS items_id ON items (id);
CREATE INDEX IF NOT EXISTS items_owner ON items (owner, size);
"""
# Responses are read by owner only among background runs still going (live_runs): their index holds those
# rows alone, so a new whole response updates one index fewer (an index on every row's owner, from before
# the totals below, cost each stored response some 7 k instructions more).
TABLES = ("responses", "events", "conversations", "items")  # what counts against the bounds
ALL = "*"  # the totals row of the whole store
# Bytes by owner, kept by triggers in the writes' own transactions: a bound is read in one row, not summed
# over a key's every response (100k of them made each write scan 100k rows).
TOTALS = "CREATE TABLE IF NOT EXISTS totals (owner TEXT PRIMARY KEY, bytes INTEGER NOT NULL);\n" + "".join(
    f"""CREATE TRIGGER IF NOT EXISTS {t}_added AFTER INSERT ON {t} BEGIN
    INSERT INTO totals VALUES (NEW.owner, NEW.size) ON CONFLICT (owner) DO UPDATE SET bytes = bytes + NEW.size;
    INSERT INTO totals VALUES ('{ALL}', NEW.size) ON CONFLICT (owner) DO UPDATE SET bytes = bytes + NEW.size;
END;
CREATE TRIGGER IF NOT EXISTS {t}_removed AFTER DELETE ON {t} BEGIN
    UPDATE totals SET bytes = bytes - OLD.size WHERE owner IN (OLD.owner, '{ALL}');
END;
""" for t in TABLES)
COUNTED = " UNION ALL ".join(f"SELECT owner, size FROM {t}" for t in TABLES)
OWNER_BYTES = "SELECT COALESCE((SELECT bytes FROM totals WHERE owner = ?), 0)"
ALL_BYTES = f"SELECT COALESCE((SELECT bytes FROM totals WHERE owner = '{ALL}'), 0)"


class SQLiteResponseStore:
    def __init__(self, path: str | os.PathLike[str], retention: float, key_bytes: int, total_bytes: int) -> None:
        self.path = Path(path).expanduser()
        self.retention, self.key_bytes, self.total_bytes = retention, key_bytes, total_bytes
        self._lock: Any = None
        self._db: sqlite3.Connection | None = None
        self._reader = ReadConnection(self.path, self._prepare)  # a write waiting holds no read behind it
        self._swept = 0.0
        self._waits = {"db": True}  # each connection's busy-timeout mode (sqlite_files.busy_timeout)
        self._writes = 0  # since the last checkpoint
        self._checkpointer: sqlite3.Connection | None = None  # `maintain`'s
        self._maintaining: Any = None  # held while `maintain` runs (one at a time)

    # ------------------------------------------------------------ connection
    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            if not waits():
                raise Busy()  # made off the loop: creating the file and its schema may wait
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():  # readable by its owner only: it holds what users asked and got
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            db = connect(self.path)
            wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA recursive_triggers=ON")  # a row INSERT OR REPLACE replaces is counted out too
            db.execute("PRAGMA secure_delete=ON")  # a deleted response's bytes are overwritten, not left in free pages
            db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints are `maintain`'s, off the loop
            db.executescript(SCHEMA)
            if not db.execute("SELECT name FROM sqlite_master WHERE name = 'totals'").fetchone():
                db.executescript("BEGIN IMMEDIATE;\n" + TOTALS + f"""
                    INSERT OR REPLACE INTO totals SELECT owner, SUM(size) FROM ({COUNTED}) GROUP BY owner;
                    INSERT OR REPLACE INTO totals SELECT '{ALL}', COALESCE(SUM(size), 0) FROM ({COUNTED});
                    COMMIT;""")
            self._db = db
        return self._db

    def _locked(self) -> Any:
        if self._lock is None:
            self._lock = native_lock()  # made in the worker: threads of gevent's pool share the connection
        return self._lock

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with held(self._locked()):
            db = self._connect()
            self._waits["db"] = busy_timeout(db, self._waits["db"])
            with immediate(db):
                yield db
            self._writes += 1

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._reader.locked() as db:
            return db.execute(sql, args).fetchall()

    def _prepare(self) -> None:
        with self._locked():
            self._connect()  # the file and its schema exist before the reader's connection

    # ------------------------------------------------------------ bounds and expiry
    def _room(self, db: sqlite3.Connection, owner: str, adding: int, freeing: int = 0) -> None:
        """Refuse a write that would pass the key's or the instance's bound (StoreFull)."""
        owned = db.execute(OWNER_BYTES, (owner,)).fetchone()[0] - freeing
        if owned + adding > self.key_bytes:
            raise StoreFull(f"This key's stored responses and conversations hold {owned} bytes; storing {adding} "
                            f"more would pass RESPONSES_MAX_BYTES_PER_KEY ({self.key_bytes}). Delete some "
                            "(DELETE /v1/responses/{id}, /v1/conversations/{id}) or send `store: false`.")
        total = db.execute(ALL_BYTES).fetchone()[0] - freeing
        if total + adding > self.total_bytes:
            raise StoreFull(f"The proxy's response store is full (RESPONSES_MAX_BYTES, {self.total_bytes} bytes). "
                            "Delete stored responses or send `store: false`.")

    def _sweep(self, db: sqlite3.Connection, now: float) -> None:
        db.execute("DELETE FROM responses WHERE expires < ?", (now,))
        db.execute("DELETE FROM events WHERE expires < ?", (now,))
        gone = [row[0] for row in db.execute("SELECT id FROM conversations WHERE expires < ?", (now,))]
        for conv in gone:
            db.execute("DELETE FROM items WHERE conversation = ?", (conv,))
        db.execute("DELETE FROM conversations WHERE expires < ?", (now,))

    def sweep(self) -> None:
        with self._write() as db:
            self._sweep(db, time.time())

    def maintenance_due(self) -> bool:
        return self._writes >= CHECKPOINT_EVERY or time.time() - self._swept > SWEEP_EVERY

    def maintain(self) -> None:
        """Expired rows deleted (once a minute), the write-ahead log checkpointed: off the loop, where they may
        wait and sync."""
        if self._maintaining is None:
            self._maintaining = native_lock()
        if not self._maintaining.acquire(False):
            return  # another greenlet's call is at it
        try:
            self._writes = 0
            now = time.time()
            if now - self._swept > SWEEP_EVERY:
                self._swept = now
                self.sweep()
            if self._checkpointer is None:  # a connection of its own: writes go on while it copies and syncs
                self._checkpointer = connect(self.path)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            self._maintaining.release()

    # ------------------------------------------------------------ responses
    def put_response(self, rec: StoredResponse) -> None:
        """Insert or replace, within the bounds."""
        self._put(rec, existing_only=False)

    def update_response(self, rec: StoredResponse) -> bool:
        """A background run's progress or end, written over its record only: False when that is gone (deleted,
        or expired), which is never written back."""
        return self._put(rec, existing_only=True)

    def _put(self, rec: StoredResponse, existing_only: bool) -> bool:
        data = encoded(rec)
        live = 1 if rec.background and rec.status in ("queued", "in_progress") else 0
        with self._write() as db:
            old = db.execute("SELECT size FROM responses WHERE id = ?", (rec.id,)).fetchone()
            if old is None and existing_only:
                return False
            self._room(db, rec.owner, len(data), old[0] if old else 0)
            # a cancel asked meanwhile (by another worker) stays asked
            db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, MAX(?, COALESCE((SELECT heartbeat "
                       "FROM responses WHERE id = ?), 0)), COALESCE((SELECT cancelled FROM responses WHERE id = ?), 0) "
                       "| ?, ?)",
                       (rec.id, rec.owner, rec.created + self.retention, len(data), int(rec.background), live,
                        rec.heartbeat, rec.id, rec.id, int(rec.cancelled), data))
        return True

    def put_encoded(self, batch: list[tuple[StoredResponse, bytes]]) -> dict[str, int]:
        """New responses (their JSON encoded already: records.encoded) in one transaction, each within the
        bounds (one past them is left out, and logged); returns each owner's bytes in use after it."""
        rows = []
        key_bytes, total_bytes, retention = self.key_bytes, self.total_bytes, self.retention
        with self._write() as db:
            owners, total = self._totals(db, {rec.owner for rec, _ in batch})
            for rec, data in batch:
                owner, size = rec.owner, len(data)
                used = owners[owner] + size
                if used > key_bytes or total + size > total_bytes:
                    log.warning("response %s not stored: the store's bound (RESPONSES_MAX_BYTES_PER_KEY or "
                                "RESPONSES_MAX_BYTES) would be passed", rec.id)
                    continue
                owners[owner] = used
                total += size
                rows.append((rec.id, owner, rec.created + retention, size, data))
            db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, 0, 0, 0, 0, ?)", rows)
        return owners

    @staticmethod
    def _totals(db: sqlite3.Connection, owners: set[str]) -> tuple[dict[str, int], int]:
        """Each owner's bytes in use and the store's, read together (500 owners a statement: SQLite's bound on
        its parameters)."""
        found: dict[str, int] = {}
        wanted = [ALL, *owners]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            found.update(db.execute(f"SELECT owner, bytes FROM totals WHERE owner IN ({', '.join('?' * len(chunk))})",
                                    chunk).fetchall())
        return {owner: found.get(owner, 0) for owner in owners}, found.get(ALL, 0)

    def get_response(self, resp_id: str) -> StoredResponse | None:
        rows = self._read("SELECT data, cancelled, heartbeat FROM responses WHERE id = ? AND expires >= ?",
                          (resp_id, time.time()))
        return _record(*rows[0]) if rows else None

    def get_responses(self, ids: list[str]) -> dict[str, StoredResponse]:
        found: dict[str, StoredResponse] = {}
        now = time.time()
        for start in range(0, len(ids), 500):  # SQLite's bound on one statement's parameters
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for data, cancelled, beat in self._read(f"SELECT data, cancelled, heartbeat FROM responses WHERE id IN "
                                                    f"({marks}) AND expires >= ?", (*chunk, now)):
                rec = _record(data, cancelled, beat)
                found[rec.id] = rec
        return found

    def delete_response(self, resp_id: str) -> bool:
        with self._write() as db:
            db.execute("DELETE FROM events WHERE resp = ?", (resp_id,))
            return db.execute("DELETE FROM responses WHERE id = ?", (resp_id,)).rowcount > 0

    def add_events(self, rec: StoredResponse, events: list[tuple[int, dict[str, Any]]]) -> None:
        """A streamed background run's next events, each with its sequence number, for `starting_after`."""
        rows = [(rec.id, seq, rec.owner, rec.created + self.retention, len(d), d)
                for seq, e in events for d in (dumps(e),)]
        with self._write() as db:
            if db.execute("SELECT 1 FROM responses WHERE id = ?", (rec.id,)).fetchone() is None:
                return  # the response was deleted: its events go with it
            self._room(db, rec.owner, sum(r[4] for r in rows))
            db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)

    def events_after(self, resp_id: str, after: int) -> list[dict[str, Any]]:
        return [json.loads(d) for (d,) in self._read("SELECT data FROM events WHERE resp = ? AND seq > ? ORDER BY seq",
                                                      (resp_id, after))]

    def touch(self, resp_id: str, now: float) -> None:
        """A background run's heartbeat (it is alive, whether its upstream says anything or not)."""
        with self._write() as db:
            db.execute("UPDATE responses SET heartbeat = ? WHERE id = ?", (now, resp_id))

    def set_cancelled(self, resp_id: str) -> None:
        """Mark a background run to stop (its runner reads the flag as it goes)."""
        with self._write() as db:
            db.execute("UPDATE responses SET cancelled = 1 WHERE id = ?", (resp_id,))

    def stop_asked(self, resp_id: str) -> bool:
        """Should a background run stop: its cancel asked, or its response deleted (or expired)? One small read,
        made by each run every moment."""
        rows = self._read("SELECT cancelled FROM responses WHERE id = ? AND expires >= ?", (resp_id, time.time()))
        return not rows or bool(rows[0][0])

    def live_runs(self, owner: str, since: float) -> tuple[int, int]:
        """Background runs still going (a heartbeat since `since`): the owner's, and all of them."""
        mine = self._read("SELECT COUNT(*) FROM responses WHERE live = 1 AND heartbeat >= ? AND owner = ?",
                          (since, owner))[0][0]
        every = self._read("SELECT COUNT(*) FROM responses WHERE live = 1 AND heartbeat >= ?", (since,))[0][0]
        return int(mine), int(every)

    # ------------------------------------------------------------ conversations
    def put_conversation(self, conv: StoredConversation, items: list[dict[str, Any]]) -> None:
        data = dumps(conv.as_object())
        with self._write() as db:
            old = db.execute("SELECT size FROM conversations WHERE id = ?", (conv.id,)).fetchone()
            sizes = [len(dumps(i)) for i in items]
            self._room(db, conv.owner, len(data) + sum(sizes), old[0] if old else 0)
            db.execute("INSERT OR REPLACE INTO conversations VALUES (?, ?, ?, ?, ?)",
                       (conv.id, conv.owner, conv.created + self.retention, len(data), data))
            self._append(db, conv, items)

    def get_conversation(self, conv_id: str) -> StoredConversation | None:
        rows = self._read("SELECT data, owner FROM conversations WHERE id = ? AND expires >= ?", (conv_id, time.time()))
        if not rows:
            return None
        obj = json.loads(rows[0][0])
        return StoredConversation(obj["id"], rows[0][1], obj["created_at"], obj.get("metadata") or {})

    def delete_conversation(self, conv_id: str) -> bool:
        with self._write() as db:
            db.execute("DELETE FROM items WHERE conversation = ?", (conv_id,))
            return db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,)).rowcount > 0

    def add_items(self, conv: StoredConversation, items: list[dict[str, Any]]) -> None:
        with self._write() as db:
            self._room(db, conv.owner, sum(len(dumps(i)) for i in items))
            self._append(db, conv, items)

    @staticmethod
    def _append(db: sqlite3.Connection, conv: StoredConversation, items: list[dict[str, Any]]) -> None:
        seq = db.execute("SELECT COALESCE(MAX(seq), -1) FROM items WHERE conversation = ?", (conv.id,)).fetchone()[0]
        for item in items:
            seq += 1
            data = dumps(item)
            db.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", (conv.id, seq, item["id"], conv.owner,
                                                                        len(data), data))

    def recent_items(self, conv_id: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """A conversation's newest items up to `limit` bytes, oldest first; and whether they are all of them."""
        found: list[bytes] = []
        total = 0
        with self._reader.locked() as db:
            for data, size in db.execute("SELECT data, size FROM items WHERE conversation = ? ORDER BY seq DESC",
                                         (conv_id,)):
                total += size
                if total > limit:
                    return [json.loads(d) for d in reversed(found)], False
                found.append(data)
        return [json.loads(d) for d in reversed(found)], True

    def items(self, conv_id: str) -> list[dict[str, Any]]:
        return [json.loads(d) for (d,) in self._read("SELECT data FROM items WHERE conversation = ? ORDER BY seq",
                                                      (conv_id,))]

    def item(self, item_id: str) -> tuple[str, str, dict[str, Any]] | None:
        """(conversation id, owner, item) of a conversation item by its id."""
        rows = self._read("SELECT conversation, owner, data FROM items WHERE id = ? LIMIT 1", (item_id,))
        return (rows[0][0], rows[0][1], json.loads(rows[0][2])) if rows else None

    def delete_item(self, conv_id: str, item_id: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM items WHERE conversation = ? AND id = ?", (conv_id, item_id)).rowcount > 0

    def used_bytes(self, owner: str) -> int:
        return int(self._read(OWNER_BYTES, (owner,))[0][0])


def _record(data: bytes | str, cancelled: int, heartbeat: float) -> StoredResponse:
    rec = StoredResponse.of(json.loads(data))
    rec.stored_size = len(data)
    rec.cancelled = rec.cancelled or bool(cancelled)
    rec.heartbeat = max(rec.heartbeat, heartbeat)
    return rec
