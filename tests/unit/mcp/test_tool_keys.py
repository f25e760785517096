"""`keys create|update --tools` and `teams create --tools`: MCP tool globs stored with the key (SQLite, and a
store made before them gains the column), read back with its team's, which bound them."""

import sqlite3

import pytest

from argoproxy.teamkeys.records import KeyRecord, TeamRecord, parse_tools
from argoproxy.teamkeys.store import SQLiteKeyStore


def test_tool_globs_are_stored_and_read_with_the_teams(tmp_path):
    store = SQLiteKeyStore(tmp_path / "keys.db")
    store.create_team(TeamRecord("ops", tools=("git__*", "docs__*")))
    store.create(KeyRecord("bot", "d1", "sk-proxy-x", team="ops", tools=("git__status",)))
    record = store.find("d1")
    assert record.tools == ("git__status",) and record.team_record.tools == ("git__*", "docs__*")
    assert record.allowed_tools == (("git__status",), ("git__*", "docs__*"))
    store.update("bot", {"tools": ()})
    assert store.find("d1").allowed_tools == (("git__*", "docs__*"),)
    assert KeyRecord("free", "d2", "p").allowed_tools == ()


def test_a_store_made_before_tool_globs_gains_them(tmp_path):
    path = tmp_path / "keys.db"
    store = SQLiteKeyStore(path)
    store.create(KeyRecord("old", "d0", "p"))
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE keys DROP COLUMN tools")
    db.execute("ALTER TABLE teams DROP COLUMN tools")
    db.commit()
    db.close()
    reopened = SQLiteKeyStore(path)
    assert reopened.find("d0").tools == ()


def test_tool_globs_are_checked():
    assert parse_tools("git__*, docs__read_*") == ("git__*", "docs__read_*")
    with pytest.raises(ValueError, match="--tools"):
        parse_tools("git__*;rm -rf")
