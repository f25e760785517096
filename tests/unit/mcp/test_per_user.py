"""Each person's own credentials to a remote MCP server (docs/mcp-credentials.md): the sealed token store, refresh
with rotation, a per_user server's upstream session per person against a remote server (tests/fakes/fake_mcp_http.py)
that checks each bearer token and records whose each call was, and what a person not connected is told."""

import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import responses

from argoproxy.config.mcp_servers import McpServer, McpServers
from argoproxy.mcp.connections import Connections
from argoproxy.teamkeys.credential_store import RedisCredentials, SQLiteCredentials
from argoproxy.mcp.credential_vault import Tokens, Vault, vault_at
from argoproxy.mcp.per_user import PerUser
from argoproxy.mcp.supervisor import Supervisor
from argoproxy.mcp.person_tokens import (BY_ELICITATION, BY_ROUND, CONNECT_STATE, PersonTokens,
                                         URL_ELICITATION_REQUIRED, caller, connect_round, page_by)
from tests.fakes.fake_mcp_http import FakeRemote
from tests.polling import poll

ANN, BOB = "person-ann", "person-bob"
ANN_TOKEN, BOB_TOKEN = "ann-access-token-0123456789abcdef", "bob-access-token-0123456789abcdef"
TOKEN_URL = "https://as.example.com/token"


def call(server, name, args=None, id=1, **kw):
    return server.call({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name,
                                                                                      "arguments": args or {}}},
                       10.0, **kw)


def text(answer):
    return answer["result"]["content"][0]["text"]


# ------------------------------------------------------------ sealed at rest
def test_tokens_are_sealed_bound_to_their_person_and_server_and_the_key_file_is_private(tmp_path):
    vault = vault_at(str(tmp_path / "d" / "credentials.key"))
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "credentials.key").st_mode) == 0o600
    tokens = Tokens(ANN_TOKEN, "ann-refresh", 123.0, TOKEN_URL)
    sealed = vault.seal(ANN, "gh", tokens)
    assert ANN_TOKEN.encode() not in sealed and b"ann-refresh" not in sealed and ANN_TOKEN not in repr(tokens)
    assert vault.open(ANN, "gh", sealed) == tokens
    assert vault.open(BOB, "gh", sealed) is None  # a row copied to another person's place
    assert vault.open(ANN, "jira", sealed) is None  # or another server's
    assert vault.open(ANN, "gh", sealed[:-1] + bytes([sealed[-1] ^ 1])) is None  # changed
    assert Vault(os.urandom(32)).open(ANN, "gh", sealed) is None  # another install's key
    assert vault_at(str(tmp_path / "d" / "credentials.key")).open(ANN, "gh", sealed) == tokens  # the same file: kept


def _stored(store):
    store.put(ANN, "gh", b"\x01sealed-a")
    store.put(ANN, "jira", b"\x01sealed-b")
    store.put(BOB, "gh", b"\x01sealed-c")
    store.put(ANN, "gh", b"\x01sealed-a2")
    assert store.get(ANN, "gh") == b"\x01sealed-a2" and store.get(BOB, "jira") is None
    assert store.servers(ANN) == ["gh", "jira"]
    assert store.delete(ANN, "gh") == 1 and store.get(ANN, "gh") is None
    assert store.delete(ANN) == 1 and store.servers(ANN) == [] and store.servers(BOB) == ["gh"]


def test_the_sqlite_store_keeps_rows_per_person_and_server(tmp_path):
    _stored(SQLiteCredentials(str(tmp_path / "keys.db")))


def test_abandoned_connection_flows_do_not_pile_up(tmp_path, redis_url):
    store = SQLiteCredentials(str(tmp_path / "keys.db"))
    store.put("flow:old", "gh", b"\x01f", ttl=600)
    store._conn().execute("UPDATE mcp_credentials SET updated = updated - 601")
    store.put("flow:new", "gh", b"\x01f", ttl=600)
    assert store.get("flow:old", "gh") is None and store.get("flow:new", "gh") == b"\x01f"
    shared = RedisCredentials(redis_url)
    shared.put("flow:x", "gh", b"\x01f", ttl=600)
    assert 0 < shared.redis.ttl("cot_proxy:mcp_credentials:flow:x") <= 600


