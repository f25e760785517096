"""`cot-proxy teams ...` and `keys ... --team`, in-process against a real store (an SQLite file, and a real
redis-server): teams made, listed, changed, used and deleted; a team with keys is not deleted unless its keys are
moved out; a key whose globs and its team's have no model in common is warned of; an SQLite key store made before
teams keeps working and takes them; a key's models are its globs within its team's."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from types import SimpleNamespace

import pytest

from argoproxy.edge.validation import model_allowed
from argoproxy.teamkeys import cli as keys_cli
from argoproxy.teamkeys import teams_cli
from argoproxy.teamkeys.records import TEAM_WINDOWS, KeyRecord, TeamRecord, digest, globs_meet
from argoproxy.teamkeys.store import SQLiteKeyStore


@pytest.fixture(params=["sqlite", "redis"])
def where(request, tmp_path):
    """The settings the command line reads: the store is keys.db, or a real Redis."""
    if request.param == "sqlite":
        yield SimpleNamespace(redis_url="", keys_db=str(tmp_path / "keys.db"))
        return
    from tests.redis_server import RedisServer
    server = RedisServer().start()
    try:
        yield SimpleNamespace(redis_url=server.url, keys_db=str(tmp_path / "unused.db"))
    finally:
        server.close()


def run(where, command: str, *args: str) -> int:
    main = teams_cli.main if command == "teams" else keys_cli.main
    return main(list(args), lambda flags: where)


def store_of(where):
    if where.redis_url:
        from argoproxy.teamkeys.redis_store import RedisKeyStore
        return RedisKeyStore(where.redis_url)
    return SQLiteKeyStore(where.keys_db)


def test_a_team_is_made_listed_changed_and_its_keys_share_it(where, capsys):
    assert run(where, "teams", "create", "lab", "--budget-usd", "200/month", "--tpm", "50000", "--rpm", "60",
               "--budget", "1000000/day", "--max-parallel", "8", "--models", "gpt-4o*,claude-*", "--priority", "3",
               "--expires", "2099-12-31") == 0
    assert run(where, "keys", "create", "alice", "--team", "lab", "--models", "gpt-4o-mini") == 0
    assert run(where, "keys", "create", "bob", "--team", "lab") == 0
    assert run(where, "keys", "create", "carol") == 0
    capsys.readouterr()
    assert run(where, "teams", "list") == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["NAME", "MODELS", "RPM", "TPM", "BUDGET", "BUDGET_USD", "PARALLEL", "PRIORITY",
                                 "TOOL_RPM", "TOOL_PARALLEL", "EXPIRES", "KEYS", "STATE", "GROUPS", "LEADS"]
    assert listed[1].split() == ["lab", "gpt-4o*,claude-*", "60", "50000", "1000000/day", "$200.00/month", "8", "3",
                                 "-", "-", "2099-12-31", "23:59", "UTC", "2", "active", "-", "-"]
    assert run(where, "keys", "list") == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["alice"][-3:] == ["lab", "active", "-"] and rows["carol"][-3:] == ["-", "active", "-"]  # -: no owner

    store = store_of(where)
    alice = next(r for r in store.records() if r.name == "alice")
    assert alice.team == "lab" and alice.team_record is not None and alice.team_record.tpm == 50000
    assert alice.windows is not None and alice.windows.name == TEAM_WINDOWS + "lab"

    assert run(where, "teams", "update", "lab", "--rpm", "0", "--budget-usd", "none", "--priority", "5") == 0
    assert "updated team 'lab'" in capsys.readouterr().err
    team = store.team("lab")
    assert team.rpm == 0 and team.budget_usd is None and team.priority == 5 and team.tpm == 50000
    assert run(where, "keys", "update", "bob", "--team", "none") == 0
    assert next(r for r in store.records() if r.name == "bob").team == ""


def test_a_team_with_keys_is_deleted_only_when_they_are_moved_out(where, capsys):
    assert run(where, "teams", "create", "lab", "--rpm", "10") == 0
    assert run(where, "keys", "create", "alice", "--team", "lab") == 0
    capsys.readouterr()
    assert run(where, "teams", "delete", "lab") == 2
    said = capsys.readouterr().err
    assert "team 'lab' has 1 key(s) (alice)" in said and "--move-keys-out" in said
    assert store_of(where).team("lab") is not None
    assert run(where, "teams", "delete", "lab", "--move-keys-out") == 0
    assert "alice" in capsys.readouterr().err
    store = store_of(where)
    assert store.team("lab") is None and next(r for r in store.records() if r.name == "alice").team == ""
    assert run(where, "teams", "delete", "lab") == 2
    assert "no team named 'lab'" in capsys.readouterr().err


def test_what_names_no_team_or_an_existing_one_is_refused(where, capsys):
    assert run(where, "keys", "create", "alice", "--team", "nope") == 2
    assert "no team named 'nope'" in capsys.readouterr().err
    assert not any(r.name == "alice" for r in store_of(where).records())
    assert run(where, "teams", "create", "lab") == 0
    assert run(where, "teams", "create", "lab") == 2
    assert "a team named 'lab' exists" in capsys.readouterr().err
    assert run(where, "keys", "create", "alice") == 0
    assert run(where, "keys", "update", "alice", "--team", "nope") == 2
    assert run(where, "teams", "create", "bad/name") == 2
    assert "a team name is" in capsys.readouterr().err
    assert run(where, "teams", "update", "lab") == 2
    assert "nothing to change" in capsys.readouterr().err


def test_a_team_cannot_be_named_none(where, capsys):
    """`keys update NAME --team none` takes a key out of its team: a team named so (any case) could never be
    joined that way, and create's own hint would say it could."""
    for name in ("none", "None", "NONE"):
        assert run(where, "teams", "create", name) == 2
        assert "'none' is reserved" in capsys.readouterr().err
    assert not list(store_of(where).teams())


