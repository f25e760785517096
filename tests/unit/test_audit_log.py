"""The audit log in both key stores (SQLite's audit table, a real Redis's stream): the `keys` and `teams` commands
write each change (who: cli and the OS user; the fields changed, never the key), a failed command writes nothing,
and the log lists newest first, 50 a page, by a cursor a store refuses when it did not give it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from argoproxy.teamkeys import cli as keys_cli, teams_cli
from argoproxy.teamkeys.audit import entry
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.key_store_places import store_of, store_place


@pytest.fixture(params=["sqlite", "redis"])
def where(request, tmp_path):
    return store_place(request, tmp_path)


def test_the_commands_changes_are_written_without_the_key(where, capsys):
    assert keys_cli.main(["create", "alice", "--rpm", "10", "--budget-usd", "5/day"], lambda flags: where) == 0
    key = capsys.readouterr().out.strip()
    assert teams_cli.main(["create", "red", "--tools", "git__*"], lambda flags: where) == 0
    assert keys_cli.main(["update", "alice", "--team", "red", "--rpm", "0"], lambda flags: where) == 0
    assert keys_cli.main(["update", "nobody", "--rpm", "1"], lambda flags: where) == 2  # refused: not written
    assert keys_cli.main(["list"], lambda flags: where) == 0  # a read: not written
    assert keys_cli.main(["revoke", "alice"], lambda flags: where) == 0
    assert teams_cli.main(["delete", "red"], lambda flags: where) == 0
    log = store_of(where).audit()
    assert [(e.action, e.target) for e in log] == [("teams.delete", "red"), ("keys.revoke", "alice"),
                                                   ("keys.update", "alice"), ("teams.create", "red"),
                                                   ("keys.create", "alice")]
    assert all(e.who.startswith("cli:") and e.agent.startswith("cot-proxy ") for e in log)
    assert log[4].fields == {"rpm": "10", "budget_usd": "$5.00/day"} and log[2].fields == {"rpm": "none", "team": "red"}
    assert log[0].fields == {"move_keys_out": "no"} and log[3].fields == {"tools": "git__*"}
    assert key not in json.dumps([e.as_json() for e in log]) and key[12:] not in json.dumps([e.as_json() for e in log])


def test_newest_first_a_page_at_a_time_and_a_foreign_cursor_refused(where):
    store = store_of(where)
    for n in range(120):
        store.add_audit(entry("admin key", "keys.update", f"k{n}", {"rpm": n}, "127.0.0.1", "x" * 500))
    seen, cursor = [], ""
    while True:
        page = store.audit(cursor, 50)
        seen += [e.target for e in page]
        if len(page) < 50:
            break
        cursor = page[-1].cursor
    assert seen == [f"k{n}" for n in range(119, -1, -1)]
    assert len(store.audit()[0].agent) <= 201  # every text is bounded
    for bad in ("x", "-1", "1" * 40, "1-2-3", "../x"):
        with pytest.raises(ValueError):
            store.audit(bad)