def test_the_redis_store_keeps_rows_per_person_and_server(redis_url):
    _stored(RedisCredentials(redis_url))


# ------------------------------------------------------------ refresh
GH = McpServer("gh", url="https://mcp.example.com/mcp", auth="per_user", client_id="cot")


@pytest.fixture
def connections(tmp_path):
    return Connections(SQLiteCredentials(str(tmp_path / "keys.db")), lambda: Vault(b"k" * 32))


@responses.activate
def test_a_token_near_its_expiry_is_refreshed_and_a_rotated_refresh_token_kept(connections):
    connections.save(ANN, "gh", Tokens("old-access", "refresh-1", 1000.0, TOKEN_URL, client_id="cot"))
    responses.post(TOKEN_URL, json={"access_token": "new-access", "refresh_token": "refresh-2", "expires_in": 3600,
                                    "token_type": "Bearer"})
    assert connections.token(ANN, GH, now=500.0) == "old-access"  # not near its expiry: no refresh
    assert len(responses.calls) == 0
    assert connections.token(ANN, GH, now=990.0) == "new-access"
    sent = dict(part.split("=", 1) for part in responses.calls[0].request.body.split("&"))
    assert sent["grant_type"] == "refresh_token" and sent["refresh_token"] == "refresh-1"
    assert sent["resource"] == "https%3A%2F%2Fmcp.example.com%2Fmcp"  # RFC 8707: for this server alone
    assert connections.tokens(ANN, "gh").refresh_token == "refresh-2"


@responses.activate
def test_a_refused_refresh_a_replayed_one_among_them_ends_the_connection(connections):
    connections.save(ANN, "gh", Tokens("old-access", "refresh-1", 1000.0, TOKEN_URL, client_id="cot"))
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": "refresh-1 replayed"})
    assert connections.token(ANN, GH, now=999.0) is None
    assert connections.connected(ANN) == []  # the person connects again


# ------------------------------------------------------------ calls
@pytest.fixture
def remote():
    with FakeRemote(people={ANN_TOKEN: ANN, BOB_TOKEN: BOB}) as running:
        yield running


@pytest.fixture
def per_user(remote):
    server = PerUser(McpServer("gh", url=remote.url, auth="per_user"), most=4)
    server.start()
    yield server
    server.stop()


def test_two_people_calling_in_parallel_each_reach_it_as_themselves(per_user, remote):
    def one(i):
        person, token = (ANN, ANN_TOKEN) if i % 2 else (BOB, BOB_TOKEN)
        answer = call(per_user, "whoami", {"text": f"{person}:{i}"}, id=i, person=person, token=token)
        return person, text(answer)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(100)))
    assert all(person == said for person, said in answers)
    assert len(remote.calls) == 100 and all(text.startswith(person + ":") for person, text in remote.calls)
    assert remote.crossed == 0 and per_user.status()["sessions"] == 2
    assert ANN_TOKEN not in json.dumps(per_user.status()) and ANN not in json.dumps(per_user.status())


def test_a_call_without_a_person_or_token_is_refused_and_reaches_nothing(per_user, remote):
    for kw in ({}, {"person": ANN}, {"token": ANN_TOKEN}, {"person": ANN, "token": "bad\ntoken"}):
        answer = call(per_user, "whoami", **kw)
        assert answer["error"]["code"] == -32600 and "own credentials" in answer["error"]["message"]
    assert remote.seen == []


def test_a_revoked_token_is_refused_with_a_clear_error_and_no_one_elses(per_user, remote):
    assert text(call(per_user, "whoami", person=ANN, token=ANN_TOKEN)) == ANN
    assert text(call(per_user, "whoami", person=BOB, token=BOB_TOKEN)) == BOB
    del remote.people[ANN_TOKEN]  # the server revoked it
    answer = call(per_user, "whoami", person=ANN, token=ANN_TOKEN)
    assert "error" in answer and "refused the credentials sent for this person" in answer["error"]["message"], answer
    assert "not running" not in answer["error"]["message"] and "/ui/connect/" in answer["error"]["message"]
    assert ANN_TOKEN not in json.dumps(answer)
    assert [p for p, _ in remote.calls] == [ANN, BOB]  # Bob's session was not used for Ann


