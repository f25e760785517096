"""People (argoproxy/people/) and their records in the SQLite key store, in-process: admin by group or by a
verified email only, a person's teams and the teams they lead, a sign-in keeping what an admin set, disabling
that ends sessions and stops the person's keys, a sign-in flow taken once; sign-in's settings refused by halves;
the sign-in routes without OIDC; a console session's principal, and a team key that is none."""

from __future__ import annotations

import json
import time

import pytest

from argoproxy.config.settings import SettingsError, load_settings
from argoproxy.edge.http_objects import Request
from argoproxy.errors import ProxyError
from argoproxy.people import Person, person_id
from argoproxy.people.membership import AdminRule, inactive, person_of_claims, teams_led, teams_of
from argoproxy.signin.pages import SignInPages
from argoproxy.signin.principal import principal_of
from argoproxy.signin.sessions import ConsoleSessions, Cookies
from argoproxy.teamkeys.people_rows import ConsoleSession, SignInFlow
from argoproxy.teamkeys.records import KeyRecord, TeamRecord, digest
from argoproxy.teamkeys.service import TeamKeys
from argoproxy.teamkeys.store import SQLiteKeyStore

ISSUER = "https://login.example.com"
NOW = 1_800_000_000.0


def claims(**more) -> dict:
    return {"sub": "s1", "email": "Ann@Example.com", "email_verified": True, "name": "Ann", "groups": ["eng"], **more}


def test_admin_by_group_or_by_a_verified_email_only():
    rule = AdminRule.of(["admins"], ["ann@example.com"])
    assert rule.admits(person_of_claims(claims(groups=["admins"], email_verified=False), ISSUER, "groups", NOW))
    assert rule.admits(person_of_claims(claims(groups=[]), ISSUER, "groups", NOW))
    assert not rule.admits(person_of_claims(claims(groups=[], email_verified=False), ISSUER, "groups", NOW))
    assert not rule.admits(person_of_claims(claims(groups=[], email_verified="true"), ISSUER, "groups", NOW))


def test_groups_are_read_from_the_claim_named_and_bounded():
    assert person_of_claims(claims(roles="ops"), ISSUER, "roles", NOW).groups == ("ops",)
    assert person_of_claims(claims(groups=[1, None, "a", "a", "b" * 999]), ISSUER, "groups", NOW).groups == (
        "a", "b" * 256)
    assert person_of_claims(claims(groups=[str(i) for i in range(10_000)]), ISSUER, "groups", NOW).groups[-1] == "255"
    assert person_of_claims(claims(), ISSUER, "groups", NOW).id == person_id(ISSUER, "s1") != person_id(ISSUER, "s2")


def test_teams_by_group_else_the_default_and_leads_by_verified_email():
    teams = [TeamRecord("eng", groups=("eng",), leads=("ann@example.com",)), TeamRecord("ops", groups=("ops",)),
             TeamRecord("everyone")]
    ann = person_of_claims(claims(), ISSUER, "groups", NOW)
    assert teams_of(ann, teams, "everyone") == ("eng",)
    assert teams_of(person_of_claims(claims(groups=["eng", "ops"]), ISSUER, "groups", NOW), teams) == ("eng", "ops")
    loner = person_of_claims(claims(groups=[]), ISSUER, "groups", NOW)
    assert teams_of(loner, teams, "everyone") == ("everyone",) and teams_of(loner, teams, "gone") == ()
    assert teams_led(ann, teams) == {"eng"}
    assert teams_led(person_of_claims(claims(email_verified=False), ISSUER, "groups", NOW), teams) == frozenset()


@pytest.fixture
def store(tmp_path) -> SQLiteKeyStore:
    return SQLiteKeyStore(tmp_path / "keys.db")


def test_a_sign_in_keeps_what_an_admin_set_and_the_first_sight(store):
    ann = person_of_claims(claims(), ISSUER, "groups", NOW)
    assert store.signed_in(ann, rule_admin=False).admin is False
    store.set_person_admin(ann.id, True)
    later = person_of_claims(claims(name="Ann B", groups=[]), ISSUER, "groups", NOW + 60)
    again = store.signed_in(later, rule_admin=False)
    assert again.admin and again.name == "Ann B" and again.first_seen == NOW and again.last_seen == NOW + 60
    assert store.person_by_email("ann@EXAMPLE.com") == again and store.people() == [again]
    store.set_person_admin(ann.id, False)
    assert store.signed_in(later, rule_admin=True).admin  # by rule, at this sign-in
    assert store.signed_in(later, rule_admin=False).admin is False  # the rule no longer holds: no admin


