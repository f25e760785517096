"""The console's JSON API (/admin/v1/, argoproxy/console/) in-process: who may call it (the admin key; a team key
403, no key 401, a session's change without its CSRF token or from another origin 403), every change parsed as the
`keys` and `teams` commands parse it and written to the audit log without a secret, the key's secret in its
create answer only, keyset pages of 50, and every bad input a 4xx in the one error shape."""

from __future__ import annotations

import json
import time

import pytest

from argoproxy.console.authorize import check_change
from argoproxy.signin.principal import Principal
from argoproxy.edge.http_objects import Request
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore

ADMIN = "admin-console-key"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def console(make, tmp_path):
    """(call(method, target, body, headers) -> (status, body), the key store)."""
    db = tmp_path / "keys.db"
    door, _, _ = make(ENABLE_AUTH="true", API_KEY_SECRET=ADMIN, KEYS_DB=str(db))

    def call(method: str, target: str, body=None, headers=AUTH):
        answer = door.handle(Request.of(method, target, body, {"User-Agent": "console-test", **headers}))
        data = answer.get_data()
        return answer.status_code, json.loads(data) if answer.headers.get("Content-Type", "").startswith(
            "application/json") else data.decode()
    return call, SQLiteKeyStore(db)


def test_a_key_is_made_listed_changed_and_revoked_and_its_secret_is_shown_once(console):
    call, store = console
    assert call("POST", "/admin/v1/teams", {"name": "red", "rpm": 100, "budget_usd": "50/month",
                                            "tools": ["git__*"]})[0] == 201
    status, made = call("POST", "/admin/v1/keys", {"name": "alice", "team": "red", "models": ["gpt-4o*"], "rpm": 10,
                                                   "budget": "1000/day", "expires": "2031-01-01"})
    assert status == 201 and made["key"].startswith("sk-proxy-")
    secret = made["key"]
    record = next(r for r in store.records() if r.name == "alice")
    assert record.is_key(secret) and record.team == "red" and record.rpm == 10 and str(record.budget) == "1000/day"
    status, listed = call("GET", "/admin/v1/keys")
    assert status == 200 and [k["name"] for k in listed["data"]] == ["alice"] and listed["next"] is None
    assert listed["data"][0]["owner"] == "" and listed["data"][0]["state"] == "active"
    status, changed = call("PATCH", "/admin/v1/keys/alice", {"rpm": None, "tpm": 500})
    assert status == 200 and (changed["rpm"], changed["tpm"]) == (0, 500)
    assert call("DELETE", "/admin/v1/keys/alice")[1]["state"] == "revoked"
    assert call("DELETE", "/admin/v1/keys/alice")[0] == 404  # no active key of that name now
    status, audit = call("GET", "/admin/v1/audit")
    assert [(e["action"], e["target"]) for e in audit["data"]] == [
        ("keys.revoke", "alice"), ("keys.update", "alice"), ("keys.create", "alice"), ("teams.create", "red")]
    create = audit["data"][2]
    assert create["who"] == "admin key" and create["agent"] == "console-test"
    assert create["fields"]["budget"] == "1000/day" and create["fields"]["models"] == "gpt-4o*"
    assert audit["data"][1]["fields"] == {"rpm": "none", "tpm": "500"}
    everything = json.dumps([call("GET", "/admin/v1/keys")[1], audit, call("GET", "/admin/v1/keys/alice")[1]])
    assert secret not in everything and secret[12:] not in everything  # the secret: in the create answer only


def test_refusals_no_key_a_team_key_an_unknown_key_and_auth_off(console, make):
    call, store = console
    team_key = "sk-proxy-team-0123456789abcdef"
    store.create(KeyRecord("team", digest(team_key), team_key[:12], created=time.time()))
    status, body = call("GET", "/admin/v1/keys", headers={})
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    status, body = call("POST", "/admin/v1/keys", {"name": "x"}, headers={"Authorization": f"Bearer {team_key}"})
    assert status == 403 and body["error"]["code"] == "admin_key_required"
    assert [r.name for r in store.records()] == ["team"]  # nothing made
    status, body = call("GET", "/admin/v1/audit", headers={"Authorization": "Bearer sk-proxy-nobody"})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert team_key not in json.dumps(body) and "sk-proxy-nobody" not in json.dumps(body)
    door, _, _ = make()  # auth off: there is no admin key to ask for
    answer = door.handle(Request.of("GET", "/admin/v1/keys", headers=AUTH))
    assert answer.status_code == 404 and json.loads(answer.get_data())["error"]["code"] == "admin_api_off"


