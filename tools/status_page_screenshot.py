"""Make docs/img/status-page.png, the README's picture of the status page, from a real run: the proxy under
Gunicorn in front of the suite's fake OpenAI-compatible server, four team keys (one revoked, one over its
budget), a few requests, and headless chromium's screenshot of /ui.

    .venv/bin/python tools/status_page_screenshot.py [OUT.png]

Needs the test requirements (./run_tests.sh installs them) and chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.fake_openai import FakeOpenAI, Reply  # noqa: E402
from tests.integration.test_status_page import screenshot  # noqa: E402
from tests.integration.test_team_keys import create, keys  # noqa: E402
from tests.polling import poll  # noqa: E402
from tests.proxy_process import running_proxy  # noqa: E402

ADMIN = "admin-key-for-the-screenshot"
MSG = [{"role": "user", "content": "hi"}]
WIDTH, HEIGHT = 1100, 760


def main(out: Path) -> None:
    db = Path(tempfile.mkdtemp(prefix="cot_proxy_screenshot_")) / "keys.db"
    team = {"alice": create(db, "alice", "--rpm", "60", "--tpm", "100000", "--budget", "50000/day"),
            "bob": create(db, "bob", "--rpm", "5", "--budget", "40/day", "--models", "gpt-4o*"),
            "dave": create(db, "dave", "--max-parallel", "2")}
    create(db, "carol", "--budget", "1000/week")
    keys(db, "revoke", "carol")
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET=ADMIN, KEYS_DB=str(db), WORKERS="2",
                                             MAX_RETRIES="0") as proxy:
        def ask(key: str | None, model: str = "gpt-4o") -> int:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return requests.post(proxy.base_url + "/chat/completions", json={"model": model, "messages": MSG},
                                 headers=headers, timeout=30).status_code
        for name, times in (("alice", 7), ("bob", 8), ("dave", 2)):  # bob's last four: over his budget
            for _ in range(times):
                ask(team[name])
        ask(team["bob"], "claude-x")  # a model his globs leave out
        ask(None)  # no key
        fake.add(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=503,
                       path="/chat/completions"))
        ask(ADMIN)
        auth = {"Authorization": f"Bearer {ADMIN}"}

        def counted() -> bool:  # usage rows are written in batches
            rows = requests.get(proxy.url + "/ui/data", headers=auth, timeout=30).json()["limits"]
            return any(r["key"] == "alice" and r["budget_used"] for r in rows)
        poll(counted, timeout=20)
        screenshot(f"{proxy.url}/ui#key={ADMIN}", out, WIDTH, HEIGHT, budget_ms=3000)
    print(f"{out}: {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img" / "status-page.png")
