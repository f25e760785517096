"""Make docs/img/console-keys.png and docs/img/console-usage.png, docs/console.md's pictures, from a real run: the
proxy under Gunicorn in front of the suite's fake OpenAI-compatible server, a team and three keys made through
/admin/v1/, a few requests, and headless chromium (over its DevTools protocol) on the console's Keys tab just after
it made a key, then on its Usage tab by key.

    .venv/bin/python tools/console_screenshot.py [OUT_DIR]

Needs the test requirements (./run_tests.sh installs them) and chromium.
"""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.fake_openai import FakeOpenAI  # noqa: E402
from tests.integration.test_console import Browser  # noqa: E402
from tests.polling import poll  # noqa: E402
from tests.proxy_process import running_proxy  # noqa: E402

ADMIN = "admin-key-for-the-screenshot"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
WIDTH, HEIGHT = 1200, 700


def shot(browser: Browser, path: Path) -> None:
    path.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
    print(f"wrote {path}")


def main(out: Path) -> None:
    db = Path(tempfile.mkdtemp(prefix="cot_proxy_screenshot_")) / "keys.db"
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET=ADMIN, KEYS_DB=str(db), WORKERS="2") as proxy:
        api = proxy.url + "/admin/v1/"
        requests.post(api + "teams", json={"name": "research", "rpm": 600, "budget_usd": "200/month"},
                      headers=AUTH, timeout=30)
        for name, body, uses in (("alice-laptop", {"team": "research", "rpm": 60, "budget": "500000/day"}, 5),
                                 ("ci-bot", {"rpm": 120, "budget_usd": "20/month", "models": ["gpt-4o*"]}, 3),
                                 ("old-script", {"tpm": 10000}, 1)):
            key = requests.post(api + "keys", json={"name": name, **body}, headers=AUTH, timeout=30).json()["key"]
            for _ in range(uses):
                requests.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": [
                    {"role": "user", "content": "hi"}]}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        requests.delete(api + "keys/old-script", headers=AUTH, timeout=30)
        poll(lambda: len(requests.get(api + "usage?group=key", headers=AUTH, timeout=30).json()["data"]) == 3,
             timeout=20)
        browser = Browser()
        try:
            browser.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                         mobile=False)
            browser.call("Page.navigate", url=f"{proxy.url}/ui#key={ADMIN}")
            browser.until("document.body !== null && document.body.dataset.console === 'ready'")
            browser.js("document.getElementById('tab-keys').click()")
            browser.js("""(() => { const f = document.getElementById('console-key-form');
                f.elements.name.value = 'bob-desktop'; f.elements.team.value = 'research';
                f.elements.rpm.value = '60'; f.requestSubmit(); })()""")
            browser.until("document.getElementById('console-secret').textContent")
            shot(browser, out / "console-keys.png")
            browser.js("document.getElementById('tab-usage').click()")
            browser.js("""(() => { const s = document.getElementById('console-usage-group'); s.value = 'key';
                s.dispatchEvent(new Event('change')); })()""")
            browser.until("Number(document.getElementById('console-chart').dataset.bars) === 3 && "
                          "document.querySelector('#console-usage thead th').textContent === 'key'")
            shot(browser, out / "console-usage.png")
        finally:
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img")