@pytest.mark.parametrize(("body", "code", "param"), [
    ({"name": "bob", "colour": "red"}, "unknown_field", "colour"),
    ({"name": "bob", "rpm": -1}, "invalid_value", None),
    ({"name": "bob", "rpm": True}, "invalid_value", "rpm"),
    ({"name": "bob", "rpm": "ten"}, "invalid_value", None),
    ({"name": "bob", "models": [1]}, "invalid_value", "models"),
    ({"name": "bob", "budget": "lots"}, "invalid_value", None),
    ({"name": "bob", "expires": "2001-01-01"}, "invalid_value", None),
    ({"name": "bob", "team": "nobody"}, "no_such_team", "team"),
    ({"name": "bad name!"}, "invalid_value", "name"),
    ({"name": "bob", "rpm": "1" * 5000}, "invalid_value", "rpm"),
    ({}, "invalid_value", "name"),
])
def test_bad_fields_are_refused_in_the_error_shape_and_nothing_is_made(console, body, code, param):
    call, store = console
    status, answer = call("POST", "/admin/v1/keys", body)
    assert 400 <= status < 500 and answer["error"]["code"] == code, answer
    assert set(answer["error"]) >= {"message", "type", "code"} and answer["error"]["param"] == param
    assert store.records() == [] and store.audit() == []


@pytest.mark.parametrize(("method", "target", "body", "status", "code"), [
    ("GET", "/admin/v1/keys?colour=red", None, 400, "unknown_parameter"),
    ("GET", "/admin/v1/keys?cursor=a&cursor=b", None, 400, "unknown_parameter"),
    ("GET", "/admin/v1/audit?cursor=../../x", None, 400, "invalid_cursor"),
    ("GET", "/admin/v1/usage?group=colour", None, 400, "invalid_value"),
    ("GET", "/admin/v1/usage?since=yesterday", None, 400, "invalid_value"),
    ("GET", "/admin/v1/nothing", None, 404, "unknown_route"),
    ("PUT", "/admin/v1/keys", None, 405, "method_not_allowed"),
    ("POST", "/admin/v1/audit", {}, 405, "method_not_allowed"),
    ("PATCH", "/admin/v1/keys/nobody", {"rpm": 1}, 404, "active_key_not_found"),
    ("PATCH", "/admin/v1/teams/nobody", {"rpm": 1}, 404, "team_not_found"),
    ("PATCH", "/admin/v1/keys/x", {}, 400, "nothing_to_change"),
    ("POST", "/admin/v1/keys", b"[1]", 400, "invalid_json"),
    ("POST", "/admin/v1/keys", b"{bad", 400, "invalid_json"),
])
def test_bad_requests_get_a_4xx_with_its_code(console, method, target, body, status, code):
    call, _ = console
    got, answer = call(method, target, body)
    assert (got, answer["error"]["code"]) == (status, code), answer


def test_lists_are_keyset_pages_of_50_and_the_audit_log_newest_first(console):
    call, store = console
    for n in range(120):
        store.create(KeyRecord(f"k{n:03d}", digest(f"secret-{n}"), "sk-proxy-xxx", created=time.time()))
    names, cursor, pages = [], "", 0
    while True:
        status, page = call("GET", "/admin/v1/keys" + (f"?cursor={cursor}" if cursor else ""))
        assert status == 200 and len(page["data"]) <= 50
        names += [k["name"] for k in page["data"]]
        pages += 1
        if page["next"] is None:
            break
        cursor = page["next"]
    assert pages == 3 and names == sorted(f"k{n:03d}" for n in range(120))
    for n in range(60):
        call("PATCH", f"/admin/v1/keys/k{n:03d}", {"rpm": n + 1})
    first = call("GET", "/admin/v1/audit")[1]
    second = call("GET", f"/admin/v1/audit?cursor={first['next']}")[1]
    assert [e["fields"]["rpm"] for e in first["data"] + second["data"]] == [str(n) for n in range(60, 0, -1)]
    assert second["next"] is None


