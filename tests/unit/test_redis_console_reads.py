"""What the console reads of Redis. The usage rows by day with their roll-ups (teamkeys/redis_usage_totals.py): the
console's sums equal SQLite's and the rows summed for every grouping, filter and page; a write sent again counts once,
roll-ups included; rows in the layout before are moved once however many processes read them; a team made again
starts without its rows. The key records (redis_records.py): read once while no record changes, again after a
change made by another process."""

from __future__ import annotations

import threading

import pytest

from argoproxy.teamkeys.redis_records import PREFIX, SEP
from argoproxy.teamkeys.redis_store import RedisKeyStore
from argoproxy.teamkeys.redis_usage_totals import OLD
from argoproxy.teamkeys.store import SQLiteKeyStore, usage_day
from argoproxy.teamkeys.usage_totals import summed_rows
from tests.redis_server import RedisServer

DAY = 86400
T0 = 1.8e9


@pytest.fixture(scope="module")
def server():
    redis_server = RedisServer().start()
    yield redis_server
    redis_server.close()


@pytest.fixture
def store(server):
    redis = RedisKeyStore(server.url)
    redis.redis.flushdb()
    return redis


def written(n: int) -> tuple[str, str, int, int, float, int, int]:
    """The n-th test write: keys, teams' rows and a tool window's, over six days and three models."""
    name = ("team/t%d" % (n % 3)) if n % 5 == 0 else ("tools/k1" if n == 7 else f"k_{n % 4}")
    return name, f"m{n % 3}", n, 2 * n, T0 + (n % 6) * DAY + n, n * 1_000_000_007, n % 2


def fill(*stores) -> None:
    for n in range(60):
        name, model, inputs, outputs, when, cost, unpriced = written(n)
        for s in stores:
            s.record_usage(name, model, inputs, outputs, when, None, cost=cost, unpriced=unpriced,
                           **({"op": ("writer", n)} if n % 2 and isinstance(s, RedisKeyStore) else {}))


@pytest.mark.parametrize("group", ["day", "model", "key", "team"])
def test_the_sums_equal_sqlites_and_the_rows_summed_for_each_filter_and_page(store, tmp_path, group):
    sqlite = SQLiteKeyStore(tmp_path / "keys.db")
    fill(store, sqlite)
    rows = store.usage_rows("")
    assert rows == sqlite.usage_rows("") and store.usage("") == rows
    since = usage_day(T0 + 2 * DAY)
    for key, model, first in ((None, None, ""), ("k_1", None, ""), (None, "m2", ""), ("k_2", "m1", ""),
                              (None, None, since), ("team/t1", None, ""), ("k_9", None, "")):
        summed = summed_rows([r for r in rows if r[2] >= first], group, key, model)
        expected = sorted(((v, *t) for v, t in summed.items()), reverse=group == "day")
        assert store.usage_totals(group, first, key, model, "", 100) == expected, (key, model, first)
        assert sqlite.usage_totals(group, first, key, model, "", 100) == expected
        for page in (1, 2):
            assert store.usage_totals(group, first, key, model, "", page) == expected[:page]
        if len(expected) > 2:
            assert store.usage_totals(group, first, key, model, expected[1][0], 100) == expected[2:]
    assert store.usage_rows(since) == [r for r in rows if r[2] >= since]


def test_a_write_sent_again_is_counted_once_roll_ups_included(store):
    for _ in range(3):
        store.record_usage("k_1", "m1", 5, 7, T0, None, cost=11, op=("writer-a", 1))
    assert store.usage_rows("") == [("k_1", "m1", usage_day(T0), 1, 5, 7, 11, 0)]
    for group in ("day", "model", "key"):
        assert [t[1:] for t in store.usage_totals(group)] == [(1, 5, 7, 11, 0)]