def test_an_exchanged_token_refused_says_so_not_that_the_server_is_down(remote):
    exchanged = PerUser(McpServer("jira", url=remote.url, auth="token_exchange"), most=4)
    exchanged.start()
    try:
        answer = call(exchanged, "whoami", person=ANN, token="an-exchanged-token-the-server-refuses")
    finally:
        exchanged.stop()
    message = answer["error"]["message"]
    assert "the token the provider exchanged for its audience" in message and "HTTP 401" in message, answer
    assert "not running" not in message and "an-exchanged-token" not in message


def test_a_new_token_opens_a_new_session_and_the_least_recently_used_goes(remote):
    people = {f"person-{i}": f"token-{i}-0123456789abcdef" for i in range(3)}
    remote.people.update({token: person for person, token in people.items()})
    server = PerUser(McpServer("gh", url=remote.url, auth="per_user"), most=2)
    try:
        for person, token in people.items():
            assert text(call(server, "whoami", person=person, token=token)) == person
        assert list(server.held) == ["person-1", "person-2"]  # person-0's, least recently used, ended
        remote.people["token-1-renewed-0123456789"] = "person-1"
        assert text(call(server, "whoami", person="person-1", token="token-1-renewed-0123456789")) == "person-1"
        assert server.held["person-1"].token == "token-1-renewed-0123456789" and remote.crossed == 0
    finally:
        server.stop()


def test_a_session_replaced_for_an_expired_token_ends_with_the_persons_current_one(remote, per_user):
    remote.people["ann-renewed-token-0123456789"] = ANN
    assert text(call(per_user, "whoami", person=ANN, token=ANN_TOKEN)) == ANN
    old = per_user.held[ANN].session_id
    del remote.people[ANN_TOKEN]  # it expired: the server refuses it from now on
    assert text(call(per_user, "whoami", person=ANN, token="ann-renewed-token-0123456789")) == ANN
    ended = poll(lambda: [h for m, _, h in remote.seen if m == "DELETE"])
    assert [h["Authorization"] for h in ended] == ["Bearer ann-renewed-token-0123456789"]
    assert old and [h["Mcp-Session-Id"] for h in ended] == [old]  # the old session's, ended
    assert not [why for why in remote.refused if why.endswith("(DELETE)")] and remote.crossed == 0  # (its GET stream
    # may have been refused the expired token meanwhile)


def test_a_persons_sessions_end_when_the_supervisor_is_told_and_no_one_elses(remote, tmp_path):
    held = Supervisor([McpServer("gh", url=remote.url, auth="per_user"), McpServer("docs", url=remote.url)],
                      str(tmp_path))
    try:
        for person, token in ((ANN, ANN_TOKEN), (BOB, BOB_TOKEN)):
            answer = held.answer({"op": "call", "server": "gh", "person": person, "token": token, "timeout": 10,
                                  "message": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                              "params": {"name": "whoami", "arguments": {}}}})
            assert text(answer["message"]) == person
        told = held.answer({"op": "end_person", "person": ANN, "servers": ["gh", "docs", "nope", 7]})
        assert told == {"ended": ["gh"]} and list(held.servers["gh"].held) == [BOB]
        assert [h["Authorization"] for m, _, h in remote.seen if m == "DELETE"] == [f"Bearer {ANN_TOKEN}"]
        assert held.answer({"op": "end_person", "person": ANN, "servers": ["gh"]}) == {"ended": []}
        assert held.answer({"op": "end_person", "servers": "gh"}) == {"ended": []}
    finally:
        held.stop()


