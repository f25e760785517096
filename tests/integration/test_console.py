"""The console and its API on the real app under Gunicorn (two workers, one proxy for the module): a key made
through /admin/v1/ works at once and is refused on every worker within a second of its revoke; each refusal
(no key, a team key, a page of another site) changes nothing; no secret reaches the log or an answer but the
create answer; and in Debian's chromium, over the DevTools protocol, the console at /ui opened with the admin key
creates a key, lists it, shows its usage and revokes it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.console_browser import Browser
from tests.polling import poll
from tests.proxy_process import running_proxy

ADMIN = "admin-console-e2e-key"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory) -> Iterator[Any]:
    db = tmp_path_factory.mktemp("console") / "keys.db"
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                                             KEYS_DB=str(db), WORKERS="2") as running:
        running.fake = fake
        yield running


def admin(proxy, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, proxy.url + "/admin/v1/" + path, headers={**AUTH, **kwargs.pop("headers", {})},
                            timeout=30, **kwargs)


def chat(proxy, key: str) -> int:
    return requests.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": MSG},
                         headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


def test_a_key_made_by_the_api_works_and_its_revoke_holds_on_every_worker(proxy):
    made = admin(proxy, "POST", "keys", json={"name": "e2e-alice", "rpm": 100})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert all(chat(proxy, key) == 200 for _ in range(4))  # two workers: both know it
    rows = poll(lambda: [r for r in admin(proxy, "GET", "usage?group=key&key=e2e-alice").json()["data"]
                         if r["requests"] == 4], timeout=20)
    assert rows and rows[0]["tokens"] == 4 * proxy.fake.usage["total_tokens"]
    assert admin(proxy, "DELETE", "keys/e2e-alice").json()["state"] == "revoked"
    revoked_at = time.monotonic()
    assert poll(lambda: all(chat(proxy, key) == 401 for _ in range(4)), timeout=5)
    assert time.monotonic() - revoked_at < 2.0
    listed = admin(proxy, "GET", "keys").text + admin(proxy, "GET", "audit").text
    log = proxy.read_log()
    assert key not in listed and key not in log and ADMIN not in log and key[12:] not in listed


def test_refusals_change_nothing(proxy):
    team_key = admin(proxy, "POST", "keys", json={"name": "e2e-team-key"}).json()["key"]
    before = admin(proxy, "GET", "audit").json()["data"]
    for headers, status, code in (({}, 401, "missing_api_key"),
                                  ({"Authorization": f"Bearer {team_key}"}, 403, "admin_key_required"),
                                  ({**AUTH, "Origin": "http://evil.example"}, 403, "origin_not_allowed")):
        answer = requests.post(proxy.url + "/admin/v1/keys", json={"name": "e2e-never"}, headers=headers, timeout=30)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
        assert team_key not in answer.text and ADMIN not in answer.text
    assert admin(proxy, "GET", "audit").json()["data"] == before
    assert "e2e-never" not in admin(proxy, "GET", "keys").text


# ---------------------------------------------------------------- chromium, over the DevTools protocol
def test_the_console_in_chromium_creates_lists_uses_and_revokes_a_key(proxy, tmp_path: Path):
    pytest.importorskip("websockets")
    browser = Browser()
    try:
        browser.call("Page.navigate", url=f"{proxy.url}/ui#key={ADMIN}")
        assert browser.until("document.body !== null && document.body.dataset.console === 'ready'")
        browser.js("document.getElementById('tab-keys').click()")
        browser.js("""(() => { const f = document.getElementById('console-key-form');
            f.elements.name.value = 'chromium-key'; f.elements.rpm.value = '50'; f.requestSubmit(); })()""")
        secret = browser.until("document.getElementById('console-secret').textContent")
        assert secret.startswith("sk-proxy-")
        assert browser.until("[...document.querySelectorAll('#console-keys td')].some(td => td.textContent === "
                             "'chromium-key')")
        assert chat(proxy, secret) == 200
        browser.js("document.getElementById('tab-usage').click()")
        browser.js("document.getElementById('console-usage-group').value = 'key'")
        assert browser.until("""(async () => { document.getElementById('console-usage-group')
            .dispatchEvent(new Event('change')); await new Promise(r => setTimeout(r, 200));
            return [...document.querySelectorAll('#console-usage td')].some(td => td.textContent === 'chromium-key')
              && Number(document.getElementById('console-chart').dataset.bars) > 0; })()""", timeout=20)
        browser.js("document.getElementById('tab-keys').click()")
        browser.js("window.confirm = () => true")  # the revoke button asks first
        assert browser.until("document.querySelector('button.revoke[data-name=\"chromium-key\"]') !== null")
        browser.js("document.querySelector('button.revoke[data-name=\"chromium-key\"]').click()")
        assert browser.until("[...document.querySelectorAll('#console-keys tr.revoked td')].some(td => "
                             "td.textContent === 'chromium-key')")
        assert poll(lambda: chat(proxy, secret) == 401, timeout=5)
        browser.js("document.getElementById('tab-audit').click()")
        assert browser.until("[...document.querySelectorAll('#console-audit td')].some(td => td.textContent === "
                             "'keys.revoke')")
        page = browser.js("document.documentElement.outerHTML")
        assert ADMIN not in page
        shot = browser.call("Page.captureScreenshot", format="png")["data"]
        (tmp_path / "console-audit.png").write_bytes(__import__("base64").b64decode(shot))
    finally:
        browser.close()
