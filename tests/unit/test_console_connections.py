"""The console's side of each person's MCP credentials and ARGO username (console/connections_api.py,
mcp/connection_states.py), in-process on a proxy with an `auth: per_user` and an `auth: token_exchange` server: a
person sees their own connections (connected, since when, until when; never a token) and disconnects with their
session's CSRF token and Origin; an admin reads and revokes one person's connection, audited; either way its tokens
are revoked at the authorization server (RFC 7009); a lead reads but does not revoke; an admin sets and clears an ARGO username as `--argo-user` does, and a hostile one is refused."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import pytest
import responses

from argoproxy.config.settings import load_settings
from argoproxy.edge.http_objects import Request
from argoproxy.mcp.connections import renewed_tokens
from argoproxy.mcp.credential_vault import Tokens, vault_at
from argoproxy.people.membership import person_of_claims
from argoproxy.serve.proxy import build_proxy
from argoproxy.signin.sessions import ConsoleSessions, Cookies
from argoproxy.teamkeys.credential_store import SQLiteCredentials
from argoproxy.teamkeys.records import KeyRecord, TeamRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.fakes.fake_upstream import FakeUpstream
from tests.polling import poll

ADMIN = "admin-connections-key"
HOST = "localhost:5000"
SERVERS = {"gh": {"url": "http://127.0.0.1:9/mcp", "auth": "per_user"},
           "jira": {"url": "http://127.0.0.1:9/jira", "auth": "token_exchange"}}
ANN_TOKEN = "ann-access-token-never-shown-0123456789"


class World:
    def __init__(self, home) -> None:
        self.store = SQLiteKeyStore(home / "keys.db")
        settings = load_settings({}, environ={
            "HOME": str(home), "FAST_PATH": "off", "ENABLE_AUTH": "true", "TARGET_BASE_URL": "http://upstream.test/v1/",
            "API_KEY_SECRET": ADMIN, "KEYS_DB": str(self.store.path), "MCP_SERVERS": json.dumps(SERVERS),
            "OIDC_ISSUER": "http://127.0.0.1:9", "OIDC_CLIENT_ID": "proxy", "PUBLIC_URL": "https://llm.example.com",
            "CREDENTIALS_KEY_FILE": str(home / "credentials.key")})
        self.door = build_proxy(settings, FakeUpstream())
        self.door.auth.sessions = ConsoleSessions(self.store, Cookies(secure=False), 3600, 86400, 90)
        self.vault, self.held = vault_at(str(home / "credentials.key")), SQLiteCredentials(str(self.store.path))
        self.store.create_team(TeamRecord("red", groups=("red",), leads=("lea@x.org",), created=time.time()))
        self.people, self.headers = {}, {"admin_key": {"Authorization": f"Bearer {ADMIN}"}}
        for name, groups in (("ada", ()), ("lea", ("red",)), ("ann", ("red",))):
            claims = {"sub": name, "email": f"{name}@x.org", "email_verified": True, "name": name, "groups": list(groups)}
            person = self.store.signed_in(person_of_claims(claims, "http://127.0.0.1:9", "groups", time.time()),
                                          rule_admin=name == "ada")
            self.people[name] = person.id
            cookie = self.door.auth.sessions.begin(person, "").split(";")[0]
            self.headers[name] = {"Cookie": cookie, "Origin": f"http://{HOST}",
                                  "X-CSRF-Token": self.door.auth.sessions.of({"Cookie": cookie}).csrf}
        self.store.create(KeyRecord("ann-key", digest("sk-ann-key"), "sk-ann", created=time.time(),
                                    owner=self.people["ann"], team="red"))

    def connect(self, name: str, server: str = "gh", revocation_endpoint: str = "", **more) -> None:
        """A connection as the console's flow leaves one (connect_flow.py: renewed_tokens over its base)."""
        base = Tokens("", client_id="proxy-client", revocation_endpoint=revocation_endpoint)
        self.held.put(self.people[name], server, self.vault.seal(self.people[name], server, renewed_tokens(
            base, {"access_token": ANN_TOKEN, "refresh_token": "ann-refresh", "expires_in": 3600, **more})))

    def call(self, method, target, body=None, role=None, **headers):
        sent = {"Host": HOST, "User-Agent": "connections-test", **(self.headers[role] if role else {}), **headers}
        answer = self.door.handle(Request.of(method, target, body, sent))
        data = answer.get_data()
        return answer.status_code, json.loads(data) if answer.headers.get("Content-Type", "").startswith(
            "application/json") else data.decode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("console_connections"))


