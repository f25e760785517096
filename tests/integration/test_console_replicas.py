"""The console's flow on two replicas (each its own Gunicorn, journals on) on one Redis behind one address (nginx with
the shipped site, round robin), signed in against the real OpenID provider (tests/oidc_provider.py). With `requests`:
a person signs in through the one address, a key is made through /admin/v1/keys with the admin key on whichever
replica answers, used on both replicas, its usage seen on each; it is revoked, and both refuse it within a second; the
session serves on both. In chromium at the one address: a person signs in, makes a key (their session and its CSRF
token), uses it, sees its usage and its request, revokes it and signs out; asked at each replica's own port meanwhile,
the session, its changes, the key and the request's journal line work on both. A person disabled on one replica is
refused on the other, session and key, within a second."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
import requests

from tests import console_browser as page
from tests.clients import openai_sdk
from tests.console_browser import Browser
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_scale_out import running_nginx
from tests.oidc_provider import OidcProvider, sign_in, signin_settings
from tests.polling import poll
from tests.proxy_process import ProxyProcess, free_port, start_on_free_port
from tests.redis_server import RedisServer

ADMIN = "admin-key-for-the-replica-tests"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def world() -> Iterator[SimpleNamespace]:
    port = free_port()
    public = f"http://localhost:{port}"  # the provider lives on 127.0.0.1: the two sites' cookies stay apart
    provider = OidcProvider(public).start()
    redis = RedisServer().start()
    replicas: list[ProxyProcess] = []
    try:
        with FakeOpenAI() as fake:
            settings = {"TARGET_BASE_URL": fake.base_url, "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN,
                        "REDIS_URL": redis.url, **signin_settings(provider, public)}
            for _ in range(2):  # each its own journal, as on two hosts
                home = tempfile.mkdtemp(prefix="cot_proxy_replica_")
                proc, chosen = start_on_free_port(home, {**settings, "LOG_DIR": str(Path(home, "logs"))})
                replicas.append(ProxyProcess(proc, chosen, home))
            with running_nginx([r.port for r in replicas], listen=port) as front:
                assert front.endswith(f":{port}")
                assert requests.post(public + "/admin/v1/teams", json={"name": "eng", "groups": ["eng"]},
                                     headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30).status_code == 201
                yield SimpleNamespace(public=public, replicas=replicas, fake=fake)
    finally:
        for replica in replicas:
            replica.stop()
            shutil.rmtree(replica.home, ignore_errors=True)
        redis.close()
        provider.stop()


def chat(replica: ProxyProcess, key: str) -> int:
    return requests.post(replica.base_url + "/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"},
                         timeout=10).status_code


def test_a_key_made_through_one_address_works_counts_and_is_revoked_on_both_replicas(world):
    browser = requests.Session()
    assert sign_in(browser, world.public, "bob").status_code == 303  # an admin by the provider's group
    cookie = {"Cookie": f"cot_console={browser.cookies.get('cot_console')}"}
    mine = [browser.get(world.public + "/ui/auth/me").json() for _ in range(4)]  # each replica answers in turn
    assert {m["email"] for m in mine} == {"bob@example.com"}
    for replica in world.replicas:  # the session serves on each
        assert requests.get(replica.url + "/ui/auth/me", headers=cookie).json()["email"] == "bob@example.com"
    # The changes with the admin key as Bearer (a script's way); a person's own, with their session, in chromium below
    change = {"Authorization": f"Bearer {ADMIN}"}
    made = requests.post(world.public + "/admin/v1/keys", json={"name": "replicated"}, headers=change)
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert [chat(r, key) for r in world.replicas] == [200, 200]

    def usage_on(replica: ProxyProcess) -> list[dict]:
        answer = requests.get(replica.url + "/admin/v1/usage?group=key", headers=cookie, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]
    for replica in world.replicas:  # each replica's request written by it, read on the other
        assert poll(lambda: [(u["key"], u["requests"]) for u in usage_on(replica) if u["key"] == "replicated"]
                    == [("replicated", 2)], timeout=5)

    revoked = requests.delete(world.public + "/admin/v1/keys/replicated", headers=change)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    began = time.monotonic()
    assert poll(lambda: [chat(r, key) for r in world.replicas] == [401, 401], timeout=3)
    took = time.monotonic() - began
    print(f"revoked key refused by both replicas after {took:.2f} s")
    assert took < 1.0
    for replica in world.replicas:  # the session still serves on each
        assert requests.get(replica.url + "/ui/auth/me", headers=cookie).status_code == 200


def test_in_chromium_a_person_makes_a_key_through_one_address_and_each_replica_serves_their_session_and_key(world):
    pytest.importorskip("websockets")
    browser = Browser()
    try:
        assert page.sign_in(browser, world.public, "alice") == "Alice"  # a member of eng, no admin
        secret = page.make_key(browser, "chromium-alice", "eng")  # her session and its CSRF token, through nginx
        assert secret.startswith("sk-proxy-")
        session = {"Cookie": f"cot_console={browser.cookie('cot_console')}"}
        for rpm, replica in enumerate(world.replicas, 40):  # the session at each replica's own port: reads and changes
            me = requests.get(replica.url + "/ui/auth/me", headers=session, timeout=10).json()
            assert me["email"] == "alice@example.com"
            changed = requests.patch(replica.url + "/admin/v1/keys/chromium-alice", json={"rpm": rpm}, timeout=10,
                                     headers={**session, "Origin": replica.url, "X-CSRF-Token": me["csrf"]})
            assert changed.status_code == 200 and changed.json()["rpm"] == rpm, changed.text
            assert openai_sdk(replica, secret).chat.completions.create(**CHAT).choices  # the key on each
        assert page.usage_shows(browser, "chromium-alice")
        assert '"line_missing"' not in page.request_detail(browser, "chromium-alice")

        def logged() -> list[dict]:
            return requests.get(world.public + "/admin/v1/requests?key=chromium-alice", headers=session,
                                timeout=10).json()["data"]
        rows = poll(lambda: len(logged()) == 2 and logged(), timeout=10)
        assert rows and {next(r.home for r in world.replicas if row["file"].startswith(r.home + "/")) for row in rows} \
            == {r.home for r in world.replicas}, "one request in each replica's own journal, both in the one log"
        for row, replica in ((row, replica) for row in rows for replica in world.replicas):  # each line, each host
            found = requests.get(f"{replica.url}/admin/v1/requests/{row['request_id']}", headers=session,
                                 timeout=10).json()
            assert found["line"]["request_id"] == row["request_id"], found.get("line_missing")

        assert page.revoke(browser, "chromium-alice")
        assert poll(lambda: [chat(r, secret) for r in world.replicas] == [401, 401], timeout=3)
        assert page.sign_out(browser, world.public)
        assert [requests.get(r.url + "/ui/auth/me", headers=session, timeout=10).status_code
                for r in world.replicas] == [401, 401]
    finally:
        browser.close()


def test_a_person_disabled_on_one_replica_is_refused_on_the_other_within_a_second(world):
    browser = requests.Session()
    assert sign_in(browser, world.public, "erin").status_code == 303
    session = {"Cookie": f"cot_console={browser.cookies.get('cot_console')}"}
    admin = {"Authorization": f"Bearer {ADMIN}"}
    made = requests.post(world.public + "/admin/v1/keys", json={"name": "erin-key", "owner": "erin@example.com"},
                         headers=admin, timeout=10)
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    one, other = world.replicas
    assert chat(other, key) == 200
    assert requests.post(one.url + "/admin/v1/people/erin@example.com/disable", headers=admin,
                         timeout=10).json()["state"] == "disabled"
    began = time.monotonic()
    assert poll(lambda: chat(other, key) == 401, timeout=3)
    assert requests.get(other.url + "/ui/auth/me", headers=session, timeout=10).status_code == 401
    took = time.monotonic() - began
    print(f"a person disabled on one replica: their key and session refused on the other after {took:.2f} s")
    assert took < 1.0
