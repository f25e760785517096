"""The console under load: a key store filled with 1,000 keys in 100 teams, owned by 100 people, 100,000 usage rows
of keys (1,000 keys x 10 models x 10 days), the same by agent session, 10,000 of teams, 100,000 request-log rows
(with the journal file they point into) and 1,000 audit entries, on SQLite and on Redis, behind the proxy under Gunicorn (its defaults); then
the p50 and p95 of every `/admin/v1/` list (50 rows a page: the first page and one ten pages deep, each usage
grouping, the audit log; people and requests where the API serves them) and of the console's page (/ui,
/ui/console.js), over sequential requests with the admin key, printed as a table. Target: 200 ms at p95.

    .venv/bin/python bench/console.py                 # both stores, 100 requests per list
    .venv/bin/python bench/console.py --store redis --requests 30
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from request_log import rows as log_rows  # noqa: E402
from targets import Proxy, free_port  # noqa: E402

from argoproxy.people import Person, person_id  # noqa: E402
from argoproxy.requestlog import index_of  # noqa: E402
from argoproxy.teamkeys.audit import entry  # noqa: E402
from argoproxy.teamkeys.records import KeyRecord, TeamRecord, digest  # noqa: E402
from argoproxy.teamkeys.store import usage_day  # noqa: E402

ADMIN = "bench-console-admin-key"
KEYS, TEAMS, PEOPLE, MODELS, DAYS, AUDIT, LOG_ROWS = 1000, 100, 100, 10, 10, 1000, 100_000
ISSUER = "https://id.example.org"
TARGET_MS = 200.0


def people() -> list[Person]:
    now = time.time()
    return [Person(person_id(ISSUER, f"user-{p:03d}"), f"user-{p:03d}", ISSUER, f"user-{p:03d}@example.org", True,
                   f"User {p}", (f"group-{p % 10}",), first_seen=now, last_seen=now) for p in range(PEOPLE)]


def records() -> tuple[list[TeamRecord], list[KeyRecord]]:
    now = time.time()
    owners = [p.id for p in people()]
    teams = [TeamRecord(f"team-{t:03d}", rpm=1000, created=now) for t in range(TEAMS)]
    keys = [KeyRecord(f"key-{k:04d}", digest(f"sk-proxy-bench-{k}"), "sk-proxy-ben", rpm=100, created=now,
                      team=f"team-{k % TEAMS:03d}", owner=owners[k % PEOPLE]) for k in range(KEYS)]
    return teams, keys


def usage_rows() -> list[tuple[str, str, str, int, int, int, int, int]]:
    today = datetime.now(timezone.utc)
    days = [(today - timedelta(days=d)).strftime("%Y-%m-%d") for d in range(DAYS)]
    keys = [(f"key-{k:04d}", f"model-{m}", day, 3, 1000 + k, 200 + m, 1_234_567, 0)
            for k in range(KEYS) for m in range(MODELS) for day in days]
    teams = [(f"team/team-{t:03d}", f"model-{m}", day, 30, 10_000, 2000, 12_345_670, 0)  # their keys' together
             for t in range(TEAMS) for m in range(MODELS) for day in days]
    return keys + teams


def session_rows() -> list[tuple[str, str, str, float, int, int, int, int]]:
    """Each key's usage rows again by agent session (one a key and day): (key, session, model, when, counts)."""
    today = time.time() // 86400 * 86400
    return [(f"key-{k:04d}", f"session-{k:04d}-{d}", f"model-{m}", today - d * 86400, 3, 1000 + k, 200 + m, 1_234_567)
            for k in range(KEYS) for m in range(MODELS) for d in range(DAYS)]


def fill_records(store: Any, home: Path) -> None:
    """Teams, people, keys, the audit log and the request log (its journal file in `home`), as the store keeps them."""
    teams, keys = records()
    for team in teams:
        store.create_team(team)
    for person in people():
        store.signed_in(person, False)
    for key in keys:
        store.create(key)
    for n in range(AUDIT):
        store.add_audit(entry("admin key", "keys.update", f"key-{n % KEYS:04d}", {"rpm": n}, "127.0.0.1", "bench"))
    made = log_rows(LOG_ROWS, str(home / "client_interaction.jsonl"))
    index = index_of(store)
    for start in range(0, len(made), 5000):
        index.add(made[start:start + 5000], LOG_ROWS, False)


def fill_sqlite(path: Path) -> None:
    from argoproxy.teamkeys.store import SQLiteKeyStore
    fill_records(SQLiteKeyStore(path), path.parent)
    import sqlite3
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?)", usage_rows())
        db.executemany("INSERT INTO session_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [(name, session, model, usage_day(when), *counts)
                        for name, session, model, when, *counts in session_rows()])
    db.close()


