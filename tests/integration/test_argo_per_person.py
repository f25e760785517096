"""Issue 72, item 3: ARGO per person, through the running app against fake ARGO (standard mode) and a fake of
ARGO's OpenAI-compatible API (native mode). Each request reaches ARGO with, as `user`, its key's own ARGO username,
else its owner's, else (USERNAME_PASSTHROUGH) the client's other key header, else the configured user: on chat
and embeddings, in both modes; two people's requests at once never cross; an admin's change is in force within
a second. One store and two proxies (one per mode) for the module."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
import requests

from argoproxy.people import Person, person_id
from argoproxy.teamkeys import people_cli
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.fakes.argo_rules import native_refusal
from tests.fakes.fake_argo import CHAT_PATH, EMBED_PATH, FakeArgo
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_argo import argo_env
from tests.polling import poll
from tests.proxy_process import running_proxy

ISSUER = "https://login.example.com"
KEYS = {"ann": "sk-ann-key", "bob": "sk-bob-key", "svc": "sk-svc-key", "plain": "sk-plain-key"}
EACH = 20  # requests per person at once, per mode


@pytest.fixture(scope="module")
def world() -> Iterator[SimpleNamespace]:
    folder = Path(tempfile.mkdtemp(prefix="cot_proxy_argo_people_"))
    store = SQLiteKeyStore(folder / "keys.db")
    people = {}
    for login in ("ann", "bob"):
        person = Person(person_id(ISSUER, login), login, ISSUER, email=f"{login}@example.com", email_verified=True)
        people[login] = store.signed_in(person, rule_admin=False)
        store.set_person_argo_user(people[login].id, f"{login}.argo")
    store.create(KeyRecord("ann-key", digest(KEYS["ann"]), "sk-ann", owner=people["ann"].id))
    store.create(KeyRecord("bob-key", digest(KEYS["bob"]), "sk-bob", owner=people["bob"].id))
    store.create(KeyRecord("svc", digest(KEYS["svc"]), "sk-svc", owner=people["ann"].id, argo_user="svc.argo"))
    store.create(KeyRecord("plain", digest(KEYS["plain"]), "sk-pla"))
    settings = {"ENABLE_AUTH": "true", "KEYS_DB": str(store.path), "USERNAME_PASSTHROUGH": "true"}
    try:
        with FakeArgo() as argo, FakeOpenAI(refuse=native_refusal) as native:
            with running_proxy(**argo_env(argo, **settings)) as standard, \
                    running_proxy(**argo_env(argo, USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=native.base_url,
                                             **settings)) as native_proxy:
                yield SimpleNamespace(argo=argo, native=native, standard=standard, native_proxy=native_proxy,
                                      db=store.path, people=people)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def chat(proxy: Any, key: str, text: str, **headers: str) -> requests.Response:
    return requests.post(proxy.base_url + "/chat/completions", timeout=30,
                         headers={"Authorization": f"Bearer {key}", **headers},
                         json={"model": "argo:gpt-4o", "messages": [{"role": "user", "content": text}]})


def embed(proxy: Any, key: str, text: str) -> requests.Response:
    return requests.post(proxy.base_url + "/embeddings", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                         json={"model": "argo:text-embedding-3-small", "input": [text]})


def sent(world: SimpleNamespace, native: bool, path: str) -> list[dict[str, Any]]:
    """The bodies ARGO received on chat or embeddings, in that mode."""
    if native:
        return [r.json() for r in world.native.received if r.path.rstrip("/").endswith(path)]
    return [r.json for r in world.argo.requests_to(CHAT_PATH if path == "chat/completions" else EMBED_PATH)]


def text_of(body: dict[str, Any]) -> str:
    """The tag a request was sent with: its message's text (standard mode may put it in `prompt`), or its input."""
    if "input" in body:
        return str(body["input"][0])
    return str([m.get("content") for m in body.get("messages", [])] + list(body.get("prompt") or []))


@pytest.mark.parametrize("native", [False, True], ids=["translated", "native"])
def test_two_people_at_once_each_reach_argo_as_themselves(world, native):
    proxy = world.native_proxy if native else world.standard
    failures: list[str] = []

    def person(login: str) -> None:
        for n in range(EACH):
            for answer in (chat(proxy, KEYS[login], f"tag-{login}-{n}"), embed(proxy, KEYS[login], f"tag-{login}-{n}")):
                if answer.status_code != 200:
                    failures.append(f"{login} {n}: {answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=person, args=(login,)) for login in ("ann", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    for path in ("chat/completions", "embeddings"):
        seen = [(b["user"], text_of(b)) for b in sent(world, native, path) if "tag-" in text_of(b)]
        assert len(seen) >= 2 * EACH
        crossed = [(user, text) for user, text in seen if f"tag-{user.split('.')[0]}-" not in text]
        assert crossed == [] and {user for user, _ in seen} == {"ann.argo", "bob.argo"}


@pytest.mark.parametrize("native", [False, True], ids=["translated", "native"])
def test_the_key_s_own_then_its_owner_s_then_passthrough_then_the_configured_user(world, native):
    proxy = world.native_proxy if native else world.standard
    for key, extra, expected in ((KEYS["svc"], {}, "svc.argo"),  # its own, over its owner's (ann.argo)
                                 (KEYS["ann"], {"api-key": "mallory"}, "ann.argo"),  # a person's over passthrough
                                 (KEYS["plain"], {"api-key": "dave"}, "dave"),  # no name: USERNAME_PASSTHROUGH
                                 (KEYS["plain"], {}, "alice")):  # nothing else: the configured user
        answer = chat(proxy, key, f"order-{expected}", **extra)
        assert answer.status_code == 200, answer.text
        assert sent(world, native, "chat/completions")[-1]["user"] == expected
    answer = embed(proxy, KEYS["svc"], "order-embed")
    assert answer.status_code == 200 and sent(world, native, "embeddings")[-1]["user"] == "svc.argo"


def test_an_admin_s_change_of_a_person_s_name_is_in_force_within_a_second(world):
    people_command(world.db, "update", "bob@example.com", "--argo-user", "robert")
    try:
        def bob_is() -> str:
            assert chat(world.standard, KEYS["bob"], "renamed").status_code == 200
            return str(sent(world, False, "chat/completions")[-1]["user"])
        assert poll(lambda: bob_is() == "robert", timeout=5)
        people_command(world.db, "update", "bob@example.com", "--argo-user", "none")  # none: passthrough, then the user
        assert poll(lambda: bob_is() == "alice", timeout=5)
    finally:
        people_command(world.db, "update", "bob@example.com", "--argo-user", "bob.argo")


def people_command(db: Path, *args: str) -> None:
    err = io.StringIO()
    settings = SimpleNamespace(redis_url="", keys_db=str(db), enable_auth=True, oidc_inactive_days=90.0)
    with contextlib.redirect_stderr(err):
        assert people_cli.main(list(args), lambda flags: settings) == 0, err.getvalue()