# ------------------------------------------------------------ the worker's side
def test_a_person_not_connected_is_sent_to_the_console_page_and_a_connected_one_carries_their_token(connections):
    tokens = PersonTokens(McpServers([GH, McpServer("docs", url="https://d.example.com/mcp")]), connections,
                          "https://llm.example.com/")
    told = []
    connections.end_sessions = lambda person, servers: told.append((person, servers))
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "x"}}
    assert tokens.fields("docs", message) == {}  # the proxy's own credentials: nothing added
    assert tokens.fields("gh", message)["refused"]["error"]["code"] == -32600  # no person (a service key)
    handle = caller.set(ANN)
    try:
        refused = tokens.fields("gh", message)["refused"]  # a client that takes no URL: an error naming the page
        assert refused["id"] == 7 and refused["error"]["code"] == -32600
        assert "https://llm.example.com/ui/connect/gh" in refused["error"]["message"]
        paging = page_by.set(lambda: BY_ELICITATION)  # a 2025-11-25 session that declared elicitation.url
        refused = tokens.fields("gh", message)["refused"]
        assert refused["id"] == 7 and refused["error"]["code"] == URL_ELICITATION_REQUIRED
        assert "https://llm.example.com/ui/connect/gh" in refused["error"]["message"]
        elicitation, = refused["error"]["data"]["elicitations"]
        assert elicitation["mode"] == "url" and elicitation["url"] == "https://llm.example.com/ui/connect/gh"
        page_by.set(lambda: BY_ROUND)  # a 2026-07-28 request that declared it: an input_required result
        result = tokens.fields("gh", message)["refused"]["result"]
        assert result["resultType"] == "input_required" and result["requestState"] == CONNECT_STATE + "gh"
        asked, = result["inputRequests"].values()
        assert asked == {"method": "elicitation/create", "params": {
            "mode": "url", "url": "https://llm.example.com/ui/connect/gh", "message": asked["params"]["message"]}}
        page_by.reset(paging)
        assert told == [(ANN, ["gh"])] * 3  # each time: a session of theirs the supervisor still holds ends
        connections.save(ANN, "gh", Tokens(ANN_TOKEN))
        assert tokens.fields("gh", message) == {"person": ANN, "token": ANN_TOKEN}
    finally:
        caller.reset(handle)
    assert "refused" in tokens.fields("gh", message)  # Ann's request over: the next caller is no one


def test_a_connect_rounds_next_request_is_the_call_made_anew_and_a_decline_ends_the_rounds():
    params = {"name": "gh__whoami", "arguments": {}, "requestState": CONNECT_STATE + "gh"}
    assert connect_round({**params, "inputResponses": {"connect-gh": {"action": "accept"}}}) == (
        {"name": "gh__whoami", "arguments": {}}, True)
    for action in ("decline", "cancel", None):
        assert connect_round({**params, "inputResponses": {"connect-gh": {"action": action}}})[1] is False
    assert connect_round({**params, "inputResponses": {"connect-gh": "accept"}})[1] is False
    for state in ("another-calls-state", None, 7, ["cot_proxy-connect-gh"]):
        assert connect_round({**params, "requestState": state}) is None  # the supervisor's rounds, or no round


def test_the_caller_is_each_threads_own(connections):
    connections.save(ANN, "gh", Tokens(ANN_TOKEN))
    connections.save(BOB, "gh", Tokens(BOB_TOKEN))
    tokens = PersonTokens(McpServers([GH]), connections, "https://llm.example.com")
    seen, barrier = {}, threading.Barrier(2)

    def as_person(person):
        caller.set(person)
        barrier.wait()
        seen[person] = tokens.fields("gh", {"id": 1})["token"]

    threads = [threading.Thread(target=as_person, args=(p,)) for p in (ANN, BOB)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert seen == {ANN: ANN_TOKEN, BOB: BOB_TOKEN}


def test_a_server_asking_for_more_scopes_is_refused_clearly_and_never_widened(per_user, remote):
    """MCP's step-up (a 403 naming the scopes it wants): the proxy does not re-authorize on the person's behalf."""
    remote.scope_needed = "repo admin:org"
    answer = call(per_user, "whoami", person=ANN, token=ANN_TOKEN)
    message = answer["error"]["message"]
    assert "asks for more scopes" in message and "'repo admin:org'" in message and "/ui/connect/gh" in message
    assert ANN_TOKEN not in json.dumps(answer) and remote.calls == []
