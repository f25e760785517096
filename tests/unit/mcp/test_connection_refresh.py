"""A per_user connection refreshed by one worker of one replica at a time (mcp/connections.py, the store's lease
and swap in teamkeys/credential_store.py): callers at once send the rotated refresh token once (a provider that sees
it again revokes the grant); one that finds the lease held uses the token it read while it is good, else waits for
the refresher's; a connection revoked during a refresh stays revoked; a short-lived token is refreshed after half
its life, not at every call; a person's call in flight on a per_user server is answered when a refresh elsewhere
brings their next call a new token (the old session ends after it). The two-replica run is
tests/integration/test_mcp_per_user_replicas.py."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import responses

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp.connections import REFRESH_AHEAD, Connections, Unavailable, renewed_tokens
from argoproxy.mcp.credential_vault import Tokens, Vault
from argoproxy.mcp.per_user import PerUser
from argoproxy.teamkeys.credential_store import RedisCredentials, SQLiteCredentials
from tests.fakes.fake_mcp_http import FakeRemote
from tests.polling import poll

ANN = "person-ann"
TOKEN_URL = "https://as.example.com/token"
GH = McpServer("gh", url="https://mcp.example.com/mcp", auth="per_user", client_id="cot")
FRESH = {"access_token": "new-access", "refresh_token": "refresh-2", "expires_in": 3600, "token_type": "Bearer"}


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SQLiteCredentials(str(tmp_path / "keys.db"))
    return RedisCredentials(request.getfixturevalue("redis_url"))


@pytest.fixture
def connections(store):
    store.delete(ANN)
    return Connections(store, lambda: Vault(b"k" * 32))


def expired(connections, expires_at=time.time() - 5):
    connections.save(ANN, "gh", Tokens("old-access", "refresh-1", expires_at, TOKEN_URL, client_id="cot"))


def test_a_row_is_swapped_only_over_what_it_held_and_a_lease_is_held_by_one(store):
    store.delete(ANN)
    store.put(ANN, "gh", b"\x01a")
    assert not store.swap(ANN, "gh", b"\x01other", b"\x01b") and store.get(ANN, "gh") == b"\x01a"
    assert store.swap(ANN, "gh", b"\x01a", b"\x01b") and store.get(ANN, "gh") == b"\x01b"
    assert not store.swap(ANN, "gh", b"\x01a", None) and store.swap(ANN, "gh", b"\x01b", None)
    assert store.get(ANN, "gh") is None and not store.swap(ANN, "gh", b"\x01b", b"\x01c")  # gone stays gone
    lease = store.claim(ANN, "gh", 30)
    other = store.claim(ANN, "jira", 30)
    assert lease and store.claim(ANN, "gh", 30) == "" and other
    store.release(ANN, "jira", other)
    store.release(ANN, "gh", "another-holders-nonce")
    assert store.claim(ANN, "gh", 30) == ""
    store.release(ANN, "gh", lease)
    again = store.claim(ANN, "gh", 0.001)
    assert again and store.servers(ANN) == []  # (a lease is no connection)
    time.sleep(0.01)  # the lease's own time running out, not a wait for another process
    last = store.claim(ANN, "gh", 30)
    assert last, "a holder that died holds it no longer"
    store.release(ANN, "gh", last)


@responses.activate
def test_callers_at_once_refresh_once(connections):
    expired(connections)
    responses.post(TOKEN_URL, json=FRESH)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: connections.token(ANN, GH), range(16)))
    assert got == ["new-access"] * 16
    assert len(responses.calls) == 1
    assert connections.tokens(ANN, "gh").refresh_token == "refresh-2"


@responses.activate
def test_while_another_refreshes_a_good_token_is_used_and_an_expired_one_waits_for_its_answer(connections):
    expired(connections, expires_at=time.time() + 30)  # due (REFRESH_AHEAD), still good
    lease = connections.store.claim(ANN, "gh", 30)  # another worker's refresh
    assert connections.token(ANN, GH) == "old-access" and len(responses.calls) == 0
    expired(connections)
    done = threading.Event()

    def refresher():
        done.wait(5)  # the waiting caller is in its loop
        connections.save(ANN, "gh", renewed_tokens(connections.tokens(ANN, "gh"), FRESH))
        connections.store.release(ANN, "gh", lease)

    threading.Thread(target=refresher).start()
    threading.Timer(0.2, done.set).start()
    assert connections.token(ANN, GH) == "new-access" and len(responses.calls) == 0


@responses.activate
def test_a_connection_revoked_during_its_refresh_stays_revoked(connections):
    expired(connections)

    def answer(request):
        connections.forget(ANN, "gh")  # an admin's DELETE on another replica, while the provider answers
        return 200, {}, '{"access_token": "new-access", "refresh_token": "refresh-2", "expires_in": 3600}'

    responses.add_callback(responses.POST, TOKEN_URL, callback=answer, content_type="application/json")
    assert connections.token(ANN, GH) is None
    assert connections.connected(ANN) == []


@responses.activate
def test_a_refused_refresh_forgets_only_the_row_it_was_made_from(connections):
    expired(connections)

    def refused(request):  # the person connected again meanwhile (a new row), then the old refresh is refused
        connections.save(ANN, "gh", Tokens("reconnected", "refresh-9", time.time() + 3600, TOKEN_URL, client_id="cot"))
        return 400, {}, '{"error": "invalid_grant"}'

    responses.add_callback(responses.POST, TOKEN_URL, callback=refused, content_type="application/json")
    assert connections.token(ANN, GH) == "reconnected"
    assert connections.connected(ANN) == ["gh"]


def test_a_short_lived_token_is_refreshed_after_half_its_life_a_long_one_a_minute_ahead():
    old = Tokens("a", "r", 0.0, TOKEN_URL)
    short = renewed_tokens(old, {"access_token": "b", "expires_in": 4})
    assert short.expires_at - short.refresh_at == pytest.approx(2.0)
    long = renewed_tokens(old, {"access_token": "b", "expires_in": 3600})
    assert long.expires_at - long.refresh_at == pytest.approx(REFRESH_AHEAD)
    assert renewed_tokens(old, {"access_token": "b"}).refresh_at == 0.0  # no expiry said: never due
    odd = renewed_tokens(old, {"access_token": "b", "expires_in": -30})
    assert odd.refresh_at <= odd.expires_at < time.time()  # an expiry in the past: due at once, not used past it


def test_a_call_in_flight_is_answered_when_another_workers_refresh_brings_a_new_token():
    old, new = "ann-token-before-0123456789", "ann-token-after-0123456789"
    with FakeRemote(people={old: ANN, new: ANN}) as remote:
        per_user = PerUser(McpServer("gh", url=remote.url, auth="per_user"), most=4)
        try:
            slow = {}
            running = threading.Thread(target=lambda: slow.setdefault("answer", call(per_user, "slow", {"seconds": 0.5},
                                                                                     person=ANN, token=old)))
            running.start()
            assert poll(lambda: [m for m, _, _ in remote.seen].count("POST") == 3, timeout=5)  # the call in flight
            assert call(per_user, "whoami", {"text": "x"}, id=2, person=ANN, token=new)["result"]["content"][0][
                "text"] == ANN  # the new token's session; the old one ends after its call
            running.join(10)
            assert slow["answer"]["result"]["content"][0]["text"] == "slept", slow
            assert poll(lambda: len(remote.sessions) == 1, timeout=5)  # the old session ended (its DELETE) after it
        finally:
            per_user.stop()


def test_a_call_that_has_its_session_but_has_not_sent_yet_keeps_the_token_the_session_opened_with():
    """A refresh elsewhere hands the retired session the person's new token for its end only: a call that took the
    session just before (its request not sent yet) still sends the old one, which the session belongs to (a server
    may hold a session to its token: the fake counts any other as crossed)."""
    old, new = "ann-token-before-0123456789", "ann-token-after-0123456789"
    with FakeRemote(people={old: ANN, new: ANN}) as remote:
        per_user = PerUser(McpServer("gh", url=remote.url, auth="per_user"), most=4)
        try:
            assert call(per_user, "whoami", {"text": "x"}, person=ANN, token=old)["result"]["content"][0]["text"] == ANN
            taken = per_user._session(ANN, old)  # a call between taking its session and sending its request
            assert call(per_user, "whoami", {"text": "y"}, id=2, person=ANN, token=new)["result"]["content"][0][
                "text"] == ANN  # the new token's session
            try:
                late = taken.call({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                   "params": {"name": "whoami", "arguments": {"text": "z"}}}, 10.0)
            finally:
                per_user._done(ANN, taken)
            assert late["result"]["content"][0]["text"] == ANN and remote.crossed == 0, late
            ended = poll(lambda: [h for m, _, h in remote.seen if m == "DELETE"], timeout=5)
            assert [h["Authorization"] for h in ended] == [f"Bearer {new}"]  # its end: with the newer token
        finally:
            per_user.stop()


def call(server, name, args, id=1, **kw):
    return server.call({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name,
                                                                                      "arguments": args}}, 10.0, **kw)


def test_a_store_that_fails_during_a_refresh_is_said_by_kind(tmp_path):
    class Failing(SQLiteCredentials):
        def claim(self, person, server, seconds):
            raise ConnectionError("redis://:secret-password@10.0.0.7:6379 is down")

    connections = Connections(Failing(str(tmp_path / "keys.db")), lambda: Vault(b"k" * 32))
    expired(connections)
    with pytest.raises(Unavailable) as refused:
        connections.token(ANN, GH)
    assert "secret-password" not in str(refused.value) and "ConnectionError" in str(refused.value)


def test_the_least_recently_used_session_closed_for_another_persons_first_answers_its_call():
    ann, bob = "ann-token-0123456789abcdef", "bob-token-0123456789abcdef"
    with FakeRemote(people={ann: ANN, bob: "person-bob"}) as remote:
        per_user = PerUser(McpServer("gh", url=remote.url, auth="per_user"), most=1)
        try:
            slow = {}
            running = threading.Thread(target=lambda: slow.setdefault("answer", call(per_user, "slow", {"seconds": 0.5},
                                                                                     person=ANN, token=ann)))
            running.start()
            assert poll(lambda: [m for m, _, _ in remote.seen].count("POST") == 3, timeout=5)
            assert call(per_user, "whoami", {"text": "x"}, id=2, person="person-bob", token=bob)["result"]["content"][
                0]["text"] == "person-bob"  # one session at most: Ann's is closed for Bob's, after her call
            running.join(10)
            assert slow["answer"]["result"]["content"][0]["text"] == "slept", slow
            assert per_user.status()["sessions"] == 1
        finally:
            per_user.stop()


LOCK_ON_THE_LOOP = r"""
from gevent import monkey; monkey.patch_all()
import os, sqlite3, sys, tempfile, time
import gevent
from argoproxy.teamkeys.credential_store import SQLiteCredentials

path = os.path.join(tempfile.mkdtemp(), "keys.db")
store = SQLiteCredentials(path)
store.put("person-ann", "gh", b"sealed")

def flush():  # the key store's usage flush: a write transaction that yields between its statements
    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("CREATE TABLE IF NOT EXISTS usage (n INTEGER)")
    gevent.sleep(0.3)
    db.execute("COMMIT")
    db.close()

holder = gevent.spawn(flush)
gevent.sleep(0.05)  # it holds the file's write lock now
began = time.monotonic()
assert store.delete("person-ann", "gh") == 1  # waits for it with the loop running, not 5 s and "database is locked"
took = time.monotonic() - began
holder.get(timeout=10)
assert took < 4, took
print("ok")
"""


def test_a_credential_write_waits_for_a_lock_held_on_the_same_loop_without_stopping_it():
    """SQLite's wait for the file's lock sleeps in C: on gevent's loop it stopped the greenlet that held the lock
    from ending its transaction, and a connect's callback waited 5 s for "database is locked" (a CI run's 500)."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", LOCK_ON_THE_LOOP], cwd=root, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