def test_models_that_meet_nowhere_are_warned_of(where, capsys):
    assert run(where, "teams", "create", "lab", "--models", "gpt-4o*") == 0
    assert run(where, "keys", "create", "alice", "--team", "lab", "--models", "llama*") == 0
    assert "key 'alice' can use no model" in capsys.readouterr().err
    assert run(where, "keys", "create", "bob", "--team", "lab", "--models", "*-mini") == 0
    assert "can use no model" not in capsys.readouterr().err
    assert run(where, "keys", "update", "bob", "--models", "claude-*") == 0
    assert "key 'bob' can use no model" in capsys.readouterr().err
    assert run(where, "keys", "update", "alice", "--models", "gpt-4o") == 0
    assert "can use no model" not in capsys.readouterr().err
    assert run(where, "teams", "update", "lab", "--models", "o3*") == 0
    said = capsys.readouterr().err
    assert "key 'alice' can use no model" in said and "key 'bob' can use no model" in said


def test_usage_is_the_teams_own_and_apart_from_the_keys(where, capsys):
    assert run(where, "teams", "create", "lab", "--budget-usd", "5/day", "--budget", "100000/day") == 0
    assert run(where, "keys", "create", "alice", "--team", "lab") == 0
    store = store_of(where)
    alice = next(r for r in store.records() if r.name == "alice")
    team = alice.windows
    now = time.time()
    for owner in (alice, team):
        store.record_usage(owner.name, "gpt-4o", 100, 50, now, owner.budget, 1, 1_500_000_000, 0, owner.budget_usd)
    capsys.readouterr()
    assert run(where, "teams", "usage", "lab", "--csv") == 0
    out = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert [(r["team"], r["model"], r["requests"], r["input_tokens"], r["output_tokens"], r["cost_usd"])
            for r in rows] == [("lab", "gpt-4o", "1", "100", "50", "1.50")]
    assert "$1.50 spent of its budget of $5.00/day" in out.err and "150 tokens used" in out.err
    assert run(where, "keys", "usage", "--csv") == 0
    keys_rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["key"] for r in keys_rows] == ["alice"]  # the team's rows are `teams usage`'s


