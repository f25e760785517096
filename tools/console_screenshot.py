"""Make docs/img/console-keys.png, console-usage.png and console-requests.png, docs/console.md's pictures, from a
real run: the proxy under Gunicorn in front of the suite's fake OpenAI-compatible server with sign-in at the suite's
real OpenID provider (tests/oidc_provider.py), a team made through /admin/v1/ with the admin key, a few keys made
and used by a person, and headless chromium (over its DevTools protocol) signed in as that person: on My keys just
after it made a key, on My usage by key, and on Requests with a request's details.

    .venv/bin/python tools/console_screenshot.py [OUT_DIR]

Needs the test requirements (./run_tests.sh installs them), chromium and the provider (tools/build_oidc_provider.sh).
"""

from __future__ import annotations

import base64
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.fake_openai import FakeOpenAI  # noqa: E402
from tests.console_browser import Browser, settled  # noqa: E402
from tests.integration.test_console_people import Person  # noqa: E402
from tests.integration.test_signin import proxy_on  # noqa: E402
from tests.oidc_provider import PASSWORD, OidcProvider, signin_settings  # noqa: E402
from tests.polling import poll  # noqa: E402
from tests.proxy_process import free_port  # noqa: E402

ADMIN = "admin-key-for-the-screenshot"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
WIDTH, HEIGHT = 1200, 700


def shot(browser: Browser, path: Path) -> None:
    path.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
    print(f"wrote {path}")


def main(out: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cot_proxy_screenshot_"))
    port = free_port()
    public = f"http://localhost:{port}"
    provider = OidcProvider(public, f"http://localhost:{free_port()}").start()
    try:
        with FakeOpenAI() as fake:
            proxy = proxy_on(port, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                             KEYS_DB=str(folder / "keys.db"), LOG_DIR=str(folder / "logs"),
                             **signin_settings(provider, public))
            try:
                made_by_a_person(proxy, public)
                pictures(public, out)
            finally:
                proxy.stop()
    finally:
        provider.stop()
        shutil.rmtree(folder, ignore_errors=True)


def made_by_a_person(proxy, public: str) -> None:
    """A team for the provider's group `eng`, and alice's keys, used a few times."""
    requests.post(proxy.url + "/admin/v1/teams", json={"name": "research", "groups": ["eng"], "rpm": 600,
                                                       "budget_usd": "200/month"}, headers=AUTH, timeout=30)
    alice = Person(SimpleNamespace(public=public), "alice")
    for name, body, uses in (("alice-laptop", {"rpm": 60, "budget": "500000/day"}, 5),
                             ("alice-ci", {"rpm": 120, "budget_usd": "20/month", "models": ["gpt-4o*"]}, 3),
                             ("alice-old", {"tpm": 10000}, 1)):
        key = alice.api("POST", "keys", json={"name": name, **body}).json()["key"]
        for _ in range(uses):
            requests.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": [
                {"role": "user", "content": "hi"}]}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    alice.api("DELETE", "keys/alice-old")
    poll(lambda: len(alice.api("GET", "usage?group=key").json()["data"]) == 3, timeout=20)
    poll(lambda: len(alice.api("GET", "requests").json()["data"]) == 9, timeout=20)


def pictures(public: str, out: Path) -> None:
    browser = Browser()
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                     mobile=False)
        browser.call("Page.navigate", url=public + "/ui/auth/login")
        settled(browser, "document.querySelector('input[name=login]') !== null")
        browser.js(f"""(() => {{ const f = document.forms[0]; f.elements.login.value = 'alice';
            f.elements.password.value = {PASSWORD!r}; f.submit(); }})()""")
        settled(browser, "document.body.dataset.console === 'ready'", timeout=20)
        browser.js("document.getElementById('tab-keys').click()")
        browser.js("""(() => { const f = document.getElementById('console-key-form');
            f.elements.name.value = 'alice-desktop'; f.elements.rpm.value = '60'; f.requestSubmit(); })()""")
        browser.until("document.getElementById('console-secret').textContent")
        shot(browser, out / "console-keys.png")
        browser.js("document.getElementById('tab-usage').click()")
        browser.js("""(() => { const s = document.getElementById('console-usage-group'); s.value = 'key';
            s.dispatchEvent(new Event('change')); })()""")
        browser.until("Number(document.getElementById('console-chart').dataset.bars) === 2 && "
                      "document.querySelector('#console-usage thead th').textContent === 'key' && "
                      "document.querySelectorAll('#console-budgets tbody tr').length > 0")
        shot(browser, out / "console-usage.png")
        browser.js("document.getElementById('tab-requests').click()")
        browser.until("document.querySelectorAll('#console-requests tbody tr').length === 9")
        browser.js("document.querySelector('#console-requests button').click()")
        browser.until("document.getElementById('console-request-detail').textContent.includes('line')")
        shot(browser, out / "console-requests.png")
    finally:
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img")