def fill_redis(url: str, home: Path) -> None:
    from argoproxy.teamkeys.redis_store import RedisKeyStore
    from argoproxy.teamkeys.redis_usage_totals import add_args
    import redis
    store = RedisKeyStore(url, client=redis.Redis.from_url(url, decode_responses=True, socket_timeout=60))
    fill_records(store, home)  # (filled without the proxy's round trip deadline: a busy machine may pass it)
    made = usage_rows()
    for start in range(0, len(made), 2000):  # each row as the proxy writes it (the row and its roll-ups)
        pipe = store.redis.pipeline(transaction=False)
        for name, model, day, *counts in made[start:start + 2000]:
            store._add_usage(args=[*add_args(day, name, model), *counts], client=pipe)
        pipe.execute()
    for row in session_rows():  # as the proxy writes them
        store.record_session_usage(*row)


# Each list's first page, and one DEEP pages down by its cursors; the console's page and script.
LISTS = ("keys", "teams", "people", "requests", "usage?group=day", "usage?group=model", "usage?group=key",
         "usage?group=team", "usage?group=person", "usage?group=session", "audit")
DEEP = 10
PAGES = ("/ui", "/ui/console.js")


def timed(session: requests.Session, url: str, count: int) -> tuple[float, float, int] | None:
    """(p50 ms, p95 ms, rows) of `count` GETs; None when the API does not serve it (404, or a grouping it lacks)."""
    times, answered = [], 0
    for _ in range(count):
        started = time.perf_counter()
        answer = session.get(url, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code in (400, 404):
            return None
        assert answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}"
        answered = len(answer.json()["data"]) if "json" in answer.headers.get("Content-Type", "") else 1
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], answered


def paged(url: str, cursor: str | None) -> str:
    return url if not cursor else f"{url}{'&' if '?' in url else '?'}cursor={quote(cursor)}"


def measure(url: str, count: int) -> list[tuple[str, float, float, int]]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {ADMIN}"
    rows = []
    for path in LISTS:
        first = f"{url}/admin/v1/{path}"
        try:
            got = timed(session, first, count)
        except AssertionError as failed:  # a list that fails is a row of the table, over any target
            rows.append((f"{path} FAILED: {str(failed)[:80]}", float("inf"), float("inf"), 0))
            continue
        if got is None:
            continue
        rows.append((path, *got))
        cursor = None
        for _ in range(DEEP):  # a cursor DEEP pages down
            cursor = session.get(paged(first, cursor), timeout=60).json().get("next")
            if not cursor:
                break
        if cursor:
            deep = timed(session, paged(first, cursor), count)
            if deep is not None:
                rows.append((f"{path} (page {DEEP + 1})", *deep))
    for page in PAGES:
        got = timed(session, url + page, count)
        assert got is not None, page
        rows.append((page, *got))
    return rows


def start_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    port, home = free_port(), tempfile.mkdtemp(prefix="cot_proxy_bench_redis_")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", home, "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    import redis
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0", home


def run(store: str, count: int) -> list[tuple[str, float, float, int]]:
    home = Path(tempfile.mkdtemp(prefix="cot_proxy_bench_console_"))
    redis_proc = None
    try:
        started = time.perf_counter()
        if store == "sqlite":
            fill_sqlite(home / "keys.db")
            settings = {"KEYS_DB": str(home / "keys.db")}
        else:
            redis_proc, url, redis_home = start_redis()
            fill_redis(url, home)
            settings = {"REDIS_URL": url}
        print(f"# {store}: filled in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        proxy = Proxy.start(free_port(), ENABLE_AUTH="true", API_KEY_SECRET=ADMIN, **settings)
        try:
            return measure(f"http://127.0.0.1:{proxy.port}", count)
        finally:
            proxy.stop()
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(20)
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="both")
    parser.add_argument("--requests", type=int, default=100, help="requests per list")
    args = parser.parse_args()
    worst = 0.0
    print(f"{'store':7} {'list':40} {'rows':>5} {'p50 ms':>8} {'p95 ms':>8}")
    for store in ("sqlite", "redis") if args.store == "both" else (args.store,):
        for path, p50, p95, rows in run(store, args.requests):
            worst = max(worst, p95) if p95 == p95 else worst
            print(f"{store:7} {path:40} {rows:5d} {p50:8.1f} {p95:8.1f}")
    print(f"# worst p95 {worst:.1f} ms (target {TARGET_MS:.0f} ms): {'met' if worst <= TARGET_MS else 'NOT met'}")
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
