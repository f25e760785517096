"""Each person's own credentials to a remote MCP server, through the running app (Gunicorn, two workers): a remote
server (tests/fakes/fake_mcp_http.py) that takes each person's bearer token and records whose each call was; two
people's keys (a key a person owns: KeyRecord.owner) call it in parallel, 50 calls each, and none is crossed; a
person not connected is sent to the console page (-32042); a revoked connection's next call is refused; no token is
in an answer, the servers' status or the log."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from argoproxy.mcp.credential_vault import Tokens, vault_at
from argoproxy.people.membership import person_of_claims
from argoproxy.teamkeys.credential_store import SQLiteCredentials
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.fakes.fake_mcp_http import FakeRemote
from tests.proxy_process import running_proxy

ADMIN = "admin-key-of-the-per-user-test"
ANN_TOKEN, BOB_TOKEN = "ann-gh-access-token-0123456789", "bob-gh-access-token-0123456789"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture(scope="module")
def world(module_fake, tmp_path_factory):
    home = tmp_path_factory.mktemp("per_user")
    store = SQLiteKeyStore(home / "keys.db")
    now, people = time.time(), {}
    for name in ("ann", "bob", "cy", "dee", "eve"):
        claims = {"sub": name, "email": f"{name}@x.org", "email_verified": True, "name": name}
        people[name] = store.signed_in(person_of_claims(claims, "http://127.0.0.1:9", "groups", now), False).id
        store.create(KeyRecord(f"{name}-key", digest(f"sk-{name}-key"), "sk-" + name, created=now,
                               owner=people[name]))
    vault, held = vault_at(str(home / "credentials.key")), SQLiteCredentials(str(home / "keys.db"))
    for name, token in (("ann", ANN_TOKEN), ("bob", BOB_TOKEN)):  # as a connection from the console leaves them
        held.put(people[name], "gh", vault.seal(people[name], "gh", Tokens(token)))
    with FakeRemote(people={ANN_TOKEN: people["ann"], BOB_TOKEN: people["bob"]}) as remote:
        remote.refresh["dee-refresh-1"] = people["dee"]
        # Dee's token expired: it is refreshed at the server's token endpoint before her call (rotated there)
        held.put(people["dee"], "gh", vault.seal(people["dee"], "gh", Tokens(
            "dee-expired-token", "dee-refresh-1", time.time() - 5, remote.url.replace("/mcp", "/token"))))
        # Eve's is another server's (another audience): this server refuses it
        held.put(people["eve"], "gh", vault.seal(people["eve"], "gh", Tokens("jira-audience-token-of-eve")))
        servers = {"gh": {"url": remote.url, "auth": "per_user"}}
        with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", MCP_SERVERS=json.dumps(servers),
                           ENABLE_AUTH="true", API_KEY_SECRET=ADMIN, KEYS_DB=str(home / "keys.db"),
                           CREDENTIALS_KEY_FILE=str(home / "credentials.key"), OIDC_ISSUER="http://127.0.0.1:9",
                           OIDC_CLIENT_ID="proxy", PUBLIC_URL="https://llm.example.com", TIMEOUT="10") as proxy:
            yield proxy, remote, people, held


def session(proxy, key):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    conn.request("POST", "/mcp", json.dumps(INIT), {**HEADERS, "Authorization": f"Bearer {key}"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    return conn, {**HEADERS, "Authorization": f"Bearer {key}", "Mcp-Session-Id": resp.getheader("Mcp-Session-Id")}


def rpc(conn, headers, method, params, id=2):
    conn.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}), headers)
    return json.loads(conn.getresponse().read())


def whoami(proxy, key, text, calls=1):
    conn, headers = session(proxy, key)
    try:
        return [rpc(conn, headers, "tools/call", {"name": "gh__whoami", "arguments": {"text": f"{text}:{i}"}}, i + 2)
                for i in range(calls)]
    finally:
        conn.close()


def test_two_people_in_parallel_each_reach_the_server_as_themselves(world):
    proxy, remote, people, _ = world
    jobs = [("sk-ann-key", "ann")] * 5 + [("sk-bob-key", "bob")] * 5  # 10 sessions of 10 calls: 50 calls each

    def run(job):
        key, name = job
        return name, whoami(proxy, key, name, calls=10)

    with ThreadPoolExecutor(6) as pool:
        done = list(pool.map(run, jobs))
    for name, answers in done:
        assert all(a["result"]["content"][0]["text"] == people[name] for a in answers), answers[:1]
    recorded = [(person, text.split(":")[0]) for person, text in remote.calls]
    assert len(recorded) == 100 and all(person == people[name] for person, name in recorded)
    assert remote.crossed == 0


def test_a_person_not_connected_is_sent_to_the_console_and_sees_no_tools_of_it(world):
    proxy, remote, _, _ = world
    before = len(remote.calls)
    answer, = whoami(proxy, "sk-cy-key", "cy")
    assert answer["error"]["code"] == -32042
    assert answer["error"]["data"]["elicitations"][0]["url"] == "https://llm.example.com/ui/connect/gh"
    conn, headers = session(proxy, "sk-cy-key")
    listed = rpc(conn, headers, "tools/list", {})
    conn.close()
    assert not [t for t in listed["result"]["tools"] if t["name"].startswith("gh__")]
    conn, headers = session(proxy, "sk-ann-key")
    listed = rpc(conn, headers, "tools/list", {})
    conn.close()
    assert "gh__whoami" in [t["name"] for t in listed["result"]["tools"]]  # connected: shown
    assert len(remote.calls) == before


def test_a_revoked_connection_is_refused_at_its_next_call_and_no_token_shows(world):
    proxy, remote, people, held = world
    assert whoami(proxy, "sk-bob-key", "bob")[0]["result"]["content"][0]["text"] == people["bob"]
    assert held.delete(people["bob"], "gh") == 1  # the console's DELETE, or an admin's
    answer, = whoami(proxy, "sk-bob-key", "bob")
    assert answer["error"]["code"] == -32042
    conn, headers = session(proxy, ADMIN)
    status = json.dumps(rpc(conn, headers, "cot_proxy/servers", {}))
    conn.close()
    log = proxy.read_log()
    for token in (ANN_TOKEN, BOB_TOKEN):
        assert token not in status and token not in log and token not in json.dumps(answer)


def test_an_expired_token_is_refreshed_and_rotated_and_another_audiences_is_refused(world):
    proxy, remote, people, held = world
    assert whoami(proxy, "sk-dee-key", "dee")[0]["result"]["content"][0]["text"] == people["dee"]
    assert "dee-refresh-1" not in remote.refresh and list(remote.refresh.values()) == [people["dee"]]  # rotated
    assert whoami(proxy, "sk-dee-key", "dee", calls=2)[1]["result"]["content"][0]["text"] == people["dee"]
    answer, = whoami(proxy, "sk-eve-key", "eve")
    assert answer["error"]["code"] == -32001 and "refused the credentials" in answer["error"]["message"]
    assert "their own token" in answer["error"]["message"] and "not running" not in answer["error"]["message"]
    assert "jira-audience-token-of-eve" not in json.dumps(answer) and people["eve"] not in [p for p, _ in remote.calls]
    assert "jira-audience-token-of-eve" not in proxy.read_log() and "dee-refresh-1" not in proxy.read_log()


def test_the_connect_page_is_served_without_a_key_and_asks_for_a_sign_in(world):
    proxy = world[0]
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    answers = {}
    for method, path in (("GET", "/ui/connect/gh"), ("GET", "/ui/connect/nope"), ("GET", "/ui/connect/gh/callback"),
                         ("DELETE", "/ui/connect/gh"), ("GET", "/UI/Connect/gh")):
        conn.request(method, path)
        resp = conn.getresponse()
        answers[(method, path)] = resp.status, resp.getheader("Location"), resp.read()
    conn.close()
    assert answers[("GET", "/ui/connect/gh")][:2] == (303, "/ui/auth/login")
    assert answers[("GET", "/ui/connect/nope")][0] == 404
    assert answers[("GET", "/ui/connect/gh/callback")][0] == 401
    assert answers[("DELETE", "/ui/connect/gh")][0] == 401
    assert answers[("GET", "/UI/Connect/gh")][:2] == (303, "/ui/auth/login")  # any case, as the console's routes
