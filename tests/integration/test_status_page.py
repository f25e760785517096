"""The status page (/ui) in a real browser (Debian's chromium, headless): it loads, shows a request the test
just sent, and shows a deployment going down; its data is the admin key's only (client and team keys get a
403), and it holds nothing secret."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, chat_completion
from tests.proxy_process import running_proxy

ADMIN = "admin-status-key"
MSG = [{"role": "user", "content": "hi"}]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (Debian package chromium; .ci/apt-packages installs it)")


def rendered(url: str, budget_ms: int = 2000) -> str:
    """The page's DOM after its script ran for `budget_ms` of the browser's virtual time."""
    profile = tempfile.mkdtemp(prefix="cot_proxy_chromium_")
    try:
        done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                               "--dump-dom", url], capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_the_page_shows_requests_and_a_deployment_going_down():
    with FakeOpenAI() as good, FakeOpenAI() as bad:
        models = json.dumps([{"name": "gpt-4o", "backend": "openai", "base_url": good.base_url},
                             {"name": "flaky", "backend": "openai", "base_url": bad.base_url}])
        with running_proxy(MODELS=models, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN, MAX_RETRIES="0",
                           COOLDOWN_SECONDS="120") as proxy:
            auth = {"Authorization": f"Bearer {ADMIN}"}
            assert requests.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": MSG},
                                 headers=auth, timeout=30).status_code == 200
            page = rendered(f"{proxy.url}/ui#key={ADMIN}")
            assert "updated " in page and "/v1/chat/completions" in page and "gpt-4o" in page
            assert ">up<" in page and ">down<" not in page and ADMIN not in page

            # A front door's request is listed under the path the client used, not the chat path it was served
            # on; the page works under /ui/ too (its data was asked for at /ui/ui/data); a proxy-made key a
            # client wrote into a path is not shown.
            r = requests.post(proxy.url + "/v1/messages", json={"model": "gpt-4o", "max_tokens": 8, "messages": MSG},
                              headers=auth, timeout=30)
            assert r.status_code == 200, r.text
            pasted = "sk-proxy-" + "A" * 40
            requests.get(f"{proxy.url}/v1/models/{pasted}", headers=auth, timeout=30)
            page = rendered(f"{proxy.url}/ui/#key={ADMIN}")
            assert "updated " in page and "/v1/messages" in page, page[-3000:]
            page = rendered(f"{proxy.url}//ui#key={ADMIN}")  # `//ui/data` would be the host `ui`'s
            assert "updated " in page and "/v1/messages" in page, page[-3000:]
            recent = requests.get(proxy.url + "/ui/data", headers=auth, timeout=30).json()["recent"]
            assert [r["path"] for r in recent][:3] == ["/v1/models/[REDACTED]", "/v1/messages",
                                                        "/v1/chat/completions"], recent
            assert pasted not in json.dumps(recent)

            bad.server.shutdown()  # the flaky deployment's server goes away: its next request fails
            bad.server.server_close()
            r = requests.post(proxy.base_url + "/chat/completions", json={"model": "flaky", "messages": MSG},
                              headers=auth, timeout=30)
            assert r.status_code >= 500
            page = rendered(f"{proxy.url}/ui#key={ADMIN}")
            assert ">down<" in page and "flaky" in page


def test_only_the_admin_key_reads_the_data(tmp_path: Path):
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET=ADMIN, KEYS_DB=str(tmp_path / "keys.db"),
                                             KEY_LIMITS='{"CLIENT_KEY": {"rpm": 100}}', CLIENT_KEY="client-key") as p:
        shell = requests.get(p.url + "/ui", timeout=10)
        assert shell.status_code == 200 and "text/html" in shell.headers["Content-Type"]
        assert "default-src 'none'" in shell.headers["Content-Security-Policy"] and "http" not in shell.text.split(
            "<script>")[1].split("</script>")[0].replace("http_", "")  # no CDN, no remote script
        assert requests.get(p.url + "/ui/data", timeout=10).status_code == 401
        client = requests.get(p.url + "/ui/data", headers={"Authorization": "Bearer client-key"}, timeout=10)
        assert client.status_code == 403 and client.json()["error"]["code"] == "admin_key_required"
        data = requests.get(p.url + "/ui/data", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
        assert data.status_code == 200 and set(data.json()) >= {"models", "keys", "deployments", "recent"}
        assert ADMIN not in data.text


def test_the_page_is_off_by_a_setting():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, STATUS_PAGE="false") as p:
        assert requests.get(p.url + "/ui", timeout=10).status_code == 404


def test_the_data_is_not_cached_and_a_long_model_name_is_listed_cut():
    """/ui/data names keys and traffic: no cache may keep it. A request naming a 300-character model (any
    client can) is still listed, its name cut: its record was cut mid-JSON and the request vanished."""
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET=ADMIN) as p:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        long_name = "m" * 300
        r = requests.post(p.base_url + "/chat/completions", json={"model": long_name, "messages": MSG},
                          headers=auth, timeout=30)
        assert r.status_code < 500, r.text
        data = requests.get(p.url + "/ui/data", headers=auth, timeout=10)
        assert data.status_code == 200 and data.headers["Cache-Control"] == "no-store"
        recent = data.json()["recent"]
        assert recent and recent[0]["path"] == "/v1/chat/completions", recent
        assert recent[0]["model"].startswith("mmmm") and recent[0]["model"].endswith("…"), recent
        assert recent[0]["status"] == r.status_code


def screenshot(url: str, path: Path, width: int, height: int, budget_ms: int = 2000) -> None:
    """The page as the browser draws it at this window size, saved as a PNG."""
    profile = tempfile.mkdtemp(prefix="cot_proxy_chromium_")
    try:
        done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                               f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}",
                               f"--screenshot={path}", url], capture_output=True, text=True, timeout=90)
        assert done.returncode == 0 and path.exists(), done.stderr[-2000:]
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_a_team_lead_reads_budgets_a_revoked_key_and_the_load_charts(tmp_path):
    """Team keys with limits, one revoked; a few requests: the page shows each key's limits and what is left,
    the revoked key marked, the requests and tokens per minute drawn, and what "none" means; screenshots at
    1280x800 and at a phone's 390x844 are saved in the test's directory."""
    from tests.integration.test_team_keys import create, keys
    from tests.polling import poll

    db = tmp_path / "keys.db"
    alice = create(db, "alice", "--rpm", "60", "--tpm", "100000", "--budget", "50000/day")
    bob = create(db, "bob", "--rpm", "5")
    create(db, "carol", "--budget", "1000/week")
    dave = create(db, "dave", "--max-parallel", "2")
    assert keys(db, "revoke", "carol").returncode == 0
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                                             KEYS_DB=str(db), WORKERS="2") as proxy:
        for key, times in ((alice, 3), (bob, 1)):
            for _ in range(times):
                r = requests.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": MSG},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=30)
                assert r.status_code == 200, r.text
        requests.get(proxy.url + "/v1/models", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)  # "none"
        auth = {"Authorization": f"Bearer {ADMIN}"}
        # dave's request is held by a slow upstream while the page is read: one in flight of his two
        # held past the page reads below (which probe the upstream's health: the reply is the chat request's)
        fake.add(Reply(chat_completion("slow"), delay=25, path="/chat/completions"))
        held = threading.Thread(target=requests.post, args=(proxy.base_url + "/chat/completions",),
                                kwargs={"json": {"model": "gpt-4o", "messages": MSG}, "timeout": 60,
                                        "headers": {"Authorization": f"Bearer {dave}"}}, daemon=True)
        held.start()

        def limits() -> dict | None:
            data = requests.get(proxy.url + "/ui/data", headers=auth, timeout=30).json()
            rows = {row["key"]: row for row in data["limits"]}
            # usage rows are written in batches, by every worker
            return data if rows.get("alice", {}).get("budget_used") == 3 * fake.usage["total_tokens"] and \
                rows.get("dave", {}).get("in_flight") == 1 else None
        data = poll(limits, timeout=20)
        assert data is not None, [{k: row[k] for k in ("key", "budget_used", "in_flight")} for row in
                                  requests.get(proxy.url + "/ui/data", headers=auth, timeout=30).json()["limits"]]
        rows = {row["key"]: row for row in data["limits"]}
        used = fake.usage["total_tokens"]
        assert rows["alice"] | {"expires": None} == {
            "key": "alice", "prefix": rows["alice"]["prefix"], "models": [], "rpm": 60, "rpm_used": 3, "tpm": 100000,
            "tpm_used": 3 * used, "budget": 50000, "period": "day", "budget_used": 3 * used, "max_parallel":
            rows["alice"]["max_parallel"], "in_flight": rows["alice"]["in_flight"], "revoked": False,
            "expired": False, "expires": None, "refused": {}, "budget_usd": 0, "period_usd": None, "spent_usd": None}
        assert rows["bob"]["rpm_used"] == 1 and rows["bob"]["budget"] == 0
        assert rows["carol"]["revoked"] is True
        assert rows["dave"]["max_parallel"] == 2 and rows["dave"]["in_flight"] == 1
        minutes = data["minutes"]
        recent = minutes[-2:]  # the requests may straddle a minute's turn
        assert len(minutes) == 60 and sum(m["requests"] for m in recent) >= 5, recent
        assert sum(m["tokens"] for m in recent) >= 4 * used, recent

        page = rendered(f"{proxy.url}/ui#key={ADMIN}")
        assert "updated " in page, page[-3000:]
        assert '<td>dave</td>' in page and '<td class="n">1 / 2</td>' in page, page[-4000:]
        assert f"3 / 60" in page and f"{3 * used:,} / 50,000 per day" in page and f"{50000 - 3 * used:,}" in page
        assert '<tr class="revoked"><td>carol</td>' in page and '<span class="badge revoked">revoked</span>' in page
        requests_chart = page[page.index('id="chart-requests"'):page.index("</svg>", page.index('id="chart-requests"'))]
        tokens_chart = page[page.index('id="chart-tokens"'):page.index("</svg>", page.index('id="chart-tokens"'))]
        assert 'class="bar"' in requests_chart and 'class="bar"' in tokens_chart
        assert '"none": requests that name no model' in page
        assert alice not in page and bob not in page and ADMIN not in page

        for name, (width, height) in {"desktop": (1280, 800), "phone": (390, 844)}.items():
            shot = tmp_path / f"status-page-{name}.png"
            screenshot(f"{proxy.url}/ui#key={ADMIN}", shot, width, height)
            assert png_size(shot) == (width, height) and shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
        held.join(60)


def test_refusals_are_counted_by_cause_and_not_against_the_keys_rpm(tmp_path):
    """A key with --rpm 5 and a budget that four answers spend: of eight requests, four are refused for the
    budget. The page said `8 / 5` requests per minute and counted the refusals as gpt-4o's errors; now the rpm
    is the four admission counted, the four refusals are the key's, by cause (budget), /metrics counts them by
    cause, and a model refused to the key, a request without a key and a failing upstream each have theirs."""
    from tests.integration.test_team_keys import create

    db = tmp_path / "keys.db"
    # 12 tokens an answer; each request may use 9 (its prompt and max_tokens 2): the fifth does not fit
    alice = create(db, "alice", "--rpm", "5", "--budget", "48/day", "--models", "gpt-4o*")
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                                             KEYS_DB=str(db), WORKERS="2", MAX_RETRIES="0",
                                             ALLOWED_MODELS="gpt-4o*") as proxy:  # gpt-4o: a label on every worker
        as_alice = {"Authorization": f"Bearer {alice}"}
        statuses = [requests.post(proxy.base_url + "/chat/completions", timeout=30, headers=as_alice,
                                  json={"model": "gpt-4o", "messages": MSG, "max_tokens": 2}).status_code
                    for _ in range(8)]
        assert statuses == [200] * 4 + [429] * 4, statuses
        assert requests.post(proxy.base_url + "/chat/completions", json={"model": "claude-x", "messages": MSG},
                             headers=as_alice, timeout=30).status_code == 403
        assert requests.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": MSG},
                             timeout=30).status_code == 401
        fake.add(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500,
                       path="/chat/completions"))
        auth = {"Authorization": f"Bearer {ADMIN}"}
        assert requests.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": MSG},
                             headers=auth, timeout=30).status_code >= 500

        data = requests.get(proxy.url + "/ui/data", headers=auth, timeout=30).json()
        row = {r["key"]: r for r in data["limits"]}["alice"]
        assert (row["rpm_used"], row["rpm"], row["refused"]) == (4, 5, {"budget": 4, "model": 1}), row
        assert data["refusals"] == {"rate": 0, "budget": 4, "queue": 0, "auth": 1, "model": 1, "request": 0,
                                    "upstream": 1, "proxy": 0}, data["refusals"]
        gpt = {r["model"]: r for r in data["models"]}["gpt-4o"]
        assert (gpt["errors"], gpt["refused"], gpt["causes"]) == (1, 4, {"budget": 4, "upstream": 1}), gpt
        assert {r["model"]: r for r in data["models"]}["none"]["causes"] == {"auth": 1}  # refused before its body
        key = {r["key"]: r for r in data["keys"]}["alice"]
        assert (key["requests"], key["errors"], key["refused"], key["causes"]) == (
            4, 0, 5, {"budget": 4, "model": 1}), key
        last = data["minutes"][-2:]  # the requests may straddle a minute's end
        assert sum(m["refused"] for m in last) == 6 and sum(m["errors"] for m in last) == 1, last

        metrics = requests.get(proxy.url + "/metrics", headers=auth, timeout=30).text
        assert 'cot_proxy_refusals_total{cause="budget",key="alice",model="gpt-4o"} 4.0' in metrics, metrics[-3000:]
        assert 'cot_proxy_refusals_total{cause="auth",key="none",model="none"} 1.0' in metrics
        assert 'cot_proxy_refusals_total{cause="model",key="alice",model="other"} 1.0' in metrics
        assert 'cot_proxy_refusals_total{cause="upstream",key="none",model="gpt-4o"} 1.0' in metrics

        page = rendered(f"{proxy.url}/ui#key={ADMIN}")
        assert "updated " in page, page[-3000:]
        assert '<td class="n ">4 / 5</td><td class="n">5 (budget 4, model 1)</td>' in page, page[-6000:]
        assert '<td>budget</td><td class="n">4</td>' in page and 'class="refused"' in page


def test_without_a_key_the_page_and_its_data_name_the_admin_key():
    """The hint shown without a key blamed auth in general; it names the admin key and how to give it."""
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET=ADMIN) as p:
        refused = requests.get(p.url + "/ui/data", timeout=10)
        assert refused.status_code == 401
        message = refused.json()["error"]["message"]
        assert "admin key" in message and "API_KEY_SECRET" in message and "/ui#key=" in message, message
        page = rendered(f"{p.url}/ui")
        assert "Admin key needed (API_KEY_SECRET)." in page and "/ui#key=&lt;admin key&gt;" in page, page[-3000:]
        assert 'id="login" style="display: block;"' in page
        page = rendered(f"{p.url}/ui#key=not-the-key")
        assert "The proxy does not know this key: type the admin key." in page, page[-3000:]


def test_the_page_shows_spend_per_key_and_per_model_and_flags_a_model_without_a_price(tmp_path):
    """Two team keys spending on two priced models (and one request without a key), one model with no price: the
    page draws dollars per minute stacked by key and by model, each key's and model's cost, a key's dollar budget
    beside what it spent, and names the unpriced model; a screenshot (1280x800) is saved in the test's directory."""
    from tests.integration.test_team_keys import create
    from tests.polling import poll

    db = tmp_path / "keys.db"
    erin = create(db, "erin", "--budget-usd", "5/day")
    frank = create(db, "frank")
    from tests.integration.test_spend import vendor_table
    with FakeOpenAI() as fake:  # priced as a vendor of OpenAI's models: gpt-4o $2.50 and $10, -mini $0.15 and $0.60
        prices = json.dumps({"table": str(vendor_table(fake, tmp_path / "prices.json"))})
        with running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                           KEYS_DB=str(db), PRICES=prices) as proxy:
            spend_page(fake, proxy, tmp_path, erin, frank)