def test_disabling_ends_sessions_and_stops_owned_keys(store):
    ann = store.signed_in(person_of_claims(claims(), ISSUER, "groups", NOW), rule_admin=False)
    store.create_session("d1", ConsoleSession(ann.id, "csrf", NOW, NOW))
    store.create(KeyRecord("anns", digest("sk-ann"), "sk-", created=NOW, owner=ann.id))
    assert store.find(digest("sk-ann")).refusal(NOW) is None
    assert store.set_person_disabled(ann.id, True, NOW)
    assert store.console_session("d1") is None
    assert store.find(digest("sk-ann")).refusal(NOW) == "This API key's owner is disabled."
    store.set_person_disabled(ann.id, False, NOW + 5)
    assert store.find(digest("sk-ann")).refusal(NOW) is None and store.person(ann.id).last_seen == NOW + 5
    assert not store.set_person_disabled("p-nobody", True, NOW)


def test_an_owner_not_seen_for_the_inactive_days_stops_their_keys(store):
    ann = store.signed_in(person_of_claims(claims(), ISSUER, "groups", NOW), rule_admin=False)
    store.create(KeyRecord("anns", digest("sk-ann"), "sk-", created=NOW, owner=ann.id))
    keys = TeamKeys(store, clock=lambda: NOW + 91 * 86400)
    assert keys.refusal(store.find(digest("sk-ann"))) is None  # OIDC_INACTIVE_DAYS not set: never
    keys.inactive_days = 90
    assert "not signed in for more than 90 days" in keys.refusal(store.find(digest("sk-ann")))
    assert inactive(ann, NOW + 91 * 86400, 90) and not inactive(ann, NOW + 89 * 86400, 90)


def test_a_sign_in_flow_is_taken_once_and_not_when_old(store):
    store.save_flow("s1", SignInFlow("b", "n", "v", NOW))
    assert store.take_flow("s1", NOW + 1) == SignInFlow("b", "n", "v", NOW)
    assert store.take_flow("s1", NOW + 1) is None
    store.save_flow("s2", SignInFlow("b", "n", "v", NOW))
    assert store.take_flow("s2", NOW + 601) is None


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_sign_ins_under_way_are_bounded_in_count_the_oldest_dropped(kind, request, tmp_path, monkeypatch):
    """GET /ui/auth/login needs no key: a flood of sign-ins begun keeps MOST_FLOWS, not one per request."""
    from argoproxy.teamkeys import people_rows, redis_people
    monkeypatch.setattr(people_rows, "MOST_FLOWS", 5)
    monkeypatch.setattr(redis_people, "MOST_FLOWS", 5)
    if kind == "sqlite":
        flows = SQLiteKeyStore(tmp_path / "keys.db")
        count = lambda: flows._read("SELECT count(*) FROM signin_flows")[0][0]  # noqa: E731
    else:
        from argoproxy.teamkeys.redis_store import RedisKeyStore
        flows = RedisKeyStore(request.getfixturevalue("redis_url"))
        flows.redis.flushdb()
        count = lambda: len(flows.redis.keys(redis_people.PREFIX + "flow:*"))  # noqa: E731
    now = time.time()  # Redis expires them by the clock
    for n in range(8):
        flows.save_flow(f"s{n}", SignInFlow("b", "n", "v", now + n))
    assert count() == 5
    assert flows.take_flow("s2", now + 9) is None and flows.take_flow("s3", now + 9) is not None
    assert flows.take_flow("s7", now + 9) == SignInFlow("b", "n", "v", now + 7) and count() == 3


def test_sessions_end_idle_and_at_their_absolute_lifetime(store):
    clock = [NOW]
    ann = store.signed_in(person_of_claims(claims(), ISSUER, "groups", NOW), rule_admin=False)
    sessions = ConsoleSessions(store, Cookies(secure=True), idle=3600, most=86400, inactive_days=90,
                               clock=lambda: clock[0])
    cookie = sessions.begin(ann, "id.token.here")
    assert cookie.startswith("__Host-cot_console=") and "Secure" in cookie and "HttpOnly" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    headers = {"Cookie": f"__Host-cot_console={value}"}
    for step in range(30):  # used every 50 minutes: alive until a day has passed
        clock[0] = NOW + step * 3000
        assert (sessions.of(headers) is not None) == (step * 3000 <= 86400), step
    fresh = sessions.begin(ann, "")
    clock[0] += 3601
    assert sessions.of({"Cookie": "__Host-cot_console=" + fresh.split(";")[0].split("=", 1)[1]}) is None
    assert sessions.of({"Cookie": f"cot_console={value}"}) is None  # the http name under https: not read


