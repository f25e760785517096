"""Each person's own credentials to a remote MCP server, through the running app (Gunicorn, two workers): a remote
server (tests/fakes/fake_mcp_http.py) that takes each person's bearer token and records whose each call was; two
people's keys (a key a person owns: KeyRecord.owner) call it in parallel, 50 calls each, and none is crossed; a
person connects from the console to a server whose authorization server (the suite's real OpenID provider) takes
Client ID Metadata Documents, fetching the proxy's; a person not connected is sent to the console page as their client can be (2026-07-28: an input_required round, which
the official SDK's client takes and calls again once connected; 2025-11-25: -32042 where the session declared URL
elicitation; else an error naming the page); a revoked connection's next call is refused; no token is in an answer,
the servers' status or the log."""

from __future__ import annotations

import http.client
import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt

from argoproxy.config.mcp_servers import McpServer, McpServers
from argoproxy.mcp.connect_flow import ConnectPages
from argoproxy.mcp.connections import Connections
from argoproxy.mcp.credential_vault import Tokens, Vault, vault_at
from argoproxy.mcp.oauth_discovery import auth_server
from argoproxy.people.membership import person_of_claims
from argoproxy.signin.sessions import digest as session_digest
from argoproxy.teamkeys.credential_store import SQLiteCredentials
from argoproxy.teamkeys.people_rows import ConsoleSession
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.fakes.fake_mcp_http import FakeRemote
from tests.oidc_provider import OidcProvider, through_provider
from tests.polling import poll
from tests.proxy_process import running_proxy

ADMIN = "admin-key-of-the-per-user-test"
ANN_TOKEN, BOB_TOKEN = "ann-gh-access-token-0123456789", "bob-gh-access-token-0123456789"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
URL_ELICITATION = {"elicitation": {"form": {}, "url": {}}}
FAY_TOKEN = "fay-gh-access-token-0123456789"
GUS_TOKEN, IVY_TOKEN = "gus-gh-access-token-0123456789", "ivy-gh-access-token-0123456789"
CONNECT = "https://llm.example.com/ui/connect/gh"


@pytest.fixture(scope="module")
def world(module_fake, tmp_path_factory):
    home = tmp_path_factory.mktemp("per_user")
    store = SQLiteKeyStore(home / "keys.db")
    now, people = time.time(), {}
    for name in ("ann", "bob", "cy", "dee", "eve", "fay", "hal", "gus", "ivy", "kim"):
        claims = {"sub": name, "email": f"{name}@x.org", "email_verified": True, "name": name}
        people[name] = store.signed_in(person_of_claims(claims, "http://127.0.0.1:9", "groups", now), False).id
        store.create(KeyRecord(f"{name}-key", digest(f"sk-{name}-key"), "sk-" + name, created=now,
                               owner=people[name]))
    vault, held = vault_at(str(home / "credentials.key")), SQLiteCredentials(str(home / "keys.db"))
    for name, token in (("ann", ANN_TOKEN), ("bob", BOB_TOKEN)):  # as a connection from the console leaves them
        held.put(people[name], "gh", vault.seal(people[name], "gh", Tokens(token)))
    with FakeRemote(people={ANN_TOKEN: people["ann"], BOB_TOKEN: people["bob"], GUS_TOKEN: people["gus"],
                            IVY_TOKEN: people["ivy"]}) as remote:
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
            proxy.vault, proxy.store = vault, store
            yield proxy, remote, people, held


def session(proxy, key, capabilities=None):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    init = {**INIT, "params": {**INIT["params"], "capabilities": capabilities or {}}}
    conn.request("POST", "/mcp", json.dumps(init), {**HEADERS, "Authorization": f"Bearer {key}"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    return conn, {**HEADERS, "Authorization": f"Bearer {key}", "Mcp-Session-Id": resp.getheader("Mcp-Session-Id")}


def rpc(conn, headers, method, params, id=2):
    conn.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}), headers)
    return json.loads(conn.getresponse().read())