def test_teams_are_made_updated_listed_and_deleted(console):
    call, _ = console
    assert call("POST", "/admin/v1/teams", {"name": "blue", "tpm": 1000})[0] == 201
    assert call("POST", "/admin/v1/teams", {"name": "blue"})[1]["error"]["code"] == "team_exists"
    assert call("POST", "/admin/v1/teams", {"name": "none"})[0] == 400
    assert call("POST", "/admin/v1/teams", {"name": "x", "team": "y"})[1]["error"]["code"] == "unknown_field"
    call("POST", "/admin/v1/keys", {"name": "k1", "team": "blue"})
    status, team = call("PATCH", "/admin/v1/teams/blue", {"budget_usd": "20/day", "tools": ["docs__*"]})
    assert status == 200 and team["budget_usd"] == "$20.00/day" and team["tools"] == ["docs__*"] and team["keys"] == 1
    assert call("GET", "/admin/v1/teams")[1]["data"][0]["name"] == "blue"
    assert call("DELETE", "/admin/v1/teams/blue")[1]["error"]["code"] == "team_has_keys"
    assert call("DELETE", "/admin/v1/teams/blue?move_keys_out=true")[1]["keys_moved_out"] == ["k1"]


def test_usage_by_group_and_as_the_command_lines_csv(console):
    call, store = console
    now = time.time()
    for name, model, tokens, cost in (("a", "m1", 10, 1_500_000), ("a", "m2", 20, 0), ("b", "m1", 5, 2_000_000),
                                      ("team/red", "m1", 15, 1_500_000)):
        store.record_usage(name, model, tokens, 1, now, None, cost=cost)
    by_key = call("GET", "/admin/v1/usage?group=key")[1]["data"]
    assert [(r["key"], r["tokens"], r["requests"], r["cost_usd"]) for r in by_key] == [
        ("a", 32, 2, "0.0015"), ("b", 6, 1, "0.002")]
    assert [r["team"] for r in call("GET", "/admin/v1/usage?group=team")[1]["data"]] == ["red"]
    assert call("GET", "/admin/v1/usage?group=model&key=b")[1]["data"][0]["model"] == "m1"
    csv_text = call("GET", "/admin/v1/usage?format=csv")[1]
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    assert csv_text.splitlines() == ["key,model,day,requests,input_tokens,output_tokens,cost_usd,unpriced_requests",
                                     f"a,m1,{day},1,10,1,0.0015,0", f"a,m2,{day},1,20,1,0.00,0", f"b,m1,{day},1,5,1,0.002,0"]


def test_the_api_and_the_command_line_agree(console, tmp_path, capsys):
    """Usage as `keys usage --csv` prints it, row for row; a key the API makes is one the command line lists
    and changes, and each side's changes are in the one audit log."""
    from argoproxy.teamkeys import cli, teams_cli
    call, store = console
    db = str(tmp_path / "keys.db")
    store.record_usage("a", "m1", 7, 3, time.time(), None, cost=123_456)
    assert call("POST", "/admin/v1/keys", {"name": "api-made", "rpm": 5})[0] == 201
    assert cli.main(["--keys-db", db, "update", "api-made", "--tpm", "900"], lambda flags: None) == 0
    assert teams_cli.main(["--keys-db", db, "create", "cli-team"], lambda flags: None) == 0
    capsys.readouterr()
    assert cli.main(["--keys-db", db, "usage", "--csv"], lambda flags: None) == 0
    assert call("GET", "/admin/v1/usage?format=csv")[1] == capsys.readouterr().out
    key = call("GET", "/admin/v1/keys/api-made")[1]
    assert (key["rpm"], key["tpm"]) == (5, 900)
    assert call("GET", "/admin/v1/teams/cli-team")[0] == 200
    audit = call("GET", "/admin/v1/audit")[1]["data"]
    assert [(e["who"].split(":")[0], e["action"]) for e in audit] == [
        ("cli", "teams.create"), ("cli", "keys.update"), ("admin key", "keys.create")]
    assert audit[1]["fields"] == {"tpm": "900"} and audit[1]["agent"] == "cot-proxy keys"


def session(csrf: str = "token-1") -> Principal:
    return Principal("session", None, True, frozenset(), csrf)


@pytest.mark.parametrize(("headers", "code"), [
    ({"Origin": "http://localhost:5000"}, "csrf_token_missing"),
    ({"Origin": "http://localhost:5000", "X-CSRF-Token": "token-2"}, "csrf_token_invalid"),
    ({"X-CSRF-Token": "token-1"}, "origin_not_allowed"),
    ({"Origin": "http://evil.example", "X-CSRF-Token": "token-1"}, "origin_not_allowed"),
    ({"Origin": "null", "X-CSRF-Token": "token-1"}, "origin_not_allowed"),
])
def test_a_sessions_change_needs_its_csrf_token_and_this_sites_origin(headers, code):
    from argoproxy.errors import ProxyError
    request = Request.of("POST", "/admin/v1/keys", {}, {"Host": "localhost:5000", **headers})
    with pytest.raises(ProxyError) as refused:
        check_change(session(), request)
    assert (refused.value.status, refused.value.code) == (403, code)


