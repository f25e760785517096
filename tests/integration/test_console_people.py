"""The console's API for people, end to end: the real app under Gunicorn, signed in at a real OpenID provider
(npm's oidc-provider: tests/oidc_provider.py) with a cookie jar as a browser keeps one. A person makes a key within
their team's limits and is refused one beyond them or for another person, uses it with the openai SDK, sees their
usage equal `keys usage --csv` for their keys to the token and the cent, sees the request in the request log (with
its journal line), and revokes it; a lead sees their team's keys and not another team's, and changes their team's
limits but not another's; an admin disables the person, whose session and keys stop within a second. One provider
and one proxy for the module."""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import openai
import pytest
import requests

from argoproxy.teamkeys import teams_cli
from tests.clients import openai_sdk
from tests.console_browser import Browser, make_key, request_detail, revoke, sign_out, usage_shows
from tests.console_browser import sign_in as sign_in_in
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_signin import cli, proxy_on
from tests.keys_cli import run_keys
from tests.oidc_provider import OidcProvider, sign_in, signin_settings
from tests.polling import poll
from tests.proxy_process import free_port

ADMIN = "admin-key-for-console-people"
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def world() -> Iterator[SimpleNamespace]:
    """A provider, a fake upstream, one proxy with journals on (the request log), and two teams: eng (alice's and
    bob's group; rpm 100, $50 a month) and sales (erin's group, erin its lead)."""
    port = free_port()
    public = f"http://localhost:{port}"
    provider = OidcProvider(public, f"http://localhost:{free_port()}").start()
    folder = Path(tempfile.mkdtemp(prefix="cot_proxy_console_people_"))
    db = folder / "keys.db"
    cli(teams_cli, db, "create", "eng", "--groups", "eng", "--rpm", "100", "--budget-usd", "50/month")
    cli(teams_cli, db, "create", "sales", "--groups", "sales", "--leads", "erin@example.com")
    proxy = None
    try:
        with FakeOpenAI() as fake:
            proxy = proxy_on(port, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                             KEYS_DB=str(db), LOG_DIR=str(folder / "logs"), **signin_settings(provider, public))
            yield SimpleNamespace(public=public, proxy=proxy, db=db, fake=fake)
    finally:
        if proxy is not None:
            proxy.stop()
        provider.stop()
        shutil.rmtree(folder, ignore_errors=True)


class Person:
    """A signed-in browser calling /admin/v1/ as the console page does (its CSRF token and Origin on changes)."""

    def __init__(self, world: SimpleNamespace, login: str) -> None:
        self.public, self.browser = world.public, requests.Session()
        assert sign_in(self.browser, world.public, login).status_code == 303
        self.me = self.browser.get(world.public + "/ui/auth/me", timeout=30).json()

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Origin": self.public, "X-CSRF-Token": self.me["csrf"]} if method != "GET" else {}
        return self.browser.request(method, f"{self.public}/admin/v1/{path}", headers=headers, timeout=30, **kwargs)


def test_a_person_makes_uses_sees_and_revokes_a_key_of_their_own(world):
    alice = Person(world, "alice")
    made = alice.api("POST", "keys", json={"name": "alice-laptop", "rpm": 50, "expires": "2031-01-01"})
    assert made.status_code == 201, made.text
    key, record = made.json()["key"], made.json()["record"]
    assert record["owner"] == alice.me["id"] and record["team"] == "eng"
    beyond = alice.api("POST", "keys", json={"name": "alice-big", "rpm": 500})
    assert beyond.status_code == 400 and beyond.json()["error"]["param"] == "rpm"
    theirs = alice.api("POST", "keys", json={"name": "alice-for-erin", "owner": "erin@example.com"})
    assert theirs.status_code == 403 and theirs.json()["error"]["code"] == "owner_not_allowed"
    assert {k["name"] for k in alice.api("GET", "keys").json()["data"]} == {"alice-laptop"}

    sdk = openai_sdk(world.proxy, key)
    for _ in range(3):
        assert sdk.chat.completions.create(model="gpt-4o", messages=MSG).choices[0].message.content

    def same_as_the_command_line():
        mine = alice.api("GET", "usage?format=csv").text.splitlines()
        every = run_keys("usage", "--csv", keys_db=world.db).stdout.splitlines()
        return mine[1:] and mine == [every[0]] + [line for line in every[1:] if line.startswith("alice-laptop,")] \
            and int(list(csv.reader(mine[1:]))[0][3]) == 3
    assert poll(same_as_the_command_line, timeout=20)
    row = next(csv.reader(alice.api("GET", "usage?format=csv").text.splitlines()[1:]))
    summed = alice.api("GET", "usage?group=key").json()["data"][0]
    assert (summed["key"], summed["requests"], summed["input_tokens"], summed["output_tokens"], summed["cost_usd"]) \
        == ("alice-laptop", 3, int(row[4]), int(row[5]), row[6])

    logged = poll(lambda: [r for r in alice.api("GET", "requests").json()["data"] if r["key"] == "alice-laptop"],
                  timeout=20)
    assert len(logged) == 3 and logged[0]["owner"] == alice.me["id"] and logged[0]["model"] == "gpt-4o"
    found = alice.api("GET", f"requests/{logged[0]['request_id']}").json()
    assert found["row"]["request_id"] == logged[0]["request_id"] and found["line"]["request_id"] == found["row"][
        "request_id"]
    erin = Person(world, "erin")  # another team's lead: none of it is hers
    assert erin.api("GET", f"requests/{logged[0]['request_id']}").status_code == 404
    assert erin.api("GET", "requests?key=alice-laptop").status_code == 404
    assert all(r["key"] != "alice-laptop" for r in erin.api("GET", "requests").json()["data"])
    assert erin.api("GET", "usage?format=csv").text.splitlines()[1:] == []

    assert alice.api("DELETE", "keys/alice-laptop").json()["state"] == "revoked"
    with pytest.raises(openai.AuthenticationError):
        poll(lambda: sdk.chat.completions.create(model="gpt-4o", messages=MSG) and False, timeout=3)
    seen = alice.api("GET", "keys").text + alice.api("GET", "me").text + world.proxy.read_log()
    assert key not in seen and key[12:] not in seen