def test_rows_of_the_layout_before_are_moved_once_by_processes_reading_at_once(store, tmp_path):
    sqlite = SQLiteKeyStore(tmp_path / "keys.db")
    fill(sqlite)
    old: dict[str, int] = {}
    for name, model, day, *counts in sqlite.usage_rows(""):
        for what, count in zip(("requests", "input", "output", "cost", "unpriced"), counts):
            if what in ("requests", "input", "output") or count:
                old[SEP.join((day, name, model, what))] = count
    store.redis.hset(OLD, mapping=old)
    readers = [RedisKeyStore(store.url) for _ in range(4)]
    threads = [threading.Thread(target=r.move_old_rows) for r in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not store.redis.exists(OLD)
    assert store.usage_rows("") == sqlite.usage_rows("")
    for group in ("day", "model", "key", "team"):
        assert store.usage_totals(group, "", None, None, "", 100) == sqlite.usage_totals(group, "", None, None, "", 100)


def test_old_rows_left_by_a_replica_not_yet_upgraded_are_read_at_the_next_read(store):
    store.record_usage("k_1", "m1", 1, 1, T0, None)
    day = usage_day(T0)
    store.redis.hset(OLD, mapping={SEP.join((day, "k_1", "m1", w)): 2 for w in ("requests", "input", "output")})
    assert store.usage_totals("key") == [("k_1", 3, 3, 3, 0, 0)]


def test_a_team_made_again_starts_without_its_rows(store):
    from argoproxy.teamkeys.records import TeamRecord
    store.create_team(TeamRecord("red"))
    store.record_usage("team/red", "m1", 3, 4, T0, None, cost=9)
    store.record_usage("k_1", "m1", 1, 1, T0, None)
    assert [t[0] for t in store.usage_totals("team")] == ["red"]
    store.delete_team("red")
    store.create_team(TeamRecord("red"))
    assert store.usage_totals("team") == []
    assert [r[0] for r in store.usage_rows("")] == ["k_1"]
    assert store.usage_totals("key") == [("k_1", 1, 1, 1, 0, 0)]


def test_a_days_rows_are_read_in_bounded_steps_not_one_hgetall(store, monkeypatch):
    """Each round trip reads at most about SCAN_COUNT fields (one HGETALL of a day's 100,000 rows would outlive the
    round trip's deadline, as the one hash of every row did)."""
    day = usage_day(T0)
    pipe = store.redis.pipeline(transaction=False)
    for n in range(3000):
        pipe.hset(PREFIX + "usage:d:" + day, mapping={f"k_{n}{SEP}m{SEP}{w}": 1 for w in ("requests", "input")})
    pipe.zadd(PREFIX + "usage:days", {day: int(T0 // DAY)})
    pipe.execute()
    calls: list[str] = []
    real = store.redis.execute_command

    def watched(*args, **kwargs):
        calls.append(str(args[0]).upper())
        return real(*args, **kwargs)
    monkeypatch.setattr(store.redis, "execute_command", watched)
    assert len(store.usage_rows("")) == 3000
    assert "HGETALL" not in calls and calls.count("HSCAN") >= 3


def test_records_are_read_once_while_none_changes_and_again_after_a_change_elsewhere(store, monkeypatch):
    from argoproxy.teamkeys.records import KeyRecord, TeamRecord, digest
    other = RedisKeyStore(store.url)  # another process's store (the CLI's, another replica's)
    other.create_team(TeamRecord("red"))
    for n in range(3):
        other.create(KeyRecord(f"k{n}", digest(f"secret-{n}"), "sk-", team="red"))
    reads: list[int] = []
    real = store._read_records
    monkeypatch.setattr(store, "_read_records", lambda: reads.append(1) or real())
    assert [r.name for r in store.records()] == ["k0", "k1", "k2"]
    for _ in range(5):
        assert len(store.records()) == 3
    assert len(reads) == 1
    changes = [lambda: other.revoke("k1"), lambda: other.update("k2", {"rpm": 7}),
               lambda: other.create(KeyRecord("k3", digest("secret-3"), "sk-")),
               lambda: other.update_team("red", {"rpm": 9})]
    for change in changes:
        change()
        listed = {r.name: r for r in store.records()}
    assert len(reads) == 1 + len(changes)
    assert listed["k1"].revoked and listed["k2"].rpm == 7 and "k3" in listed and listed["k0"].team_record.rpm == 9


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_consoles_usage_equals_keys_usage_csv_to_the_token_and_the_cent(kind, server, make, tmp_path, capsys):
    """Each grouping of /admin/v1/usage (JSON, as the console shows it) equals the command line's CSV summed."""
    import csv
    import io
    import json
    from decimal import Decimal
    from argoproxy.edge.http_objects import Request
    from argoproxy.teamkeys import cli
    admin = "admin-key-of-the-usage-test"
    where = {"KEYS_DB": str(tmp_path / "keys.db")} if kind == "sqlite" else {"REDIS_URL": server.url}
    from types import SimpleNamespace
    flags = ["--keys-db", where["KEYS_DB"]] if kind == "sqlite" else []
    settings = SimpleNamespace(redis_url=server.url if kind == "redis" else "", keys_db="", enable_auth=True)
    store = SQLiteKeyStore(tmp_path / "keys.db") if kind == "sqlite" else RedisKeyStore(server.url)
    if kind == "redis":
        store.redis.flushdb()
    fill(store)
    door, _, _ = make(ENABLE_AUTH="true", API_KEY_SECRET=admin, **where)
    capsys.readouterr()
    assert cli.main([*flags, "usage", "--csv"], lambda flags: settings) == 0
    printed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    for group, column in (("key", "key"), ("model", "model"), ("day", "day")):
        expected: dict[str, list] = {}
        for row in printed:
            sums = expected.setdefault(row[column], [0, 0, 0, Decimal(0)])
            for n, field in enumerate(("requests", "input_tokens", "output_tokens")):
                sums[n] += int(row[field])
            sums[3] += Decimal(row["cost_usd"])
        answer = door.handle(Request.of("GET", f"/admin/v1/usage?group={group}",
                                        headers={"Authorization": f"Bearer {admin}"}))
        shown = {r[group]: [r["requests"], r["input_tokens"], r["output_tokens"], Decimal(r["cost_usd"])]
                 for r in json.loads(answer.get_data())["data"]}
        assert shown == expected and expected, group


def test_sqlites_day_sums_are_made_from_the_rows_of_a_store_made_before_them(tmp_path):
    """A store made by an earlier release (no usage_day_sums) gets them from its rows when opened; rows written,
    added to and deleted after are in them at once."""
    import sqlite3
    path = tmp_path / "keys.db"
    fill(SQLiteKeyStore(path))
    with sqlite3.connect(path) as db:
        for statement in ("DROP TRIGGER usage_day_sums_insert", "DROP TRIGGER usage_day_sums_update_old",
                          "DROP TRIGGER usage_day_sums_update_new", "DROP TRIGGER usage_day_sums_delete",
                          "DROP TABLE usage_day_sums"):
            db.execute(statement)
    store = SQLiteKeyStore(path)
    store.record_usage("k_1", "m9", 4, 5, T0, None, cost=6)
    store.record_usage("k_1", "m9", 4, 5, T0, None, cost=6)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM usage WHERE name = 'k_2'")
    rows = store.usage_rows("")
    for group in ("day", "model"):
        summed = summed_rows(rows, group, None, None)
        assert store.usage_totals(group, "", None, None, "", 100) == \
            sorted(((v, *t) for v, t in summed.items()), reverse=group == "day")


def test_session_rows_are_kept_a_day_a_hash_read_in_bounded_steps_and_old_rows_moved_once(store, tmp_path, monkeypatch):
    """Usage by agent session (session_usage.py) as SQLite keeps it; a day's rows read by HSCAN; rows of the one-hash
    layout moved once by processes reading at once; a team made again starts without its session rows."""
    from argoproxy.teamkeys.records import TeamRecord
    from argoproxy.teamkeys.session_usage import KEY, COUNTED
    sqlite = SQLiteKeyStore(tmp_path / "keys.db")
    for n in range(40):
        name = "team/red" if n % 5 == 0 else f"k_{n % 3}"
        for s in (store, sqlite):
            s.record_session_usage(name, f"s{n % 4}", f"m{n % 2}", T0 + (n % 3) * DAY, 1, n, 2 * n, 1000 * n)
    rows = sqlite.session_usage("")
    assert store.session_usage("") == rows and store.session_usage(usage_day(T0 + DAY)) == sqlite.session_usage(
        usage_day(T0 + DAY))
    store.redis.flushdb()
    old = {SEP.join((day, name, session, model, what)): count for name, session, model, day, *counts in rows
           for what, count in zip(COUNTED, counts) if count}
    store.redis.hset(KEY, mapping=old)
    readers = [RedisKeyStore(store.url) for _ in range(4)]
    threads = [threading.Thread(target=r.move_old_sessions) for r in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    calls: list[str] = []
    real = store.redis.execute_command
    monkeypatch.setattr(store.redis, "execute_command", lambda *a, **k: calls.append(str(a[0]).upper()) or real(*a, **k))
    assert store.session_usage("") == rows and not store.redis.exists(KEY)
    assert "HGETALL" not in calls and "HSCAN" in calls
    store.create_team(TeamRecord("red"))  # made again: its rows go
    assert store.session_usage("") == [r for r in rows if r[0] != "team/red"]