def test_a_principal_is_the_admin_key_or_a_session_never_a_team_key(store, make):
    door, _, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="admin-key", KEYS_DB=str(store.path))
    auth = door.auth
    assert principal_of(Request.of("GET", "/ui/auth/me", headers={"Authorization": "Bearer admin-key"}), auth).admin
    assert principal_of(Request.of("GET", "/ui/auth/me", headers={"Api-Key": "admin-key"}), auth) is None
    store.create(KeyRecord("team", digest("sk-team"), "sk-", created=time.time()))
    assert principal_of(Request.of("GET", "/x", headers={"Authorization": "Bearer sk-team"}), auth) is None
    ann = store.signed_in(person_of_claims(claims(), ISSUER, "groups", time.time()), rule_admin=False)
    store.create_team(TeamRecord("eng", leads=("ann@example.com",)))
    sessions = ConsoleSessions(store, Cookies(secure=False), 3600, 86400, 90)
    value = sessions.begin(ann, "").split(";")[0]
    who = principal_of(Request.of("GET", "/x", headers={"Cookie": value}), auth, sessions)
    assert who.kind == "session" and who.person.email == "Ann@Example.com" and who.leads == {"eng"} and who.csrf
    store.set_person_disabled(ann.id, True, time.time())
    assert principal_of(Request.of("GET", "/x", headers={"Cookie": value}), auth, sessions) is None


def test_sign_in_routes_answer_404_without_oidc_and_need_no_key(make):
    door, _, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="admin-key")
    answer = door.handle(Request.of("GET", "/ui/auth/login"))
    assert answer.status_code == 404 and b"OIDC_ISSUER" in answer.get_data()


BASE = {"TARGET_BASE_URL": "http://127.0.0.1:9/v1", "ENABLE_AUTH": "true", "API_KEY_SECRET": "k" * 20}
WHOLE = {"OIDC_ISSUER": "https://login.example.com", "OIDC_CLIENT_ID": "c", "PUBLIC_URL": "https://llm.example.com"}


@pytest.mark.parametrize("given, named", [
    ({"OIDC_CLIENT_ID": "c"}, "OIDC_ISSUER"),
    ({**WHOLE, "OIDC_ISSUER": "http://login.example.com"}, "OIDC_ISSUER"),
    ({**WHOLE, "OIDC_ISSUER": "https://user:pw@login.example.com"}, "OIDC_ISSUER"),
    ({**WHOLE, "OIDC_CLIENT_ID": ""}, "OIDC_CLIENT_ID"),
    ({**WHOLE, "PUBLIC_URL": ""}, "PUBLIC_URL"),
    ({**WHOLE, "PUBLIC_URL": "llm.example.com"}, "PUBLIC_URL"),
    ({**WHOLE, "PUBLIC_URL": "https://llm.example.com/?x=1"}, "PUBLIC_URL"),
    ({**WHOLE, "ENABLE_AUTH": "false"}, "OIDC_ISSUER"),
    ({**WHOLE, "OIDC_SCOPES": "email profile"}, "OIDC_SCOPES"),
    ({**WHOLE, "MCP_OAUTH_SCOPES": 'mcp "x'}, "MCP_OAUTH_SCOPES"),  # it goes into WWW-Authenticate
    ({**WHOLE, "MCP_OAUTH_SCOPES": "mcp a\\b"}, "MCP_OAUTH_SCOPES"),
    ({**WHOLE, "OIDC_CLIENT_SECRET_FILE": "/nonexistent/secret"}, "OIDC_CLIENT_SECRET_FILE"),
    ({**WHOLE, "CONSOLE_SESSION_MAX": "60d"}, "CONSOLE_SESSION_MAX"),
    ({**WHOLE, "CONSOLE_SESSION_IDLE": "2d", "CONSOLE_SESSION_MAX": "1d"}, "CONSOLE_SESSION_IDLE"),
])
def test_sign_in_settings_by_halves_stop_start_up_naming_the_key(given, named):
    with pytest.raises(SettingsError) as refused:
        load_settings({}, {**BASE, **given})
    assert str(refused.value).startswith(named) and "\n" not in str(refused.value)


