"""A team key's priority (`keys create --priority N`): its weight in admission's fair queue, kept by both stores
(a store made before it gets the column; a Redis record written before it reads 0), shown by `keys list`."""

from __future__ import annotations

import sqlite3

import pytest

from argoproxy.teamkeys import cli
from argoproxy.teamkeys.records import KeyRecord, digest, parse_priority
from argoproxy.teamkeys.redis_records import _fields_of, _record_of
from argoproxy.teamkeys.store import SQLiteKeyStore

OLD_SCHEMA = """CREATE TABLE keys (
    name TEXT PRIMARY KEY, digest TEXT UNIQUE NOT NULL, prefix TEXT NOT NULL, models TEXT NOT NULL,
    rpm INTEGER NOT NULL, tpm INTEGER NOT NULL, budget_tokens INTEGER NOT NULL, budget_period TEXT NOT NULL,
    expires REAL NOT NULL, created REAL NOT NULL, revoked REAL NOT NULL)"""


def test_a_store_made_before_priorities_gets_the_column_and_keeps_its_keys(tmp_path):
    path = tmp_path / "keys.db"
    with sqlite3.connect(path) as db:  # the first store's shape: neither max_parallel nor priority
        db.execute(OLD_SCHEMA)
        db.execute("INSERT INTO keys VALUES ('old', ?, 'sk-proxy-old', '', 5, 0, 0, '', 0, 1, 0)",
                   (digest("sk-proxy-old"),))
    store = SQLiteKeyStore(path)
    [old] = store.records()
    assert (old.name, old.rpm, old.max_parallel, old.priority) == ("old", 5, 0, 0)
    assert store.update("old", {"priority": 4})
    assert store.find(digest("sk-proxy-old")).priority == 4


def test_a_redis_record_keeps_the_priority_and_one_written_before_it_reads_zero():
    record = KeyRecord("vip", digest("sk-vip"), "sk-vip", priority=7, created=1.0)
    assert _record_of(_fields_of(record)) == record
    before = {k: v for k, v in _fields_of(record).items() if k != "priority"}
    assert _record_of(before).priority == 0


def test_keys_create_update_and_list_say_the_priority(tmp_path, capsys):
    db = str(tmp_path / "keys.db")

    def run(*args: str) -> tuple[int, str]:
        code = cli.main(["--keys-db", db, *args], settings_of=lambda flags: None)
        return code, capsys.readouterr().out
    assert run("create", "vip", "--priority", "4")[0] == 0
    assert run("create", "batch", "--weight", "1")[0] == 0
    assert run("create", "plain")[0] == 0
    code, listing = run("list")
    header, *rows = listing.splitlines()
    column = header.split().index("PRIORITY")
    assert {row.split()[0]: row.split()[column] for row in rows} == {"vip": "4", "batch": "1", "plain": "-"}
    assert run("update", "vip", "--priority", "0")[0] == 0
    assert SQLiteKeyStore(db).records()[2].priority == 0  # sorted by name: batch, plain, vip
    assert run("create", "bad", "--priority", "1001")[0] == 2


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "x", "1001"])
def test_a_priority_is_a_whole_number_from_1_to_1000(text):
    with pytest.raises(ValueError, match="--priority"):
        parse_priority(text)