def whoami(proxy, key, text, calls=1, capabilities=None):
    conn, headers = session(proxy, key, capabilities)
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
    answer, = whoami(proxy, "sk-cy-key", "cy", capabilities=URL_ELICITATION)  # a client that opens a URL for it
    assert answer["error"]["code"] == -32042
    assert answer["error"]["data"]["elicitations"][0]["url"] == CONNECT
    for declared in ({}, {"elicitation": {}}):  # no URL mode (an empty elicitation is form mode): the page named
        answer, = whoami(proxy, "sk-cy-key", "cy", capabilities=declared)
        assert answer["error"]["code"] == -32600 and CONNECT in answer["error"]["message"]
    conn, headers = session(proxy, "sk-cy-key")
    listed = rpc(conn, headers, "tools/list", {})
    conn.close()
    assert not [t for t in listed["result"]["tools"] if t["name"].startswith("gh__")]
    assert "mcp server gh: tools/list failed" not in proxy.read_log()  # their state, not the server's failure
    conn, headers = session(proxy, "sk-ann-key")
    listed = rpc(conn, headers, "tools/list", {})
    conn.close()
    assert "gh__whoami" in [t["name"] for t in listed["result"]["tools"]]  # connected: shown
    assert len(remote.calls) == before


def test_a_revoked_connection_is_refused_at_its_next_call_and_no_token_shows(world):
    proxy, remote, people, held = world
    assert whoami(proxy, "sk-bob-key", "bob")[0]["result"]["content"][0]["text"] == people["bob"]
    assert held.delete(people["bob"], "gh") == 1  # the console's DELETE, or an admin's
    answer, = whoami(proxy, "sk-bob-key", "bob", capabilities=URL_ELICITATION)
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


# ------------------------------------------------------------ 2026-07-28: the connect page in an input_required round
def stateless(proxy, key, capabilities, **params):
    envelope = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": capabilities,
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "gh__whoami", "arguments": {"text": "r"}, "_meta": envelope, **params}}
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    conn.request("POST", "/mcp", json.dumps(body), {**HEADERS, "Authorization": f"Bearer {key}",
                                                     "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
                                                     "Mcp-Name": "gh__whoami"})
    resp = conn.getresponse()
    answer = resp.status, json.loads(resp.read())
    conn.close()
    return answer


def test_at_2026_07_28_a_person_not_connected_gets_an_input_required_round_naming_the_page(world):
    proxy, remote, _, _ = world
    before = len(remote.calls)
    status, first = stateless(proxy, "sk-cy-key", URL_ELICITATION)
    result = first["result"]
    assert status == 200 and result["resultType"] == "input_required" and first["id"] == 9
    (asked_id, asked), = result["inputRequests"].items()
    assert asked["method"] == "elicitation/create" and asked["params"]["mode"] == "url"
    assert asked["params"]["url"] == CONNECT and "elicitationId" not in asked["params"]  # 2026-07-28 has none
    again = {"requestState": result["requestState"], "inputResponses": {asked_id: {"action": "accept"}}}
    status, second = stateless(proxy, "sk-cy-key", URL_ELICITATION, **again)  # accepted, not connected yet: asked again
    assert status == 200 and second["result"]["resultType"] == "input_required"
    declined = {**again, "inputResponses": {asked_id: {"action": "decline"}}}
    status, refused = stateless(proxy, "sk-cy-key", URL_ELICITATION, **declined)
    assert refused["error"]["code"] == -32600 and CONNECT in refused["error"]["message"] and status < 500
    for capabilities in ({}, {"elicitation": {"form": {}}}):  # no URL mode: never sent one, the page named instead
        status, refused = stateless(proxy, "sk-cy-key", capabilities)
        assert refused["error"]["code"] == -32600 and CONNECT in refused["error"]["message"]
    assert len(remote.calls) == before


def test_at_2026_07_28_the_sdks_client_opens_the_page_and_its_call_is_made_once_connected(world):
    proxy, remote, people, held = world
    mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError, UrlElicitationRequiredError
    from mcp_types import ElicitResult
    opened = []

    async def legacy():  # 2025-11-25: the SDK's client declares URL elicitation, and is told -32042
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer sk-fay-key"}, timeout=30) as http:
            async with mcp.Client(streamable_http_client(proxy.url + "/mcp", http_client=http), mode="legacy",
                                  elicitation_callback=elicited) as client:
                try:
                    await client.call_tool("gh__whoami", {"text": "fay"})
                except MCPError as exc:
                    return client.protocol_version, UrlElicitationRequiredError.from_error(exc.error)

    async def elicited(context, params):  # the person opens the page and connects (as the console leaves it)
        opened.append((params.mode, params.url))
        remote.people[FAY_TOKEN] = people["fay"]
        held.put(people["fay"], "gh", proxy.vault.seal(people["fay"], "gh", Tokens(FAY_TOKEN)))
        return ElicitResult(action="accept")

    async def run():
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer sk-fay-key"}, timeout=30) as http:
            async with mcp.Client(streamable_http_client(proxy.url + "/mcp", http_client=http), mode="auto",
                                  elicitation_callback=elicited) as client:
                return client.protocol_version, await client.call_tool("gh__whoami", {"text": "fay"})

    version, refused = asyncio.run(legacy())
    assert version == "2025-11-25" and [e.url for e in refused.elicitations] == [CONNECT] and not opened
    version, result = asyncio.run(run())
    assert version == "2026-07-28" and opened == [("url", CONNECT)]
    assert result.content[0].text == people["fay"] and remote.calls[-1] == (people["fay"], "fay")
    assert FAY_TOKEN not in proxy.read_log()