def test_a_lead_sees_their_teams_keys_and_limits_and_not_anothers(world):
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert requests.post(world.proxy.url + "/admin/v1/keys", json={"name": "sales-bot", "team": "sales"},
                         headers=admin, timeout=30).status_code == 201
    assert Person(world, "alice").api("POST", "keys", json={"name": "alice-desk"}).status_code == 201
    erin = Person(world, "erin")
    assert erin.me["leads"] == ["sales"]
    assert {k["name"] for k in erin.api("GET", "keys").json()["data"]} == {"sales-bot"}
    assert erin.api("GET", "keys/alice-desk").status_code == 404
    assert erin.api("DELETE", "keys/alice-desk").status_code == 404
    assert erin.api("PATCH", "teams/sales", json={"rpm": 10}).json()["rpm"] == 10
    assert erin.api("PATCH", "teams/eng", json={"rpm": 1}).status_code == 403
    assert erin.api("PATCH", "teams/sales", json={"leads": ["erin@example.com", "alice@example.com"]}).status_code \
        == 403
    assert erin.api("GET", "audit").status_code == 403
    assert {t["name"] for t in erin.api("GET", "teams").json()["data"]} == {"sales"}


def test_an_admin_disables_a_person_and_their_session_and_keys_stop(world):
    alice = Person(world, "alice")
    key = alice.api("POST", "keys", json={"name": "alice-phone"}).json()["key"]
    sdk = openai_sdk(world.proxy, key)
    assert sdk.chat.completions.create(model="gpt-4o", messages=MSG).choices
    dave = Person(world, "dave")  # an admin (ADMIN_EMAILS, verified)
    assert dave.me["admin"] is True
    assert alice.api("POST", "people/alice@example.com/disable").status_code == 403  # not hers to do
    answer = dave.api("POST", "people/alice@example.com/disable")
    assert answer.status_code == 200 and answer.json()["state"] == "disabled"
    stopped = time.monotonic()
    assert alice.api("GET", "me").status_code == 401
    with pytest.raises(openai.AuthenticationError):
        poll(lambda: sdk.chat.completions.create(model="gpt-4o", messages=MSG) and False, timeout=3)
    assert time.monotonic() - stopped < 2.0
    audit = dave.api("GET", "audit").json()["data"]
    assert (audit[0]["who"], audit[0]["action"]) == ("dave@example.com", "people.disable")
    assert any(e["who"] == "alice@example.com" and e["action"] == "keys.create" for e in audit)
    assert dave.api("POST", "people/alice@example.com/enable").json()["state"] == "active"


# ---------------------------------------------------------------- chromium, over the DevTools protocol
def test_in_chromium_a_person_signs_in_makes_uses_sees_and_revokes_a_key_and_signs_out(world):
    pytest.importorskip("websockets")
    browser = Browser()
    try:
        assert sign_in_in(browser, world.public, "bob") == "Bob"
        secret = make_key(browser, "chromium-bob", "eng")
        assert secret.startswith("sk-proxy-")
        sdk = openai_sdk(world.proxy, secret)
        assert sdk.chat.completions.create(model="gpt-4o", messages=MSG).choices
        assert usage_shows(browser, "chromium-bob")
        assert '"line_missing"' not in request_detail(browser, "chromium-bob")
        assert revoke(browser, "chromium-bob")
        with pytest.raises(openai.AuthenticationError):
            poll(lambda: sdk.chat.completions.create(model="gpt-4o", messages=MSG) and False, timeout=3)
        assert secret not in browser.js("document.documentElement.outerHTML").replace(
            browser.js("document.getElementById('console-secret').textContent"), "")
        assert sign_out(browser, world.public)
    finally:
        browser.close()