OLD_SCHEMA = """
CREATE TABLE keys (
    name TEXT PRIMARY KEY, digest TEXT UNIQUE NOT NULL, prefix TEXT NOT NULL, models TEXT NOT NULL,
    rpm INTEGER NOT NULL, tpm INTEGER NOT NULL, budget_tokens INTEGER NOT NULL, budget_period TEXT NOT NULL,
    expires REAL NOT NULL, created REAL NOT NULL, revoked REAL NOT NULL, max_parallel INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0, budget_usd INTEGER NOT NULL DEFAULT 0,
    budget_usd_period TEXT NOT NULL DEFAULT '');
CREATE TABLE windows (
    name TEXT PRIMARY KEY, start INTEGER NOT NULL, req INTEGER NOT NULL, prev_req INTEGER NOT NULL,
    tok INTEGER NOT NULL, prev_tok INTEGER NOT NULL, budget_start REAL NOT NULL, budget_used INTEGER NOT NULL,
    money_start REAL NOT NULL DEFAULT 0, money_used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE usage (
    name TEXT NOT NULL, model TEXT NOT NULL, day TEXT NOT NULL, requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost INTEGER NOT NULL DEFAULT 0,
    unpriced INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (name, model, day));
"""


def test_a_key_store_made_before_teams_keeps_its_keys_and_takes_teams(tmp_path, capsys):
    db = tmp_path / "keys.db"
    with sqlite3.connect(db) as old:
        old.executescript(OLD_SCHEMA)
        old.execute("INSERT INTO keys VALUES ('alice', ?, 'sk-proxy-ali', 'gpt-4o*', 5, 0, 0, '', 0, 1.0, 0, 0, 0, 0, '')",
                    (digest("sk-proxy-alice"),))
    where = SimpleNamespace(redis_url="", keys_db=str(db))
    found = SQLiteKeyStore(db).find(digest("sk-proxy-alice"))
    assert found is not None and found.name == "alice" and found.rpm == 5 and found.team == "" and found.windows is None
    assert run(where, "teams", "create", "lab", "--rpm", "10") == 0
    assert run(where, "keys", "update", "alice", "--team", "lab") == 0
    assert SQLiteKeyStore(db).find(digest("sk-proxy-alice")).team_record.rpm == 10
    for _ in range(2):  # opened again: nothing added twice
        SQLiteKeyStore(db).records()
    columns = [row[1] for row in sqlite3.connect(db).execute("PRAGMA table_info(keys)")]
    assert columns.count("team") == 1


def test_a_keys_models_are_its_globs_within_its_teams():
    team = TeamRecord("lab", ("gpt-4o*", "claude-*"))
    key = KeyRecord("alice", "d", "p", ("*-mini", "o3"), team="lab", team_record=team)
    allowed = key.allowed_models
    assert model_allowed(allowed, "gpt-4o-mini")
    assert not model_allowed(allowed, "gpt-4o")  # the team's, not the key's
    assert not model_allowed(allowed, "o3-mini") and not model_allowed(allowed, "o3")  # the key's, not the team's
    assert KeyRecord("bob", "d", "p", (), team_record=team).allowed_models == ("gpt-4o*", "claude-*")
    assert KeyRecord("carol", "d", "p", ("o3",)).allowed_models == ("o3",)
    assert globs_meet(("gpt-*",), ("*-mini",)) and globs_meet(("a?",), ("a[bc]",)) and globs_meet((), ("x",))
    assert not globs_meet(("llama*",), ("gpt-4o*", "claude-*")) and not globs_meet(("gpt-4o",), ("gpt-4o?",))


def test_a_key_of_an_expired_team_is_refused():
    team = TeamRecord("lab", expires=time.time() - 1)
    assert KeyRecord("alice", "d", "p", team_record=team).refusal(time.time()) == "This API key's team 'lab' has expired."


def test_the_fair_queue_weighs_a_key_by_its_teams_priority():
    """routing/seating.py's weight: the team's priority when it has one, else the key's own, else
    ADMISSION_WEIGHTS'."""
    from argoproxy.routing.seating import Seating
    seating = SimpleNamespace(weights={"alice": 2.0})

    def weight(key: KeyRecord | None) -> float:
        return Seating.weight(seating, SimpleNamespace(plan=SimpleNamespace(team_key=key)), "alice")  # type: ignore[arg-type]
    assert weight(KeyRecord("alice", "d", "p", priority=5, team_record=TeamRecord("lab", priority=8))) == 8.0
    assert weight(KeyRecord("alice", "d", "p", priority=5, team_record=TeamRecord("lab"))) == 5.0
    assert weight(KeyRecord("alice", "d", "p", team_record=TeamRecord("lab"))) == 2.0
    assert weight(None) == 2.0