def test_whole_sign_in_settings_load_and_public_url_s_host_is_accepted(make):
    settings = load_settings({}, {**BASE, **WHOLE, "OIDC_ISSUER": "http://127.0.0.1:5556/"})
    assert settings.oidc_issuer == "http://127.0.0.1:5556" and settings.oidc_scopes == "openid email profile"
    door, _, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="admin-key", PUBLIC_URL="https://llm.example.com")
    assert door.handle(Request.of("GET", "/", headers={"Host": "llm.example.com"})).status_code == 200
    assert door.handle(Request.of("GET", "/", headers={"Host": "evil.example.com"})).status_code == 403


def test_a_person_is_a_frozen_record():
    with pytest.raises(AttributeError):
        Person("p", "s", ISSUER).admin = True  # type: ignore[misc]


def test_a_disabled_owner_s_key_is_refused_in_each_door_s_shape(store, make):
    ann = store.signed_in(person_of_claims(claims(), ISSUER, "groups", time.time()), rule_admin=False)
    store.create(KeyRecord("anns", digest("sk-ann-key"), "sk-", created=time.time(), owner=ann.id))
    store.set_person_disabled(ann.id, True, time.time())
    door, up, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="admin-key", KEYS_DB=str(store.path))
    body = {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    messages = door.handle(Request.of("POST", "/v1/messages", body, {"x-api-key": "sk-ann-key"}))
    chat = door.handle(Request.of("POST", "/v1/chat/completions", body, {"Authorization": "Bearer sk-ann-key"}))
    assert messages.status_code == chat.status_code == 401 and up.sent == []
    assert json.loads(messages.get_data())["type"] == "error"  # Anthropic's shape
    assert json.loads(chat.get_data())["error"]["message"] == "This API key's owner is disabled."


class NoProvider:
    def document(self) -> dict:
        raise AssertionError("not asked")


def test_a_sign_in_after_the_inactive_days_disables_the_person(store):
    settings = load_settings({}, {**BASE, **WHOLE, "OIDC_INACTIVE_DAYS": "30"})
    sessions = ConsoleSessions(store, Cookies(secure=True), 3600, 86400, 30)
    pages = SignInPages(settings, store, NoProvider(), None, sessions, clock=lambda: NOW)  # type: ignore[arg-type]
    assert pages.signed_in(claims(), NOW).last_seen == NOW
    assert pages.signed_in(claims(), NOW + 29 * 86400).last_seen == NOW + 29 * 86400
    with pytest.raises(ProxyError) as refused:
        pages.signed_in(claims(), NOW + 60 * 86400)
    assert refused.value.status == 403 and refused.value.code == "person_disabled"
    assert store.people()[0].disabled == NOW + 60 * 86400


@pytest.mark.parametrize("args, said", [
    (["--groups", " , "], "--groups"), (["--leads", "not-an-email"], "--leads"),
    (["--leads", "a@b.c,x y@b.c"], "--leads"), (["--groups", "a\x00b"], "--groups"),
])
def test_teams_groups_and_leads_are_checked(args, said, tmp_path, capsys):
    from argoproxy.teamkeys.teams_cli import main
    status = main(["--keys-db", str(tmp_path / "k.db"), "create", "eng", *args], lambda flags: None)
    assert status == 2 and said in capsys.readouterr().err


def test_teams_groups_and_leads_are_kept_and_cleared(store):
    from argoproxy.teamkeys.teams_cli import main
    db = ["--keys-db", str(store.path)]
    assert main([*db, "create", "eng", "--groups", "eng,cn=x,ou=y", "--leads", "Ann@Example.com"], lambda f: None) == 0
    assert store.team("eng").groups == ("eng", "cn=x", "ou=y") and store.team("eng").leads == ("ann@example.com",)
    assert main([*db, "update", "eng", "--groups", "none", "--leads", "none"], lambda f: None) == 0
    assert store.team("eng").groups == () == store.team("eng").leads


def test_keys_owner_is_set_changed_and_listed(store):
    from tests.keys_cli import run_keys
    ann = store.signed_in(person_of_claims(claims(), ISSUER, "groups", NOW), rule_admin=False)
    assert run_keys("create", "k1", "--owner", "ANN@example.com", keys_db=store.path).returncode == 0
    assert next(r for r in store.records() if r.name == "k1").owner == ann.id
    listed = run_keys("list", keys_db=store.path).stdout.splitlines()
    assert listed[0].split()[-1] == "OWNER" and listed[1].split()[-1] == "Ann@Example.com"
    assert run_keys("update", "k1", "--owner", "none", keys_db=store.path).returncode == 0
    assert next(r for r in store.records() if r.name == "k1").owner == ""
    refused = run_keys("update", "k1", "--owner", "not an email", keys_db=store.path)
    assert refused.returncode == 2 and "--owner" in refused.stderr