def spend_page(fake, proxy, tmp_path, erin, frank):
    from tests.polling import poll
    fake.usage = {"prompt_tokens": 100_000, "completion_tokens": 20_000, "total_tokens": 120_000}
    for key, model, times in ((erin, "gpt-4o", 2), (frank, "gpt-4o-mini", 3), (ADMIN, "gpt-4o", 1),
                              (frank, "house-model-7b", 1)):
        for _ in range(times):
            r = requests.post(proxy.base_url + "/chat/completions", json={"model": model, "messages": MSG,
                                                                           "max_tokens": 100},
                              headers={"Authorization": f"Bearer {key}"}, timeout=30)
            assert r.status_code == 200, r.text
    auth = {"Authorization": f"Bearer {ADMIN}"}

    def ready() -> dict | None:
        data = requests.get(proxy.url + "/ui/data", headers=auth, timeout=30).json()
        erins = next((row for row in data["limits"] if row["key"] == "erin"), {})
        return data if erins.get("spent_usd") == 900_000_000 else None  # 2 × (0.25 + 0.20)
    data = poll(ready, timeout=20)
    assert data is not None
    keys = {s["name"]: sum(s["minutes"]) for s in data["spend"]["keys"]}
    models = {s["name"]: sum(s["minutes"]) for s in data["spend"]["models"]}
    assert keys == {"erin": 900_000_000, "frank": 3 * 27_000_000, "none": 450_000_000}, keys
    assert models == {"gpt-4o": 1_350_000_000, "gpt-4o-mini": 81_000_000}, models
    assert next(m for m in data["models"] if m["model"] == "house-model-7b")["unpriced"] == 1

    page = rendered(f"{proxy.url}/ui#key={ADMIN}")
    chart = page[page.index('id="chart-spend-keys"'):page.index("</svg>", page.index('id="chart-spend-keys"'))]
    assert chart.count("<rect") >= 2 and "erin: $0.90" in chart and "frank: $0.081" in chart, chart
    legend = page[page.index('id="legend-spend-models"'):]
    assert "gpt-4o-mini" in legend[:400]
    total = page[page.index('id="spend-keys-total"'):][:60]
    assert "last hour $1.43<" in total, total  # 0.90 + 0.081 + 0.45, to the cent
    assert "$0.90 / $5.00 per day" in page
    assert "No price for house-model-7b" in page
    assert erin not in page and frank not in page and ADMIN not in page

    shot = tmp_path / "status-page-spend.png"
    screenshot(f"{proxy.url}/ui#key={ADMIN}", shot, 1280, 800)
    assert png_size(shot) == (1280, 800) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
