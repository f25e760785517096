"""Who may do what on /admin/v1/ (argoproxy/console/roles.py), in-process, every role against every endpoint: the
admin key, an admin person, a team's lead, a person of that team, a person of another team and a person of none,
each with a real console session (its cookie, CSRF token and Origin). A refused call is its 403 or 404 in the
error shape and changes nothing (keys, teams, people, audit log); what a role may read holds only what it sees."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from argoproxy.config.settings import load_settings
from argoproxy.edge.http_objects import Request
from argoproxy.people.membership import person_of_claims
from argoproxy.signin.sessions import ConsoleSessions, Cookies
from argoproxy.teamkeys.records import KeyRecord, TeamRecord, digest
from argoproxy.serve.proxy import build_proxy
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.fakes.fake_upstream import FakeUpstream

ADMIN = "admin-roles-key"
ISSUER = "https://login.example.com"
HOST = "localhost:5000"
ROLES = ("admin_key", "ada", "lea", "ann", "bob", "dan")  # admin person; red's lead; red; blue; no team
PEOPLE = {"ada": (), "lea": ("red",), "ann": ("red",), "bob": ("blue",), "dan": ()}


class World:
    """A proxy with auth on, its key store, two teams, five people with a session each, and three keys."""

    def __init__(self, tmp_path) -> None:
        self.store = SQLiteKeyStore(tmp_path / "keys.db")
        settings = load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off", "ENABLE_AUTH": "true",
                                              "TARGET_BASE_URL": "http://upstream.test/v1/", "API_KEY_SECRET": ADMIN,
                                              "KEYS_DB": str(self.store.path)})
        self.door = build_proxy(settings, FakeUpstream())
        self.door.auth.sessions = ConsoleSessions(self.store, Cookies(secure=False), 3600, 86400, 90)
        now = time.time()
        self.store.create_team(TeamRecord("red", rpm=100, models=("gpt-*",), groups=("red",), leads=("lea@x.org",),
                                          created=now))
        self.store.create_team(TeamRecord("blue", groups=("blue",), created=now))
        self.people, self.headers = {}, {"admin_key": {"Authorization": f"Bearer {ADMIN}"}}
        for name, groups in PEOPLE.items():
            claims = {"sub": name, "email": f"{name}@x.org", "email_verified": True, "name": name.title(),
                      "groups": list(groups)}
            person = self.store.signed_in(person_of_claims(claims, ISSUER, "groups", now), rule_admin=name == "ada")
            self.people[name] = person
            cookie = self.door.auth.sessions.begin(person, "").split(";")[0]
            self.headers[name] = {"Cookie": cookie, "Origin": f"http://{HOST}",
                                  "X-CSRF-Token": self.door.auth.sessions.of({"Cookie": cookie}).csrf}
        for key, owner, team in (("ann-key", "ann", "red"), ("bob-key", "bob", "blue"), ("svc", "", "")):
            self.store.create(KeyRecord(key, digest("sk-" + key), "sk-" + key[:4], created=now, team=team,
                                        owner=self.people[owner].id if owner else ""))

    def call(self, method, target, body=None, headers=None, role=None):
        sent = {"Host": HOST, "User-Agent": "roles-test", **(self.headers[role] if role else {}), **(headers or {})}
        answer = self.door.handle(Request.of(method, target, body, sent))
        data = answer.get_data()
        is_json = answer.headers.get("Content-Type", "").startswith("application/json")
        return answer.status_code, json.loads(data) if is_json else data.decode()

    def saved(self) -> sqlite3.Connection:
        """The store as it is now, to go back to (restore)."""
        saved = sqlite3.connect(":memory:")
        with sqlite3.connect(self.store.path) as db:
            db.backup(saved)
        return saved

    def restore(self, saved: sqlite3.Connection) -> None:
        with sqlite3.connect(self.store.path) as db:
            saved.backup(db)

    def state(self):
        """Everything a change could touch."""
        return (sorted(map(repr, self.store.records())), sorted(map(repr, self.store.teams())),
                sorted(map(repr, self.store.people())), [e.as_json() for e in self.store.audit()])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One proxy for the module; each call starts from the same store (World.restore)."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("roles")
        patch.chdir(home)
        patch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        made = World(home)
        yield made, made.saved()


OK = {200, 201}
# (method, target, body, {role: status}): every role not named gets `other`.
MATRIX = [
    ("GET", "/admin/v1/me", None, {}, 200),
    ("GET", "/admin/v1/keys", None, {}, 200),
    ("GET", "/admin/v1/keys/bob-key", None, {"admin_key": 200, "ada": 200, "bob": 200}, 404),
    ("GET", "/admin/v1/keys/svc", None, {"admin_key": 200, "ada": 200}, 404),
    ("DELETE", "/admin/v1/keys/bob-key", None, {"admin_key": 200, "ada": 200, "bob": 200}, 404),
    ("DELETE", "/admin/v1/keys/svc", None, {"admin_key": 200, "ada": 200}, 404),
    ("PATCH", "/admin/v1/keys/ann-key", {"rpm": 5}, {"admin_key": 200, "ada": 200, "lea": 200, "ann": 200}, 404),
    ("PATCH", "/admin/v1/keys/ann-key", {"rpm": 500}, {"admin_key": 200, "ada": 200, "bob": 404, "dan": 404}, 400),
    ("PATCH", "/admin/v1/keys/ann-key", {"owner": "bob@x.org"}, {"admin_key": 200, "ada": 200, "bob": 404,
                                                                 "dan": 404}, 403),
    ("PATCH", "/admin/v1/keys/ann-key", {"team": "blue"}, {"admin_key": 200, "ada": 200, "bob": 404,
                                                           "dan": 404}, 403),
    ("PATCH", "/admin/v1/keys/ann-key", {"argo_user": "ann.argo"}, {"admin_key": 200, "ada": 200, "bob": 404,
                                                                    "dan": 404}, 403),  # an admin's: not the owner's
    ("POST", "/admin/v1/keys", {"name": "mine", "argo_user": "x.argo"}, {"admin_key": 201, "ada": 201}, 403),
    ("POST", "/admin/v1/keys", {"name": "mine"}, {"dan": 403}, 201),
    ("POST", "/admin/v1/keys", {"name": "mine", "owner": "bob@x.org"}, {"admin_key": 201, "ada": 201,
                                                                        "bob": 201}, 403),
    ("POST", "/admin/v1/keys", {"name": "mine", "owner": "ann@x.org"}, {"admin_key": 201, "ada": 201, "lea": 201,
                                                                        "ann": 201}, 403),
    ("POST", "/admin/v1/keys", {"name": "mine", "team": "blue"}, {"admin_key": 201, "ada": 201, "bob": 201}, 403),
    ("POST", "/admin/v1/keys", {"name": "mine", "rpm": 101}, {"admin_key": 201, "ada": 201, "bob": 201,
                                                              "dan": 403}, 400),
    ("POST", "/admin/v1/keys", {"name": "mine", "models": ["claude-*"]}, {"admin_key": 201, "ada": 201,
                                                                          "bob": 201, "dan": 403}, 400),
    ("GET", "/admin/v1/teams", None, {}, 200),
    ("GET", "/admin/v1/teams/blue", None, {"admin_key": 200, "ada": 200, "bob": 200}, 404),
    ("POST", "/admin/v1/teams", {"name": "green"}, {"admin_key": 201, "ada": 201}, 403),
    ("PATCH", "/admin/v1/teams/red", {"rpm": 50}, {"admin_key": 200, "ada": 200, "lea": 200}, 403),
    ("PATCH", "/admin/v1/teams/red", {"leads": ["ann@x.org"]}, {"admin_key": 200, "ada": 200}, 403),
    ("DELETE", "/admin/v1/teams/blue?move_keys_out=true", None, {"admin_key": 200, "ada": 200}, 403),
    ("GET", "/admin/v1/people", None, {"admin_key": 200, "ada": 200, "lea": 200}, 403),
    ("GET", "/admin/v1/people/bob@x.org", None, {"admin_key": 200, "ada": 200, "bob": 200}, 404),
    ("POST", "/admin/v1/people/ann@x.org/disable", None, {"admin_key": 200, "ada": 200, "lea": 403,
                                                          "ann": 403}, 404),
    ("PATCH", "/admin/v1/people/ann@x.org", {"admin": True}, {"admin_key": 200, "ada": 200, "lea": 403,
                                                              "ann": 403}, 404),
    ("PATCH", "/admin/v1/people/ann@x.org", {"argo_user": "ann.argo"}, {"admin_key": 200, "ada": 200, "lea": 403,
                                                                        "ann": 403}, 404),
    ("GET", "/admin/v1/audit", None, {"admin_key": 200, "ada": 200}, 403),
    ("GET", "/admin/v1/mcp", None, {"admin_key": 200, "ada": 200}, 403),
    ("GET", "/admin/v1/usage", None, {}, 200),
    ("GET", "/admin/v1/usage?format=csv", None, {}, 200),
    ("GET", "/admin/v1/usage?key=bob-key", None, {"admin_key": 200, "ada": 200, "bob": 200}, 404),
    ("GET", "/admin/v1/usage?person=bob@x.org", None, {"admin_key": 200, "ada": 200, "bob": 200}, 404),
    ("GET", "/admin/v1/usage?team=red", None, {"admin_key": 200, "ada": 200, "lea": 200}, 403),
    ("GET", "/admin/v1/requests", None, {}, 200),
    ("GET", "/admin/v1/requests?key=bob-key", None, {"admin_key": 200, "ada": 200, "bob": 200}, 404),
    ("GET", "/admin/v1/requests?person=ann@x.org", None, {"admin_key": 200, "ada": 200, "lea": 200,
                                                         "ann": 200}, 404),
]


@pytest.mark.parametrize(("method", "target", "body", "allowed", "other"), MATRIX,
                         ids=[f"{m} {t} {b or ''}" for m, t, b, _, _ in MATRIX])
def test_every_role_against_every_endpoint(world, method, target, body, allowed, other):
    """Each role from the same store (a change by one cannot decide another's answer); a refusal changes nothing,
    and says nothing of what the caller does not see."""
    world, saved = world
    for role in ROLES:
        world.restore(saved)
        before = world.state()
        status, answer = world.call(method, target, body, role=role)
        assert status == allowed.get(role, other), (role, answer)
        if status not in OK:
            assert world.state() == before, role
            assert set(answer["error"]) >= {"message", "type", "code"}
            assert "sk-" not in json.dumps(answer), role
        elif method != "GET":
            assert world.store.audit()[0].who == ("admin key" if role == "admin_key" else f"{role}@x.org")


def names(answer, field="name"):
    return sorted(row[field] for row in answer["data"])


@pytest.mark.parametrize(("role", "keys", "teams", "people"), [
    ("admin_key", ["ann-key", "bob-key", "svc"], ["blue", "red"], ["ada", "ann", "bob", "dan", "lea"]),
    ("lea", ["ann-key"], ["red"], ["ann", "lea"]),
    ("ann", ["ann-key"], ["red"], None),
    ("dan", [], [], None),
])
def test_each_role_lists_only_what_it_sees(world, role, keys, teams, people):
    world, saved = world
    world.restore(saved)
    assert names(world.call("GET", "/admin/v1/keys", role=role)[1]) == keys
    assert names(world.call("GET", "/admin/v1/teams", role=role)[1]) == teams
    status, listed = world.call("GET", "/admin/v1/people", role=role)
    assert (sorted(p["email"].split("@")[0] for p in listed["data"]) if status == 200 else None) == people


def test_a_persons_usage_and_csv_are_their_keys_only_and_sessions_sum_alike(world):
    world, saved = world
    world.restore(saved)
    now = time.time()
    for key, tokens in (("ann-key", 10), ("bob-key", 1000)):
        world.store.record_usage(key, "gpt-4o", tokens, tokens * 2, now, None, cost=tokens * 10_000_000)
        world.store.record_session_usage(key, f"s-{key}", "gpt-4o", now, 1, tokens, tokens * 2, tokens * 10_000_000)
    for role, seen in (("ann", ["ann-key"]), ("lea", ["ann-key"]), ("bob", ["bob-key"]),
                       ("admin_key", ["ann-key", "bob-key"])):
        assert names(world.call("GET", "/admin/v1/usage?group=key", role=role)[1], "key") == seen, role
        csv = world.call("GET", "/admin/v1/usage?format=csv", role=role)[1]
        assert sorted(line.split(",")[0] for line in csv.splitlines()[1:]) == seen, role
        sessions = world.call("GET", "/admin/v1/usage?group=session", role=role)[1]["data"]
        assert [s["session"] for s in sessions] == [f"s-{k}" for k in seen], role
    mine = world.call("GET", "/admin/v1/usage?group=model", role="ann")[1]["data"]
    assert mine == [{"model": "gpt-4o", "requests": 1, "input_tokens": 10, "output_tokens": 20, "tokens": 30,
                     "cost_usd": "0.10", "unpriced_requests": 0}]
    people = world.call("GET", "/admin/v1/usage?group=person", role="admin_key")[1]["data"]
    assert [(p["person"], p["tokens"]) for p in people] == [("ann@x.org", 30), ("bob@x.org", 3000)]


def test_a_person_makes_a_key_of_their_own_within_their_team_and_it_is_audited(world):
    world, saved = world
    world.restore(saved)
    status, made = world.call("POST", "/admin/v1/keys", {"name": "ann-2", "rpm": 50, "expires": "2031-01-01",
                                                         "models": ["gpt-4o*"]}, role="ann")
    assert status == 201 and made["record"]["owner"] == world.people["ann"].id and made["record"]["team"] == "red"
    secret = made["key"]
    assert next(r for r in world.store.records() if r.name == "ann-2").is_key(secret)
    entry = world.store.audit()[0]
    assert (entry.who, entry.action, entry.target) == ("ann@x.org", "keys.create", "ann-2")
    status, refused = world.call("POST", "/admin/v1/keys", {"name": "ann-3", "tpm": 10, "rpm": 101}, role="ann")
    assert status == 400 and refused["error"]["param"] == "rpm" and refused["error"]["code"] == "beyond_team_limit"
    assert world.call("DELETE", "/admin/v1/keys/ann-2", role="ann")[1]["state"] == "revoked"
    seen = json.dumps([world.call("GET", f"/admin/v1/{r}", role="ann")[1] for r in ("keys", "me", "usage")])
    assert secret not in seen and secret[12:] not in seen


def test_one_in_two_teams_names_the_team_and_one_in_none_is_told(world):
    world, saved = world
    world.restore(saved)
    world.store.update_team("blue", {"groups": ("blue", "red")})  # ann is in both now
    status, answer = world.call("POST", "/admin/v1/keys", {"name": "ann-2"}, role="ann")
    assert status == 400 and answer["error"]["code"] == "team_required" and "blue, red" in answer["error"]["message"]
    assert world.call("POST", "/admin/v1/keys", {"name": "ann-2", "team": "blue"}, role="ann")[1]["record"][
        "team"] == "blue"
    status, answer = world.call("POST", "/admin/v1/keys", {"name": "dan-1"}, role="dan")
    assert status == 403 and answer["error"]["code"] == "no_team" and "no team" in answer["error"]["message"]


def test_a_disabled_persons_session_is_401_and_a_team_key_403_and_changes_need_the_csrf_token(world):
    world, saved = world
    world.restore(saved)
    headers = dict(world.headers["ann"])
    assert world.call("POST", "/admin/v1/keys", {"name": "x"}, headers={**headers, "X-CSRF-Token": "no"})[0] == 403
    assert world.call("POST", "/admin/v1/keys", {"name": "x"},
                      headers={**headers, "Origin": "https://evil.example"})[0] == 403
    status, answer = world.call("GET", "/admin/v1/keys", headers={"Authorization": "Bearer sk-ann-key"})
    assert status == 403 and answer["error"]["code"] == "admin_key_required"
    assert world.call("POST", "/admin/v1/people/ann@x.org/disable", role="ada")[1]["state"] == "disabled"
    assert world.call("GET", "/admin/v1/me", role="ann")[0] == 401
    assert world.store.audit()[0].who == "ada@x.org" and world.store.audit()[0].action == "people.disable"
    assert [r.name for r in world.store.records() if r.name == "x"] == []


def test_an_admin_sets_a_person_s_and_a_key_s_argo_user_checked_and_audited(world):
    world, saved = world
    world.restore(saved)
    status, ann = world.call("PATCH", "/admin/v1/people/ann@x.org", {"argo_user": "ann.argo"}, role="ada")
    assert status == 200 and ann["argo_user"] == "ann.argo" and world.store.person(ann["id"]).argo_user == "ann.argo"
    assert world.store.audit()[0].action == "people.argo_user"
    assert world.call("PATCH", "/admin/v1/keys/ann-key", {"argo_user": "svc.ann"}, role="ada")[1]["argo_user"] == \
        "svc.ann"
    for target in ("/admin/v1/people/ann@x.org", "/admin/v1/keys/ann-key"):
        for bad in ("ann@x.org", "a b", "cels", 7, None, "x" * 65):
            status, answer = world.call("PATCH", target, {"argo_user": bad}, role="ada")
            assert (status, answer["error"]["param"], answer["error"]["code"]) == (400, "argo_user", "invalid_value")
    status, answer = world.call("PATCH", "/admin/v1/people/ann@x.org", {"email": "x@y"}, role="ada")
    assert status == 400 and answer["error"]["code"] == "unknown_field"
    assert world.call("PATCH", "/admin/v1/people/ann@x.org", {"argo_user": ""}, role="ada")[1]["argo_user"] == ""
    found = world.store.find(digest("sk-ann-key"))
    assert (found.argo_user, found.owner_argo_user) == ("svc.ann", "")


def test_some_keys_sums_are_the_same_on_sqlite_and_redis_and_equal_their_rows(tmp_path):
    """A person's or a lead's keys: SQLite adds up each key's sums, Redis sums the keys' rows in one pass; both equal
    the usage rows (`keys usage`) of those keys, summed, in the store's order."""
    from argoproxy.console.usage_scoped import by_keys, by_person, page_of
    from argoproxy.teamkeys.redis_store import RedisKeyStore
    from tests.redis_server import RedisServer
    server = RedisServer().start()
    try:
        stores = (SQLiteKeyStore(tmp_path / "keys.db"), RedisKeyStore(server.url))
        for store in stores:
            for n in range(40):
                store.record_usage(f"k{n % 5}", f"m{n % 3}", n, 2 * n, 1.8e9 + (n % 4) * 86400, None, cost=n * 1000)
        keys, rows = frozenset({"k1", "k3"}), stores[0].usage_rows("")
        for group in ("day", "model", "key"):
            column = {"day": 2, "model": 1, "key": 0}[group]
            expected: dict = {}
            for row in rows:
                if row[0] in keys:
                    total = expected.setdefault(row[column], [0, 0, 0, 0, 0])
                    for n, count in enumerate(row[3:]):
                        total[n] += count
            got = [page_of(by_keys(store, group, "", keys, None), group, "", 51) for store in stores]
            assert got[0] == got[1] == page_of(expected, group, "", 51), group
        owners = {"k1": "ann@x.org", "k3": "ann@x.org", "k2": "bob@x.org"}
        people = [page_of(by_person(store, "", None, None, owners), "person", "", 51) for store in stores]
        assert people[0] == people[1] and [p[0] for p in people[0]] == ["(service keys)", "ann@x.org", "bob@x.org"]
    finally:
        server.close()


def test_the_mcp_tool_calls_are_an_admins_to_read(world):
    world, saved = world
    world.restore(saved)
    world.store.record_tool_usage("ann-key", "git", "git__log", time.time(), 3, 1, 120, 10, 20, cost=5_000_000)
    status, calls = world.call("GET", "/admin/v1/mcp/calls", role="ada")
    assert status == 200 and [(c["key"], c["server"], c["calls"], c["cost_usd"]) for c in calls["data"]] == [
        ("ann-key", "git", 3, "0.005")]
    assert world.call("GET", "/admin/v1/mcp/calls", role="lea")[0] == 403
    assert set(world.call("GET", "/admin/v1/mcp", role="admin_key")[1]) == {"servers", "keys"}
