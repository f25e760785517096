"""Agent sessions (edge/agent_sessions.py, teamkeys/session_usage.py), in-process against the real stores (an SQLite
file and a real redis-server): the session id read once from the first of its headers, bounded and sanitized
(hostile values: very long, control characters, CRLF, unicode); a call's usage in its session's rows for its key and
its team; `keys usage --sessions` and `teams usage NAME --sessions` equal to the rows' sums, `keys usage --csv`
unchanged by them; a client naming a new session per request grows the rows by at most SESSIONS_PER_KEY_DAY; a
key store made before sessions takes the table."""

from __future__ import annotations

import csv
import io
import sqlite3
from types import SimpleNamespace

import pytest

from argoproxy.edge.agent_sessions import MAX_SESSION, session_id, session_in
from argoproxy.edge.http_objects import Request, session_named as session_of
from argoproxy.teamkeys import cli as keys_cli
from argoproxy.teamkeys import teams_cli
from argoproxy.teamkeys import session_usage
from argoproxy.teamkeys.records import TEAM_WINDOWS, KeyRecord, TeamRecord
from argoproxy.teamkeys.service import TeamKeys
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.key_store_places import store_of, store_place

DAY = 86400 * 20000


@pytest.mark.parametrize("sent, kept", [
    ("0f3c9a4e-5b1d-4c2e-9f7a-1b2c3d4e5f60", "0f3c9a4e-5b1d-4c2e-9f7a-1b2c3d4e5f60"),
    ("plain", "plain"),
    ("a" * 5000, "a" * MAX_SESSION),
    ("evil\r\nX-Injected: 1", "evil__X-Injected:_1"),
    ("tab\there\x00\x7f", "tab_here__"),
    ("sessión-東京", "sessi_n-__"),
    ("<script>alert(1)</script>", "_script_alert_1__/script_"),
    ("=HYPERLINK(1)", "_HYPERLINK_1_"), ("-A1", "_A1"), ("@SUM+1", "_SUM_1"), ("a-b", "a-b"),
    ("", ""),
])
def test_a_session_id_is_bounded_and_sanitized(sent, kept):
    assert session_id(sent) == kept
    assert len(session_id(sent)) <= MAX_SESSION


def test_the_first_session_header_wins_and_every_reader_agrees():
    environ = {"HTTP_X_SESSION_ID": "generic", "HTTP_X_CLAUDE_CODE_SESSION_ID": "claude", "HTTP_SESSION_ID": "codex"}
    assert session_of(environ) == "claude"
    assert session_of({"HTTP_X_SESSION_ID": "generic", "HTTP_SESSION_ID": "codex"}) == "generic"
    assert session_of({"HTTP_SESSION_ID": "codex"}) == "codex"
    assert session_of({}) == ""
    assert session_in({"x-claude-code-session-id": "c", "X-Session-Id": "g"}) == "c"
    assert Request.of("POST", "/v1/chat/completions", {}, {"X-Session-Id": "s\r\n1"}).session == "s__1"
    wsgi = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(), "HTTP_X_SESSION_ID": "x" * 300}
    assert Request.from_environ(wsgi, "/v1/chat/completions").session == "x" * MAX_SESSION


def called(record: KeyRecord, session: str, tokens: tuple[int, int] = (10, 5), nanos: int = 0):
    start = SimpleNamespace(team_key=record, kind="chat", model="gpt-4o", key_lease=None, session=session)
    cost = SimpleNamespace(nanos=nanos, priced=True) if nanos else None
    return start, SimpleNamespace(used=SimpleNamespace(input=tokens[0], output=tokens[1]), cost=cost)


def keys_on(store) -> tuple[TeamKeys, dict[str, KeyRecord]]:
    store.create_team(TeamRecord("ops"))
    store.create(KeyRecord("bot", "d1", "p1", team="ops"))
    store.create(KeyRecord("alone", "d2", "p2"))
    keys = TeamKeys(store, clock=lambda: DAY + 60)
    keys._start_flusher = lambda: None  # flushed by the test
    return keys, {r.name: r for r in store.records()}


@pytest.fixture(params=["sqlite", "redis"])
def where(request, tmp_path):
    return store_place(request, tmp_path)


def cli_rows(capsys, main, *args: str, where) -> list[list[str]]:
    capsys.readouterr()
    assert main(list(args), lambda flags: where) == 0
    return list(csv.reader(io.StringIO(capsys.readouterr().out)))


def test_usage_by_session_equals_the_rows_sums_and_leaves_usage_as_it_was(where, capsys):
    store = store_of(where)
    keys, records = keys_on(store)
    calls = [("bot", "s-1", (10, 5), 1_000_000), ("bot", "s-1", (20, 1), 2_500_000), ("bot", "s-2", (7, 7), 0),
             ("alone", "s-1", (1, 2), 3_000), ("alone", "", (100, 100), 0)]
    for name, session, tokens, nanos in calls:
        keys.observe(*called(records[name], session, tokens, nanos))
    keys.flush()
    rows = store.session_usage()
    assert {(r[0], r[1]) for r in rows} == {("bot", "s-1"), ("bot", "s-2"), ("alone", "s-1"),
                                           (TEAM_WINDOWS + "ops", "s-1"), (TEAM_WINDOWS + "ops", "s-2")}
    listed = cli_rows(capsys, keys_cli.main, "usage", "--sessions", "--csv", where=where)
    assert listed == [["key", "session", "requests", "input_tokens", "output_tokens", "cost_usd"],
                      ["alone", "s-1", "1", "1", "2", "0.000003"],
                      ["bot", "s-1", "2", "30", "6", "0.0035"],
                      ["bot", "s-2", "1", "7", "7", "0.00"]]
    for name, session, requests, prompt, completion, _ in listed[1:]:  # each the sum of its calls
        mine = [c for c in calls if c[0] == name and c[1] == session]
        assert (int(requests), int(prompt), int(completion)) == (len(mine), sum(c[2][0] for c in mine),
                                                                 sum(c[2][1] for c in mine))
    team = cli_rows(capsys, teams_cli.main, "usage", "ops", "--sessions", "--csv", where=where)
    assert team == [["team", "session", "requests", "input_tokens", "output_tokens", "cost_usd"],
                    ["ops", "s-1", "2", "30", "6", "0.0035"], ["ops", "s-2", "1", "7", "7", "0.00"]]
    totals = cli_rows(capsys, keys_cli.main, "usage", "--csv", where=where)
    assert [(r[0], r[3], r[4], r[5]) for r in totals[1:]] == [("alone", "2", "101", "102"), ("bot", "3", "37", "13")]