# ------------------------------------------------------------ a connection by Client ID Metadata Document
def test_a_person_connects_at_an_authorization_server_that_fetches_the_proxys_client_metadata_document(world):
    proxy, remote, people, held = world
    public = "https://llm.example.com"
    document = public + "/ui/connect/client-metadata.json"
    provider = OidcProvider(resources={remote.url: "tools"}, cimd={"from": public, "to": proxy.url}).start()
    try:
        remote.resource_metadata = {"resource": remote.url, "authorization_servers": [provider.issuer],
                                    "scopes_supported": ["tools"]}
        cookie = {"Cookie": "__Host-cot_console=hal-console-session"}  # a session as sign-in leaves it
        proxy.store.create_session(session_digest("hal-console-session"),
                                   ConsoleSession(people["hal"], "hal-csrf", time.time(), time.time()))
        browser = requests.Session()
        start = browser.get(proxy.url + "/ui/connect/gh", headers=cookie, allow_redirects=False)
        assert start.status_code == 303, start.text
        asked = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["Location"]).query).items()}
        assert asked["client_id"] == document and asked["resource"] == remote.url
        # the provider fetches the document (client_id == its URL, the redirect_uri among its callbacks), signs alice in
        back = through_provider(browser, start.headers["Location"], public, "alice")
        assert back.startswith(public + "/ui/connect/gh/callback?")
        done = browser.get(proxy.url + back[len(public):], headers=cookie, allow_redirects=False)
        assert done.status_code == 303 and done.headers["Location"] == "/ui", done.text
    finally:
        remote.resource_metadata = None
        provider.stop()
    tokens = proxy.vault.open(people["hal"], "gh", held.get(people["hal"], "gh"))
    assert tokens.client_id == document  # its refreshes name the same client
    claims = jwt.decode(tokens.access_token, provider.key).claims
    assert claims["aud"] == remote.url and claims["client_id"] == document  # a token for this server alone
    remote.people[tokens.access_token] = people["hal"]
    assert whoami(proxy, "sk-hal-key", "hal")[0]["result"]["content"][0]["text"] == people["hal"]
    assert tokens.access_token not in proxy.read_log()


def ended_upstream(remote, token):
    """The remote server's DELETEs of a session (its end) sent with `token`, waited for."""
    return poll(lambda: [h for m, _, h in remote.seen if m == "DELETE" and h.get("Authorization") == f"Bearer {token}"])


def test_a_disconnect_at_the_connect_page_holds_the_consoles_origin_rule_and_ends_the_session_at_once(world):
    proxy, remote, people, held = world
    gus = people["gus"]
    held.put(gus, "gh", proxy.vault.seal(gus, "gh", Tokens(GUS_TOKEN)))
    assert whoami(proxy, "sk-gus-key", "gus")[0]["result"]["content"][0]["text"] == gus  # his upstream session
    proxy.store.create_session(session_digest("gus-console-session"),
                               ConsoleSession(gus, "gus-csrf", time.time(), time.time()))
    signed = {"Cookie": "__Host-cot_console=gus-console-session", "X-CSRF-Token": "gus-csrf"}
    same_site = {"Origin": f"http://127.0.0.1:{proxy.port}"}
    for headers, code in ((signed, "origin_not_allowed"),  # no Origin: not the console's page
                          ({**signed, **same_site, "X-CSRF-Token": "wrong"}, "csrf_token_invalid")):
        refused = requests.delete(proxy.url + "/ui/connect/gh", headers=headers, timeout=30)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == code, refused.text
    assert held.servers(gus) == ["gh"]
    done = requests.delete(proxy.url + "/ui/connect/gh", headers={**signed, **same_site}, timeout=30)
    assert done.status_code == 200 and done.json() == {"server": "gh", "disconnected": True} and held.servers(gus) == []
    assert ended_upstream(remote, GUS_TOKEN)  # at once, by the supervisor told: no call of his was needed


