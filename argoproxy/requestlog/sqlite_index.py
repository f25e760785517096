"""The request log's rows in the SQLite key store (KEYS_DB): one table beside the keys', ordered by time, with an
index for the filters whose values are many (owner, key: each led by the filter, then the time, so rows are
appended where each key's end is). The filters whose values are few (model, status, door, session) read the time
order and skip what they do not admit, and a request's detail is found by a scan (tens of milliseconds at 100,000
rows): an index on the random request ids wrote a random page per row, which cost the worker 4 % more CPU per
request (bench/cpu_pairs.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from argoproxy.requestlog.rows import Cursor, Filters, LogRow
from argoproxy.sqlite_files import connect, immediate, off_loop, wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS request_log (
    time REAL NOT NULL, request_id TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL, model TEXT NOT NULL,
    status INTEGER NOT NULL, door TEXT NOT NULL, session TEXT NOT NULL, input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL, cost INTEGER NOT NULL, file TEXT NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, PRIMARY KEY (time, request_id)) WITHOUT ROWID;
""" + "".join(f"CREATE INDEX IF NOT EXISTS request_log_{column} ON request_log ({column}, time, request_id);\n"
              for column in ("owner", "key"))
COLUMNS = ", ".join(LogRow._fields)


class SQLiteIndex:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._db: Any = None

    def _connect(self) -> Any:
        if self._db is None:
            db = connect(self.path)
            wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    def _run(self, work: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                return work(self._connect())
        return off_loop(locked)

    def add(self, rows: list[LogRow], most: int, prune: bool) -> None:
        """Rows written in one transaction; with `prune`, the oldest past `most` rows removed."""
        def write(db: Any) -> None:
            with immediate(db):
                db.executemany(f"INSERT OR REPLACE INTO request_log ({COLUMNS}) VALUES ({','.join('?' * 14)})", rows)
                if not prune:
                    return
                oldest = db.execute("SELECT time, request_id FROM request_log ORDER BY time DESC, request_id DESC "
                                    "LIMIT 1 OFFSET ?", (most,)).fetchone()
                if oldest is not None:
                    db.execute("DELETE FROM request_log WHERE (time, request_id) <= (?, ?)", oldest)
        self._run(write)

    def page(self, filters: Filters, after: Cursor | None, limit: int) -> list[LogRow]:
        where, args = [], []
        for column, value in filters.equal():
            where.append(f"{column} = ?")
            args.append(value)
        if filters.since is not None:
            where.append("time >= ?")
            args.append(filters.since)
        if filters.until is not None:
            where.append("time < ?")
            args.append(filters.until)
        if after is not None:
            where.append("(time, request_id) < (?, ?)")
            args.extend(after)
        sql = (f"SELECT {COLUMNS} FROM request_log {'WHERE ' + ' AND '.join(where) if where else ''} "
               "ORDER BY time DESC, request_id DESC LIMIT ?")
        return self._run(lambda db: [LogRow(*row) for row in db.execute(sql, (*args, limit)).fetchall()])

    def row(self, request_id: str) -> LogRow | None:
        found = self._run(lambda db: db.execute(f"SELECT {COLUMNS} FROM request_log WHERE request_id = ? "
                                                "ORDER BY time DESC LIMIT 1", (request_id,)).fetchone())
        return LogRow(*found) if found else None

    def count(self) -> int:
        return int(self._run(lambda db: db.execute("SELECT COUNT(*) FROM request_log").fetchone()[0]))