def test_a_new_session_per_request_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(session_usage, "SESSIONS_PER_KEY_DAY", 3)
    store = SQLiteKeyStore(tmp_path / "keys.db")
    keys, records = keys_on(store)
    for n in range(10):
        keys.observe(*called(records["alone"], f"s{n}"))
    keys.observe(*called(records["alone"], "s1"))  # one already counted stays its own
    keys.flush()
    sessions = {r[1]: r[4] for r in store.session_usage()}
    assert sessions == {"s0": 1, "s1": 2, "s2": 1, session_usage.OTHER_SESSIONS: 7}


def test_a_refused_session_row_is_written_at_the_next_flush(tmp_path):
    class Refusing(SQLiteKeyStore):
        refuse = 1

        def record_session_usage(self, *args):
            if self.refuse:
                self.refuse -= 1
                raise sqlite3.OperationalError("database is locked")
            return super().record_session_usage(*args)

    store = Refusing(tmp_path / "keys.db")
    keys, records = keys_on(store)
    keys.observe(*called(records["alone"], "s"))
    keys.flush()
    assert store.session_usage() == []
    keys.flush()
    assert [r[4] for r in store.session_usage()] == [1]


def test_a_key_store_made_before_sessions_takes_the_table(tmp_path):
    path = tmp_path / "keys.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE usage (name TEXT NOT NULL, model TEXT NOT NULL, day TEXT NOT NULL, requests "
                      "INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, PRIMARY KEY "
                      "(name, model, day)); INSERT INTO usage VALUES ('old', 'gpt-4o', '2024-01-01', 3, 30, 3);")
    old.close()
    store = SQLiteKeyStore(path)
    store.record_session_usage("old", "s", "gpt-4o", DAY, 1, 2, 3, 4)
    assert store.session_usage() == [("old", "s", "gpt-4o", "2024-10-04", 1, 2, 3, 4)]
    assert store.usage() == [("old", "gpt-4o", "2024-01-01", 3, 30, 3, 0, 0)]


def test_a_team_made_again_starts_without_the_old_teams_sessions(where):
    store = store_of(where)
    keys, records = keys_on(store)
    keys.observe(*called(records["bot"], "old-session"))
    keys.flush()
    assert {r[0] for r in store.session_usage()} == {"bot", TEAM_WINDOWS + "ops"}
    store.delete_team("ops", move_keys_out=True)
    store.create_team(TeamRecord("ops"))
    assert {r[0] for r in store.session_usage()} == {"bot"}


@pytest.mark.parametrize("given, told", [([], True), (["--resume", "x"], False), (["-c"], False),
                                         (["--session-id", "mine"], False)])
def test_each_agent_is_told_the_runs_session_where_it_takes_one(tmp_path, given, told):
    import json
    import tomllib

    from argoproxy.launch.agents import AGENTS, AgentTarget
    target = AgentTarget("http://127.0.0.1:5000", "k", "m", session="3f1c-run")
    claude = AGENTS["claude"].setup(target, list(given), tmp_path).argv
    assert (claude[1:3] == ["--session-id", "3f1c-run"]) is told and claude.count("--session-id") <= 1
    codex = AGENTS["codex"].setup(target, [], tmp_path).argv
    provider = next(v for v in codex if v.startswith("model_providers."))
    assert tomllib.loads(provider)["model_providers"]["cot_proxy"]["http_headers"] == {"X-Session-Id": "3f1c-run"}
    opencode = AGENTS["opencode"].setup(target, [], tmp_path)
    config = json.loads(next(iter(opencode.files.values())))
    assert config["provider"]["cot_proxy"]["options"]["headers"] == {"X-Session-Id": "3f1c-run"}
    assert "X-Session-Id" not in str(AGENTS["codex"].setup(AgentTarget("u", "k", "m"), [], tmp_path).argv)


def test_a_runs_cost_is_its_sessions_else_its_keys_rows(tmp_path):
    from argoproxy.launch.run_session import run_cost
    store = SQLiteKeyStore(tmp_path / "keys.db")
    store.record_session_usage("run-claude-1", "sess", "m", DAY, 2, 10, 5, 1_500_000_000)
    store.record_usage("run-aider-2", "m", 7, 3, DAY, None, 1, 20_000_000)
    assert run_cost(store, "sess", "run-claude-1", DAY) == \
        "this run: 2 requests, 15 tokens (10 in, 5 out), $1.50 (session sess)"
    assert run_cost(store, "no-rows", "run-aider-2", DAY) == \
        "this run: 1 request, 10 tokens (7 in, 3 out), $0.02 (session no-rows)"
    assert run_cost(store, "no-rows", None, DAY) is None