def test_a_connection_gone_from_the_store_ends_the_session_at_the_persons_next_call(world):
    """As another replica's revocation leaves it: the row gone from the shared store, this replica's supervisor still
    holding the session. The worker finding no connection tells it."""
    proxy, remote, people, held = world
    ivy = people["ivy"]
    held.put(ivy, "gh", proxy.vault.seal(ivy, "gh", Tokens(IVY_TOKEN)))
    assert whoami(proxy, "sk-ivy-key", "ivy")[0]["result"]["content"][0]["text"] == ivy
    assert held.delete(ivy, "gh") == 1
    assert not [h for m, _, h in remote.seen if m == "DELETE" and h.get("Authorization") == f"Bearer {IVY_TOKEN}"]
    assert whoami(proxy, "sk-ivy-key", "ivy")[0]["error"]["code"] == -32600
    assert ended_upstream(remote, IVY_TOKEN)


def test_a_disconnect_revokes_the_refresh_token_at_the_real_authorization_server(world):
    """RFC 7009 end to end: Kim connects (dynamic registration at the suite's provider, a refresh token issued),
    disconnects; the proxy revokes her tokens there after answering, and her refresh token is refused from then on."""
    proxy, remote, people, held = world
    public = "https://llm.example.com"
    provider = OidcProvider(resources={remote.url: "tools"}, refresh_tokens=True).start()
    try:
        remote.resource_metadata = {"resource": remote.url, "authorization_servers": [provider.issuer],
                                    "scopes_supported": ["tools"]}
        proxy.store.create_session(session_digest("kim-console-session"),
                                   ConsoleSession(people["kim"], "kim-csrf", time.time(), time.time()))
        signed = {"Cookie": "__Host-cot_console=kim-console-session"}
        browser = requests.Session()
        start = browser.get(proxy.url + "/ui/connect/gh", headers=signed, allow_redirects=False)
        assert start.status_code == 303, start.text
        back = through_provider(browser, start.headers["Location"], public, "alice")
        done = browser.get(proxy.url + back[len(public):], headers=signed, allow_redirects=False)
        assert done.status_code == 303, done.text
        tokens = proxy.vault.open(people["kim"], "gh", held.get(people["kim"], "gh"))
        assert tokens.refresh_token and tokens.revocation_endpoint.startswith(provider.issuer)
        gone = requests.delete(proxy.url + "/ui/connect/gh", timeout=30, headers={
            **signed, "X-CSRF-Token": "kim-csrf", "Origin": f"http://127.0.0.1:{proxy.port}"})
        assert gone.json() == {"server": "gh", "disconnected": True}
        # (its access token, a JWT, the provider cannot revoke: unsupported_token_type, said in the log)
        assert poll(lambda: "an ended connection's refresh_token revoked at" in proxy.read_log())
        assert "HTTP 400 unsupported_token_type to revoking a person's access_token" in proxy.read_log()
        again = requests.post(tokens.token_endpoint, timeout=30, data={
            "grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "client_id": tokens.client_id})
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
    finally:
        remote.resource_metadata = None
        provider.stop()
    assert tokens.refresh_token not in proxy.read_log() and tokens.access_token not in proxy.read_log()


def test_registration_where_the_authorization_server_issues_no_refresh_tokens_is_made_without_the_grant(tmp_path):
    """The suite's provider without `refresh_tokens` refuses a registration asking the refresh_token grant; the
    proxy registers again without it (the person connects again when their token expires)."""
    mcp_url, public = "http://127.0.0.1:9/mcp", "http://localhost:8080"
    provider = OidcProvider(resources={mcp_url: "tools"}).start()
    try:
        found = auth_server(provider.issuer, requests.Session())
        asked = requests.post(found.registration_endpoint, timeout=30, json={
            "redirect_uris": [public + "/ui/connect/gh/callback"], "application_type": "web",
            "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"})
        assert asked.status_code == 400 and asked.json()["error"] == "invalid_client_metadata", asked.text
        connections = Connections(SQLiteCredentials(str(tmp_path / "keys.db")), lambda: Vault(b"k" * 32))
        pages = ConnectPages(McpServers([McpServer("gh", url=mcp_url, auth="per_user")]), connections, public,
                             lambda headers: None)
        client_id = pages.register(pages.servers["gh"], found)
        assert client_id and pages.registered == {provider.issuer: client_id}
    finally:
        provider.stop()
