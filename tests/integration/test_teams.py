"""Teams of keys through the running proxy: five keys of a team with a dollar budget, 60 streams at once spread
over them (on SQLite behind one instance, and on Redis behind three), spend no more than the team's budget nor
any key more than its own; a 429 of the team's limit names the team; a key's models are its globs within its
team's; `teams` runs under each entry point `keys` does; /metrics and the status page show the team."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_reservations import Store, slow_answers
from tests.polling import poll
from tests.proxy_process import ROOT, clean_environ

MSG = [{"role": "user", "content": "hi"}]
DEAR = json.dumps({"models": {"gpt-4o": {"input_mtok": 1000, "output_mtok": 1000}}})  # $0.001 a token
ADMIN = "admin-key"


def teams(store: Store, *args: str) -> subprocess.CompletedProcess:
    return _command(store, "teams", *args)


def keys(store: Store, *args: str) -> subprocess.CompletedProcess:
    return _command(store, "keys", *args)


def _command(store: Store, command: str, *args: str) -> subprocess.CompletedProcess:
    where = {"REDIS_URL": store.redis.url, "TARGET_BASE_URL": "http://127.0.0.1:9/v1"} if store.redis else {}
    flags = [] if store.redis else ["--keys-db", str(store.db)]
    done = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), command, *flags, *args],
                          env={**clean_environ(), **where}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    s = Store(request.param, tmp_path)
    yield s
    s.close()


def at_once(bases: list[str], names: list[str], n: int) -> list[tuple[str, int, str]]:
    """`n` streams started together, spread over the keys and the instances: (key, status, body) each."""
    done: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def one(i: int) -> None:
        name, key = names[i % len(names)]
        start.wait(30)
        with requests.post(bases[i % len(bases)] + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": "gpt-4o", "messages": MSG, "stream": True, "max_tokens": 1000},
                           stream=True, timeout=60) as r:
            body = b"".join(r.iter_content(None)).decode()
        with lock:
            done.append((name, r.status_code, body))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return done


def spent(done: subprocess.CompletedProcess, column: str) -> dict[str, tuple[int, Decimal]]:
    """(requests, dollars) per key or team, from `usage --csv`."""
    totals: dict[str, tuple[int, Decimal]] = {}
    for row in csv.DictReader(io.StringIO(done.stdout)):
        requests_, dollars = totals.get(row[column], (0, Decimal(0)))
        totals[row[column]] = (requests_ + int(row["requests"]), dollars + Decimal(row["cost_usd"]))
    return totals


def store_of(store: Store):
    """The store itself, in this process: the keys and rows are made and read here, not by a command per step
    (each a Python start: the commands are tests/unit/test_teams_cli.py's)."""
    if store.redis:
        from argoproxy.teamkeys.redis_store import RedisKeyStore
        return RedisKeyStore(store.redis.url)
    from argoproxy.teamkeys.store import SQLiteKeyStore
    return SQLiteKeyStore(store.db)


def spent_by_name(kept) -> dict[str, tuple[int, int]]:
    """(requests, nano-dollars) per usage-row name (a key's, or team/NAME)."""
    totals: dict[str, tuple[int, int]] = {}
    for name, _, _, requests_, _, _, cost, _ in kept.usage():
        had = totals.get(name, (0, 0))
        totals[name] = (had[0] + requests_, had[1] + cost)
    return totals


def test_five_keys_of_a_team_spend_no_more_than_its_budget(store):
    """60 streams at once, each reporting 1,000 tokens ($1.00 at $0.001 a token) and asking up to 1,000 (its most:
    about $1.008 with its prompt), spread over five keys with --budget-usd 3/day each, in a team with --budget-usd
    10/day: the keys together could take 10, the team holds them to 9; no key spends more than its $3. On SQLite
    (one instance, two workers) and Redis (three instances, two workers each)."""
    from argoproxy.config.listener import generate_key
    from argoproxy.teamkeys.records import TEAM_WINDOWS, KeyRecord, TeamRecord, digest, parse_budget_usd
    kept = store_of(store)
    kept.create_team(TeamRecord("lab", budget_usd=parse_budget_usd("10/day"), created=time.time()))
    names = [(f"k{i}", generate_key()) for i in range(5)]
    for name, key in names:
        kept.create(KeyRecord(name, digest(key), key[:12], budget_usd=parse_budget_usd("3/day"), team="lab",
                              created=time.time()))
    with FakeOpenAI() as fake:
        fake.default_answer = slow_answers()
        with store.proxies(fake, PRICES=DEAR) as bases:
            answers = at_once(bases, names, 60)
            statuses = [status for _, status, _ in answers]
            admitted = statuses.count(200)
            assert set(statuses) <= {200, 429} and len(statuses) == 60
            rows = poll(lambda: (lambda t: t if t.get(TEAM_WINDOWS + "lab", (0,))[0] == admitted and
                                 sum(t.get(n, (0,))[0] for n, _ in names) == admitted else None)(spent_by_name(kept)),
                        timeout=30)
            team_dollars = Decimal(rows[TEAM_WINDOWS + "lab"][1]) / 10**9
            by_key = {n: Decimal(rows[n][1]) / 10**9 for n, _ in names if n in rows}
            print(f"{store.kind}, {len(bases)} instance(s): {admitted} of 60 admitted, ${team_dollars} spent of the "
                  f"team's $10; by key: {sorted((k, str(d)) for k, d in by_key.items())}")
            assert admitted == 9 and team_dollars == admitted * Decimal("1.00") <= Decimal("10") * Decimal("1.05")
            assert all(dollars <= 3 for dollars in by_key.values()) and sum(by_key.values()) == team_dollars
            by_team = [json.loads(body)["error"] for _, status, body in answers if status == 429
                       and "team 'lab'" in body]
            assert by_team, "no 429 named the team"
            assert all(e["type"] == "insufficient_quota" and "budget of $10.00/day" in e["message"] for e in by_team)
            if not store.redis:  # one instance: its /metrics and status page hold every request
                metrics = requests.get(bases[0] + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"},
                                       timeout=10).text
                assert re.search(r'^cot_proxy_team_cost_usd_total\{team="lab"\} 9\.0$', metrics, re.M), metrics
                assert re.search(r'^cot_proxy_team_requests_total\{status="200",team="lab"\} 9\.0$', metrics, re.M)
                assert re.search(r'^cot_proxy_team_refusals_total\{cause="budget",team="lab"\} 51\.0$', metrics, re.M)
                page = requests.get(bases[0] + "/ui/data", headers={"Authorization": f"Bearer {ADMIN}"},
                                    timeout=10).json()
                row = next(t for t in page["teams"] if t["team"] == "lab")
                assert row["spent_usd"] == 9 * 10**9 and row["budget_usd"] == 10 * 10**9
                assert sorted(row["keys"]) == [n for n, _ in names] and row["in_flight"] == 0


def test_a_teams_rate_refuses_its_keys_and_names_the_team(tmp_path):
    """A key with no limits of its own in a team with --rpm 2: its third request is refused, naming the team, and
    another key of the team is refused too."""
    store = Store("sqlite", tmp_path)
    with FakeOpenAI() as fake:
        with store.proxies(fake) as bases:
            teams(store, "create", "lab", "--rpm", "2")
            alice = store.create("alice", "--team", "lab")
            bob = store.create("bob", "--team", "lab")
            outsider = store.create("carol")

            def chat(key: str) -> requests.Response:
                return requests.post(bases[0] + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                     json={"model": "gpt-4o", "messages": MSG}, timeout=30)
            assert [chat(alice).status_code for _ in range(2)] == [200, 200]
            for key in (alice, bob):
                refused = chat(key)
                assert refused.status_code == 429 and refused.headers["Retry-After"]
                assert "This API key's team 'lab' is over its budget of 2 requests per minute" in \
                    refused.json()["error"]["message"]
            assert chat(outsider).status_code == 200
            keys(store, "update", "bob", "--team", "none")  # out of the team: its own limits (none) only
            assert poll(lambda: chat(bob).status_code == 200, timeout=10)


def test_a_keys_models_are_its_globs_within_its_teams(tmp_path):
    store = Store("sqlite", tmp_path)
    with FakeOpenAI() as fake:
        with store.proxies(fake) as bases:
            teams(store, "create", "lab", "--models", "gpt-4o*")  # no limits: its usage is counted all the same
            key = store.create("alice", "--team", "lab", "--models", "*-mini", "--rpm", "100")

            def chat(model: str) -> requests.Response:
                return requests.post(bases[0] + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                     json={"model": model, "messages": MSG}, timeout=30)
            assert chat("gpt-4o-mini").status_code == 200
            for model in ("gpt-4o", "o3-mini"):  # the team's only; the key's only
                refused = chat(model)
                assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
            teams(store, "update", "lab", "--models", "*")
            assert poll(lambda: chat("o3-mini").status_code == 200, timeout=10)
            assert chat("gpt-4o").status_code == 403  # the key's own globs still hold
            assert poll(lambda: spent(teams(store, "usage", "lab", "--csv"), "team").get("lab", (0,))[0] == 2,
                        timeout=15)


@pytest.mark.parametrize("entry", ["cot_proxy.py", "python -m argoproxy.cli", "run_app.sh"])
def test_teams_runs_under_every_entry_point_keys_does(tmp_path, entry):
    """`python cot_proxy.py teams`, the console script's module (pyproject's cot-proxy: argoproxy.cli:main) and
    `./run_app.sh teams` read and write the same store."""
    db = tmp_path / "keys.db"
    command = {"cot_proxy.py": [sys.executable, str(ROOT / "cot_proxy.py")],
               "python -m argoproxy.cli": [sys.executable, "-m", "argoproxy.cli"],
               "run_app.sh": [str(ROOT / "run_app.sh")]}[entry]
    env = {**clean_environ(), "COT_PROXY_VENV": os.path.dirname(os.path.dirname(sys.executable)),
           "PYTHONPATH": str(ROOT)}
    made = subprocess.run([*command, "teams", "--keys-db", str(db), "create", "lab", "--rpm", "5"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    listed = subprocess.run([*command, "teams", "--keys-db", str(db), "list"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].split()[:3] == ["lab", "*", "5"], listed.stderr
