"""Two people, one `auth: per_user` remote server, two replicas on one Redis (issue 72's Done; docs/mcp-credentials.md),
all real parts: the real OpenID provider (tests/oidc_provider.py) is both the proxies' sign-in and the remote
server's authorization server (dynamic registration, resource indicators, JWT access tokens living a few seconds,
refresh tokens rotated at each use, a replayed one revoking its grant as the provider does); the remote server
(tests/fakes/fake_mcp_http.py) checks each bearer against the provider's JWKS (audience its URL, no leeway on
`exp`: tests/fakes/jwt_bearers.py) and records each call under the token's `sub`; two Gunicorn replicas of two
workers each share REDIS_URL and CREDENTIALS_KEY_FILE.

Each person signs in and connects once on replica A through the provider's login form; then 50 calls each, in
parallel, over sessions on both replicas, across the connect tokens' expiry: 0 crossed, every call its person's, the
tokens refreshed at the provider and none of its refreshes refused (four workers refreshing one token at once is
the race this finds); the rotated refresh token replayed is refused. An admin revokes one person's connections on
replica A: their next call on replica B is refused within a second while the other's go on. No token is in either
replica's log, status or errors."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
import requests

from argoproxy.mcp.credential_vault import Tokens, vault_at
from argoproxy.teamkeys.credential_store import RedisCredentials
from tests.fakes.fake_mcp_http import FakeRemote
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.jwt_bearers import JwtBearers
from tests.integration.test_mcp_per_user import rpc, session
from tests.integration.test_signin import proxy_on
from tests.oidc_provider import OidcProvider, sign_in, signin_settings, through_provider
from tests.polling import poll
from tests.proxy_process import ProxyProcess, free_port
from tests.redis_server import RedisServer

ADMIN = "admin-key-of-the-per-user-replica-test"
TTL = 4  # seconds an access token lives: the connect tokens expire mid-run
PEOPLE = ("alice", "bob")
SUB = {login: f"sub-{login}" for login in PEOPLE}  # who the provider (and so the server) says each is
CALLS, PER_SESSION = 50, 5


@pytest.fixture(scope="module")
def world() -> Iterator[SimpleNamespace]:
    remote = FakeRemote().start()
    ports = free_port(), free_port()
    publics = [f"http://localhost:{port}" for port in ports]  # the provider is 127.0.0.1: cookies stay apart
    provider = OidcProvider(*publics, resources={remote.url: "mcp"}, access_token_ttl=TTL, refresh_tokens=True)
    home = Path(tempfile.mkdtemp(prefix="cot_proxy_per_user_replicas_"))
    redis, replicas = None, []
    try:
        provider.start()
        remote.people = JwtBearers(provider.issuer, remote.url)  # type: ignore[assignment]
        remote.resource_metadata = {"resource": remote.url, "authorization_servers": [provider.issuer],
                           "scopes_supported": ["mcp"]}
        redis = RedisServer().start()
        with FakeOpenAI() as fake:
            shared = {"TARGET_BASE_URL": fake.base_url, "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN,
                      "REDIS_URL": redis.url, "CREDENTIALS_KEY_FILE": str(home / "credentials.key"), "WORKERS": "2",
                      "MCP_SERVERS": json.dumps({"gh": {"url": remote.url, "auth": "per_user"}})}
            with ThreadPoolExecutor(2) as pool:  # started side by side
                started = [pool.submit(proxy_on, port, **shared, **signin_settings(provider, public))
                           for port, public in zip(ports, publics)]
            replicas += [done.result() for done in started if done.exception() is None]  # (stopped below)
            assert len(replicas) == 2, [str(done.exception()) for done in started]
            world = SimpleNamespace(remote=remote, provider=provider, replicas=replicas, publics=publics, home=home,
                                    held=RedisCredentials(redis.url), vault=vault_at(str(home / "credentials.key")))
            world.people, world.keys, world.connected = connect_everyone(world)
            yield world
    finally:
        for replica in replicas:
            replica.stop()
            shutil.rmtree(replica.home, ignore_errors=True)
        if redis is not None:
            redis.close()
        provider.stop()
        remote.stop()
        shutil.rmtree(home, ignore_errors=True)


def connect_everyone(world: SimpleNamespace) -> tuple[dict[str, str], dict[str, str], dict[str, Tokens]]:
    """Each person signs in on replica A, connects to gh there (the provider's login and the proxy's callback), and
    gets a key they own from the admin: their person ids, keys, and the tokens the connection left."""
    people, keys, connected = {}, {}, {}
    public = world.publics[0]
    for login in PEOPLE:
        browser = requests.Session()
        assert sign_in(browser, public, login).status_code == 303
        started = browser.get(public + "/ui/connect/gh", allow_redirects=False)
        assert started.status_code == 303, started.text
        back = browser.get(through_provider(browser, started.headers["Location"], public, login), allow_redirects=False)
        assert (back.status_code, back.headers.get("Location")) == (303, "/ui"), back.text
        people[login] = browser.get(public + "/ui/auth/me").json()["id"]
        made = requests.post(public + "/admin/v1/keys", json={"name": f"{login}-key", "owner": f"{login}@example.com"},
                             headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
        assert made.status_code == 201, made.text
        keys[login] = made.json()["key"]
        connected[login] = held_tokens(world, people[login])
        assert connected[login].refresh_token and connected[login].expires_at
    return people, keys, connected


def held_tokens(world: SimpleNamespace, person: str) -> Tokens:
    sealed = world.held.get(person, "gh")
    tokens = world.vault.open(person, "gh", sealed) if sealed else None
    assert tokens is not None
    return tokens


def calls(replica: ProxyProcess, key: str, tag: str, count: int) -> list[dict]:
    conn, headers = session(replica, key)
    try:
        return [rpc(conn, headers, "tools/call", {"name": "gh__whoami", "arguments": {"text": f"{tag}:{i}"}}, i + 2)
                for i in range(count)]
    finally:
        conn.close()


def run(world: SimpleNamespace, count: int) -> list[tuple[str, list[dict]]]:
    """`count` calls of each person, in parallel, in sessions of PER_SESSION calls alternating between the
    replicas."""
    jobs = [(login, world.replicas[n % 2]) for login in PEOPLE for n in range(count // PER_SESSION)]
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda job: (job[0], calls(job[1], world.keys[job[0]], job[0], PER_SESSION)), jobs))


def test_two_people_in_parallel_on_two_replicas_across_an_expiry_0_crossed_and_refreshed(world):
    began, first, refused = time.monotonic(), dict(world.connected), len(world.remote.refused)
    done = run(world, 20)
    # The tokens of the connections expire now (the server refuses them: it is as strict as a real one): the next
    # calls wait for one refresh
    assert poll(lambda: all(world.remote.people.person(t.access_token) is None for t in first.values()),
                timeout=TTL + 2)
    done += run(world, 15)
    # Half their life gone, the refreshed tokens are due and still good: one worker refreshes while the others' calls
    # go on with them (two tokens of a person in flight at once)
    assert poll(lambda: all(time.time() >= held_tokens(world, world.people[login]).refresh_at for login in PEOPLE),
                timeout=TTL)
    done += run(world, 15)
    took = time.monotonic() - began
    for login, answers in done:
        said = [a["result"]["content"][0]["text"] if "result" in a else a for a in answers]
        assert said == [SUB[login]] * PER_SESSION
    recorded = [(person, text.split(":")[0]) for person, text in world.remote.calls]
    assert len(recorded) == 2 * CALLS
    assert all(person == SUB[login] for person, login in recorded), "a call recorded under another person"
    assert world.remote.crossed == 0
    # None of the run's requests was refused (an expired token sent), an old session's end neither: its DELETE
    # carries the person's current token, not the expired one it was opened with
    assert world.remote.refused[refused:] == [], world.remote.refused[refused:]
    grants = world.provider.grants()
    print(f"{2 * CALLS} calls on two replicas in {took:.2f} s; the provider's refreshes: {grants}; "
          f"refused at the server: {dict(world.remote.people.refused)}")
    assert grants["refreshed"] >= 2 * len(PEOPLE) and grants["refused"] == 0
    for login in PEOPLE:  # refreshed and rotated: the connection's first tokens are gone from the store
        now = held_tokens(world, world.people[login])
        assert now.access_token != first[login].access_token and now.refresh_token != first[login].refresh_token


def test_a_revoked_connection_is_refused_on_the_other_replica_within_a_second_and_the_other_person_goes_on(world):
    one, other = world.replicas
    assert calls(other, world.keys["bob"], "bob", 1)[0]["result"]["content"][0]["text"] == SUB["bob"]
    revoked = requests.delete(f"{one.url}/admin/v1/people/{world.people['bob']}/connections",
                              headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert revoked.status_code == 200 and revoked.json()["revoked"] == 1, revoked.text
    began = time.monotonic()
    assert poll(lambda: "error" in calls(other, world.keys["bob"], "bob", 1)[0], timeout=3)
    took = time.monotonic() - began
    answer = calls(other, world.keys["bob"], "bob", 1)[0]
    # (its session declared no URL elicitation: the JSON-RPC error naming the page, docs/mcp-credentials.md)
    assert answer["error"]["code"] == -32600 and answer["error"]["data"]["url"] == world.publics[1] + "/ui/connect/gh"
    print(f"a connection revoked on one replica: refused on the other after {took:.2f} s")
    assert took < 1.0
    assert calls(other, world.keys["alice"], "alice", 1)[0]["result"]["content"][0]["text"] == SUB["alice"]
    assert calls(one, world.keys["alice"], "alice", 1)[0]["result"]["content"][0]["text"] == SUB["alice"]


def test_a_rotated_refresh_token_replayed_is_refused_and_no_token_shows_anywhere(world):
    first = world.connected["bob"]  # rotated by the run's refreshes
    replayed = requests.post(first.token_endpoint, data={"grant_type": "refresh_token", "client_id": first.client_id,
                                                         "refresh_token": first.refresh_token}, timeout=10)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant", replayed.text
    tokens = {t for _, _, headers in world.remote.seen for t in [headers.get("Authorization", "")[7:]] if t}
    tokens |= {t.refresh_token for t in world.connected.values()}
    tokens |= {held_tokens(world, world.people["alice"]).refresh_token}
    assert len(tokens) > 4
    shown = []
    for replica in world.replicas:
        conn, headers = session(replica, ADMIN)
        shown.append(json.dumps(rpc(conn, headers, "cot_proxy/servers", {})))
        conn.close()
        admin = {"Authorization": f"Bearer {ADMIN}"}
        shown += [requests.get(replica.url + path, headers=admin, timeout=10).text for path in (
            "/health", "/metrics", f"/admin/v1/people/{world.people['alice']}/connections")]
        shown.append(replica.read_log())
    shown.append(json.dumps(calls(world.replicas[1], world.keys["bob"], "bob", 1)))
    for text in shown:
        assert not [t for t in tokens if t in text]
