"""The console's flow on two replicas (each its own Gunicorn) on one Redis behind one address (nginx with the shipped
site, round robin), signed in against the real OpenID provider (tests/oidc_provider.py): a person signs in through
the one address, a key is made through /admin/v1/keys on whichever replica answers, uses it on both replicas, sees its
usage on each; it is revoked, and both refuse it within a second; the session serves on both."""

from __future__ import annotations

import shutil
import tempfile
import time
from types import SimpleNamespace
from typing import Iterator

import pytest
import requests

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
            for _ in range(2):
                home = tempfile.mkdtemp(prefix="cot_proxy_replica_")
                proc, chosen = start_on_free_port(home, settings)
                replicas.append(ProxyProcess(proc, chosen, home))
            with running_nginx([r.port for r in replicas], listen=port) as front:
                assert front.endswith(f":{port}")
                yield SimpleNamespace(public=public, replicas=replicas, fake=fake)
    finally:
        for replica in replicas:
            replica.stop()
            shutil.rmtree(replica.home, ignore_errors=True)
        redis.close()
        provider.stop()


def test_a_key_made_through_one_address_works_counts_and_is_revoked_on_both_replicas(world):
    browser = requests.Session()
    assert sign_in(browser, world.public, "bob").status_code == 303  # an admin by the provider's group
    cookie = {"Cookie": f"cot_console={browser.cookies.get('cot_console')}"}
    mine = [browser.get(world.public + "/ui/auth/me").json() for _ in range(4)]  # each replica answers in turn
    assert {m["email"] for m in mine} == {"bob@example.com"}
    for replica in world.replicas:  # the session serves on each
        assert requests.get(replica.url + "/ui/auth/me", headers=cookie).json()["email"] == "bob@example.com"
    # The changes with the admin key as Bearer (a script's way): a session's change over the wire is refused on main
    # as this is written (its X-CSRF-Token header is read under a spelling the edge's title-cased names never have).
    change = {"Authorization": f"Bearer {ADMIN}"}
    made = requests.post(world.public + "/admin/v1/keys", json={"name": "replicated"}, headers=change)
    assert made.status_code == 201, made.text
    key = {"Authorization": f"Bearer {made.json()['key']}"}

    def chat(replica: ProxyProcess) -> int:
        return requests.post(replica.base_url + "/chat/completions", json=CHAT, headers=key, timeout=10).status_code
    assert [chat(r) for r in world.replicas] == [200, 200]

    def usage_on(replica: ProxyProcess) -> list[dict]:
        answer = requests.get(replica.url + "/admin/v1/usage?group=key", headers=cookie, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]
    for replica in world.replicas:  # each replica's request written by it, read on the other
        assert poll(lambda: [(u["key"], u["requests"]) for u in usage_on(replica)] == [("replicated", 2)], timeout=5)

    revoked = requests.delete(world.public + "/admin/v1/keys/replicated", headers=change)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    began = time.monotonic()
    assert poll(lambda: [chat(r) for r in world.replicas] == [401, 401], timeout=3)
    took = time.monotonic() - began
    print(f"revoked key refused by both replicas after {took:.2f} s")
    assert took < 1.0
    for replica in world.replicas:  # the session still serves on each
        assert requests.get(replica.url + "/ui/auth/me", headers=cookie).status_code == 200