def test_a_person_sees_their_connections_and_disconnects_with_their_sessions_token(world):
    status, mine = world.call("GET", "/admin/v1/me/connections", role="ann")
    assert status == 200 and mine["data"] == [
        {"server": "gh", "auth": "per_user", "connected": False, "since": None, "expires": None, "renews": None},
        {"server": "jira", "auth": "token_exchange", "connected": None, "since": None, "expires": None, "renews": None}]
    before = time.time()
    world.connect("ann")
    status, mine = world.call("GET", "/admin/v1/me/connections", role="ann")
    gh = mine["data"][0]
    assert gh["connected"] is True and gh["renews"] is True and before <= gh["since"] <= time.time()
    assert 3590 < gh["expires"] - gh["since"] <= 3600
    assert ANN_TOKEN not in json.dumps(mine) and "ann-refresh" not in json.dumps(mine)
    assert world.call("GET", "/admin/v1/me/connections", role="lea")[1]["data"][0]["connected"] is False  # Ann's only

    refused = {"no token": {"X-CSRF-Token": ""}, "another's token": {"X-CSRF-Token": world.headers["lea"]["X-CSRF-Token"]},
               "another site": {"Origin": "https://evil.example"}, "no origin": {"Origin": ""}}
    for why, headers in refused.items():
        assert world.call("DELETE", "/admin/v1/me/connections/gh", role="ann", **headers)[0] == 403, why
    assert world.held.servers(world.people["ann"]) == ["gh"]
    for name in ("jira", "nope", "gh/x", "GH", "gh."):  # nothing to disconnect there: not found
        assert world.call("DELETE", f"/admin/v1/me/connections/{name}", role="ann")[0] == 404, name
    assert world.call("DELETE", "/admin/v1/me/connections/%2e%2e/gh", role="ann")[0] == 400  # the door's own refusal
    assert world.call("DELETE", "/admin/v1/me/connections/gh", role="admin_key")[0] == 404  # the admin key: no person
    assert world.call("POST", "/admin/v1/me/connections", {}, role="ann")[0] == 405
    status, done = world.call("DELETE", "/admin/v1/me/connections/gh", role="ann")
    assert (status, done) == (200, {"server": "gh", "disconnected": True})
    assert world.held.servers(world.people["ann"]) == []
    assert (world.store.audit()[0].action, world.store.audit()[0].who) == ("connections.disconnect", "ann@x.org")


def test_an_admin_reads_and_revokes_one_connection_a_lead_reads_only(world):
    world.connect("ann")
    world.connect("ann", "old-server")  # a server since taken out of config: still the person's, still revocable
    status, held = world.call("GET", "/admin/v1/people/ann@x.org/connections", role="lea")
    assert status == 200 and [(c["server"], c["connected"]) for c in held["data"]] == [("gh", True),
                                                                                        ("old-server", True)]
    assert ANN_TOKEN not in json.dumps(held)
    assert world.call("DELETE", "/admin/v1/people/ann@x.org/connections/gh", role="lea")[0] == 403
    assert world.call("DELETE", "/admin/v1/people/ann@x.org/connections/gh", role="ann")[0] in (403, 404)
    assert world.call("DELETE", "/admin/v1/people/ann@x.org/connections/jira", role="ada")[0] == 404
    status, done = world.call("DELETE", "/admin/v1/people/ann@x.org/connections/gh", role="ada")
    assert (status, done) == (200, {"revoked": 1})
    assert world.held.servers(world.people["ann"]) == ["old-server"]
    entry = world.store.audit()[0]
    assert (entry.action, entry.who, entry.fields) == ("people.connections.revoke", "ada@x.org",
                                                       {"revoked": "1", "server": "gh"})
    assert world.call("DELETE", "/admin/v1/people/ann@x.org/connections", role="admin_key")[1] == {"revoked": 1}
    assert world.held.servers(world.people["ann"]) == []


def test_a_disconnect_and_an_admins_revocation_revoke_the_tokens_at_the_authorization_server(world):
    revoke = "https://as.example.com/revoke"
    with responses.RequestsMock() as mocked:
        mocked.post(revoke, status=200)
        for role, target in (("ann", "/admin/v1/me/connections/gh"), ("ada", "/admin/v1/people/ann@x.org/connections"),
                             ("ada", "/admin/v1/people/ann@x.org/connections/gh")):
            world.connect("ann", revocation_endpoint=revoke)
            before = len(mocked.calls)
            assert world.call("DELETE", target, role=role)[0] == 200, target
            assert poll(lambda: len(mocked.calls) == before + 2), target  # after the answer, on a thread of its own
            sent = [parse_qs(c.request.body) for c in mocked.calls[before:]]
            assert [(b["token"], b["token_type_hint"], b["client_id"]) for b in sent] == [
                (["ann-refresh"], ["refresh_token"], ["proxy-client"]), ([ANN_TOKEN], ["access_token"], ["proxy-client"])]
    assert world.held.servers(world.people["ann"]) == []


def test_a_refresh_keeps_when_the_person_connected():
    first = renewed_tokens(Tokens(""), {"access_token": "a1", "expires_in": 60})
    later = renewed_tokens(first, {"access_token": "a2", "expires_in": 60})
    assert first.connected_at and later.connected_at == first.connected_at and later.access_token == "a2"


@pytest.mark.parametrize("target", ["/admin/v1/people/ann@x.org", "/admin/v1/keys/ann-key"])
def test_an_admin_sets_and_clears_an_argo_user_as_the_command_line_does_and_a_person_sees_theirs(world, target):
    assert world.call("PATCH", target, {"argo_user": "  ann.argo "}, role="ada")[1]["argo_user"] == "ann.argo"
    hostile = ["ann@x.org", "a b", "cels", "CELS", "x" * 65, "ann\nuser", "ann\x00", "änn", "../etc", "-ann", "<b>",
               "ann%20b", "ａｎｎ", "ann\u200b", 7, None, ["ann"], {"n": 1}, "x" * 5000]
    for bad in hostile:
        status, answer = world.call("PATCH", target, {"argo_user": bad}, role="ada")
        assert (status, answer["error"]["param"], answer["error"]["code"]) == (400, "argo_user", "invalid_value"), bad
        assert "x" * 100 not in answer["error"]["message"]
    assert world.call("PATCH", target, {"argo_user": "ann2"}, role="ann")[0] in (403, 404)  # never a person's own
    if target.startswith("/admin/v1/people"):
        assert world.call("GET", "/admin/v1/me", role="ann")[1]["person"]["argo_user"] == "ann.argo"
    assert world.call("PATCH", target, {"argo_user": "None"}, role="ada")[1]["argo_user"] == ""  # as --argo-user none