def test_a_sessions_read_and_the_admin_keys_change_need_no_csrf_token():
    fine = Request.of("POST", "/admin/v1/keys", {}, {"Host": "localhost:5000", "Origin": "http://localhost:5000",
                                                     "X-CSRF-Token": "token-1"})
    check_change(session(), fine)
    check_change(session(), Request.of("GET", "/admin/v1/keys", None, {"Host": "localhost:5000"}))
    check_change(Principal.admin_key(), Request.of("DELETE", "/admin/v1/keys/x", None, {}))


def test_the_api_on_redis_makes_lists_revokes_and_audits(make):
    """The same calls on a Redis store (what replicas share)."""
    from tests.redis_server import RedisServer
    from argoproxy.teamkeys.redis_store import RedisKeyStore
    server = RedisServer().start()
    try:
        door, _, _ = make(ENABLE_AUTH="true", API_KEY_SECRET=ADMIN, REDIS_URL=server.url)

        def call(method: str, target: str, body=None):
            answer = door.handle(Request.of(method, target, body, AUTH))
            return answer.status_code, json.loads(answer.get_data())
        assert call("POST", "/admin/v1/teams", {"name": "red", "rpm": 5})[0] == 201
        status, made = call("POST", "/admin/v1/keys", {"name": "alice", "team": "red", "tpm": 100})
        assert status == 201 and RedisKeyStore(server.url).find(digest(made["key"])).tpm == 100
        assert [k["name"] for k in call("GET", "/admin/v1/keys")[1]["data"]] == ["alice"]
        assert call("DELETE", "/admin/v1/keys/alice")[1]["state"] == "revoked"
        RedisKeyStore(server.url).record_usage("bob", "m1", 3, 4, time.time(), None, cost=10)
        assert call("GET", "/admin/v1/usage?group=key")[1]["data"][0]["tokens"] == 7
        audit = call("GET", "/admin/v1/audit")[1]
        assert [e["action"] for e in audit["data"]] == ["keys.revoke", "keys.create", "teams.create"]
        assert made["key"] not in json.dumps(audit)
    finally:
        server.close()


@pytest.mark.parametrize("group", ["day", "model", "key", "team"])
def test_sqls_sums_are_the_rows_summed_and_paged_by_cursor(tmp_path, group):
    """SQLite sums in SQL; Redis sums the rows it read (usage_totals.summed_rows): the same figures, the same order
    and pages, filters included (a tool window's rows in neither)."""
    from argoproxy.teamkeys.usage_totals import summed_rows
    store = SQLiteKeyStore(tmp_path / "keys.db")
    day = 86400
    for n in range(30):
        name = ("team/t%d" % (n % 3)) if n % 5 == 0 else ("tools/k1" if n == 7 else f"k_{n % 4}")
        store.record_usage(name, f"m{n % 3}", n, 2 * n, 1.8e9 + (n % 6) * day, None, cost=n * 1000, unpriced=n % 2)
    rows = store.usage_rows("")
    for key, model in ((None, None), ("k_1", None), (None, "m2")):
        summed = summed_rows(rows, group, key, model)
        expected = sorted(((v, *t) for v, t in summed.items()), reverse=group == "day")
        assert store.usage_totals(group, "", key, model, "", 100) == expected
        if len(expected) > 2:
            assert store.usage_totals(group, "", key, model, expected[1][0], 100) == expected[2:]


def test_a_store_that_fails_is_a_503_in_the_error_shape(console, monkeypatch):
    import sqlite3
    call, _ = console

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(SQLiteKeyStore, "records", locked)
    status, body = call("GET", "/admin/v1/keys")
    assert (status, body["error"]["code"]) == (503, "key_store_unavailable")


@pytest.mark.parametrize("target", ["/ADMIN/V1/KEYS", "/admin/v1/Keys", "//admin/v1/keys", "/admin/v1/keys/"])
def test_the_apis_fixed_names_match_in_any_case_and_spelling(console, target):
    call, _ = console
    assert call("GET", target)[0] == 200
    assert call("GET", target, headers={})[0] == 401  # and each spelling asks for the admin key
