"""The audit log's entries (teamkeys/audit.py) in each key store: SQLite's `audit` table (ids in order) and a Redis
stream (ids in time order across replicas). Both list newest first, PAGE at a time, after an opaque cursor (the
last entry's id); a cursor that is not one is a ValueError."""

from __future__ import annotations

import json
import re
from typing import Any

from argoproxy.teamkeys.audit import PAGE, AuditEntry

AUDIT_TABLE = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, fields TEXT NOT NULL, address TEXT NOT NULL, agent TEXT NOT NULL);
"""
STREAM = "cot_proxy:audit"
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def bad_cursor() -> ValueError:
    return ValueError("cursor: not one this list gave (pass the `next` of the page before)")


class SQLiteAudit:
    _write: Any
    _read: Any

    def add_audit(self, entry: AuditEntry) -> None:
        with self._write() as db:
            db.execute("INSERT INTO audit (at, who, action, target, fields, address, agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (entry.at, entry.who, entry.action, entry.target, json.dumps(dict(entry.fields)),
                        entry.address, entry.agent))

    def audit(self, cursor: str = "", limit: int = PAGE) -> list[AuditEntry]:
        if cursor and not (cursor.isascii() and cursor.isdigit() and len(cursor) < 19):
            raise bad_cursor()
        rows = self._read("SELECT id, at, who, action, target, fields, address, agent FROM audit WHERE id < ? "
                          "ORDER BY id DESC LIMIT ?", (int(cursor) if cursor else 1 << 62, limit))
        return [AuditEntry(at, who, action, target, json.loads(fields), address, agent, str(id_))
                for id_, at, who, action, target, fields, address, agent in rows]


class RedisAudit:
    redis: Any

    def add_audit(self, entry: AuditEntry) -> None:
        self.redis.xadd(STREAM, {"entry": json.dumps({"at": entry.at, "who": entry.who, "action": entry.action,
                                                      "target": entry.target, "fields": dict(entry.fields),
                                                      "address": entry.address, "agent": entry.agent})})

    def audit(self, cursor: str = "", limit: int = PAGE) -> list[AuditEntry]:
        if cursor and not _STREAM_ID.fullmatch(cursor):
            raise bad_cursor()
        found = []
        for id_, values in self.redis.xrevrange(STREAM, "(" + cursor if cursor else "+", "-", count=limit):
            e = json.loads(values["entry"])
            found.append(AuditEntry(e["at"], e["who"], e["action"], e["target"], e["fields"], e["address"],
                                    e["agent"], id_))
        return found
