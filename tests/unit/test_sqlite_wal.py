"""sqlite_files.wal: a connection that meets another converting the same new file to WAL waits for it (SQLite's
own pragma fails at once there: "database is locked", as a CI run's eight `keys create` met)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from argoproxy.sqlite_files import connect, wal


def held_reserved(path):
    """A connection holding the write lock of a rollback-journal file, as a converter does while it waits."""
    holder = connect(path)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_sqlites_own_pragma_does_not_wait_there(tmp_path):
    holder = held_reserved(tmp_path / "a.db")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        connect(tmp_path / "a.db").execute("PRAGMA journal_mode=WAL")
    holder.execute("ROLLBACK")


def test_wal_waits_for_the_other_writer_then_converts(tmp_path):
    holder = held_reserved(tmp_path / "a.db")
    second = connect(tmp_path / "a.db")
    waiting = threading.Thread(target=wal, args=(second,))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive()  # waiting for the lock, not failed
    holder.execute("COMMIT")
    waiting.join(10)
    assert not waiting.is_alive()
    assert second.execute("PRAGMA journal_mode").fetchone() == ("wal",)
