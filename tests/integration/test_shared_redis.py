"""What replicas share through a real Redis (REDIS_URL): three instances behind nginx hold one team-key
budget; a cooldown one instance learns is honoured by the others; Redis stopped mid-load leaves requests
served (per-worker counting, a warning) and loses or double-counts nothing once it is back."""

from __future__ import annotations

import csv
import io
import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.integration.test_scale_out import instances, running_nginx
from tests.polling import poll
from tests.proxy_process import ROOT, clean_environ, running_proxy
from tests.redis_server import RedisServer

MSG = [{"role": "user", "content": "hi"}]
ADMIN = "admin-key"


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.close()


def keys(redis_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**clean_environ(), "REDIS_URL": redis_url, "TARGET_BASE_URL": "http://127.0.0.1:9/v1"}
    return subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "keys", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def create(redis_url: str, name: str, *options: str) -> str:
    done = keys(redis_url, "create", name, *options)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def chat(base: str, key: str, model: str = "gpt-4o") -> requests.Response:
    return requests.post(base + "/v1/chat/completions", json={"model": model, "messages": MSG},
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_three_replicas_behind_nginx_hold_one_rpm_budget(redis_server):
    # Start early in a minute so the burst stays inside one rpm window.
    while datetime.now().second > 30:
        time.sleep(0.5)
    with FakeOpenAI() as fake, instances(3, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                         API_KEY_SECRET=ADMIN, REDIS_URL=redis_server.url) as replicas:
        key = create(redis_server.url, "team", "--rpm", "30")
        with running_nginx([r.port for r in replicas]) as base:
            statuses: list[int] = []
            lock = threading.Lock()

            def client() -> None:
                for _ in range(15):
                    status = chat(base, key).status_code
                    with lock:
                        statuses.append(status)
            threads = [threading.Thread(target=client) for _ in range(6)]
            started = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            ended = time.time()
        served = [_served(r.port, "team") for r in replicas]
    assert len(statuses) == 90 and set(statuses) <= {200, 429}
    # One window (60 s): exactly 30. A burst that crossed into the next window may let through what slid out.
    crossed = math.floor(ended / 60) != math.floor(started / 60)
    slid = math.ceil(30 * (ended % 60) / 60) + 1 if crossed else 0
    assert 30 <= statuses.count(200) <= 30 + slid, statuses.count(200)
    assert sum(served) == statuses.count(200) and sum(1 for s in served if s > 0) >= 2  # every replica counted


def test_a_cooldown_learned_by_one_replica_is_honoured_by_the_others(redis_server):
    with FakeOpenAI() as bad, FakeOpenAI() as good:
        bad.default_answer = lambda method, path, body: Reply({"error": {"message": "down"}}, status=500)
        models = ('[{"name": "m", "backend": "openai", "base_url": "%s"}, {"name": "m", "backend": "openai", '
                  '"base_url": "%s", "weight": 0.000001}]' % (bad.base_url, good.base_url))
        with instances(2, MODELS=models, REDIS_URL=redis_server.url, COOLDOWN_SECONDS="60", MAX_RETRIES="1",
                       WORKERS="1") as (a, b):
            r = requests.post(f"http://127.0.0.1:{a.port}/v1/chat/completions", json={"model": "m", "messages": MSG},
                              timeout=30)
            assert r.status_code == 200 and len(bad.received) == 1  # a failed over after the bad one's 500
            seen = len(bad.received)
            # b never saw it fail, yet avoids it: every request goes to the good deployment.
            def b_avoids_bad() -> bool:
                health = requests.get(f"http://127.0.0.1:{b.port}/health", timeout=10).json()
                return any(d.get("state") == "down" for d in _deployments(health))
            assert poll(b_avoids_bad, timeout=10)
            for _ in range(5):
                assert requests.post(f"http://127.0.0.1:{b.port}/v1/chat/completions",
                                     json={"model": "m", "messages": MSG}, timeout=30).status_code == 200
            assert len(bad.received) == seen


def _served(port: int, name: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {ADMIN}"},
                        timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f'cot_proxy_key_requests_total{{key="{name}"'))


def _deployments(health: dict) -> list[dict]:
    found = health.get("deployments") or []
    return found if isinstance(found, list) else []


def test_redis_stopped_mid_load_serves_and_loses_no_usage(redis_server):
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET=ADMIN, REDIS_URL=redis_server.url, WORKERS="1") as proxy:
        key = create(redis_server.url, "lab")
        for _ in range(5):
            assert chat(proxy.url, key).status_code == 200
        poll(lambda: _requests(redis_server.url, "lab") == 5)
        redis_server.stop()
        for _ in range(5):
            assert chat(proxy.url, key).status_code == 200  # served, counted per worker
        assert poll(lambda: "counting per worker until it is back" in proxy.read_log())
        redis_server.start()
        sent = 10

        def written_back() -> bool:  # each request served counts once, before, during and after the outage
            nonlocal sent
            assert chat(proxy.url, key).status_code == 200
            sent += 1
            return "usage kept meanwhile written" in proxy.read_log()
        assert poll(written_back, timeout=15)
        assert poll(lambda: _requests(redis_server.url, "lab") == sent, timeout=10), (sent, _requests(
            redis_server.url, "lab"))


def test_redis_that_hangs_mid_load_counts_each_request_once(redis_server):
    """A Redis that hangs (paused, overloaded) rather than going away carries out, once it goes on, the writes
    that timed out meanwhile; the proxy, which counted them per worker and sent them again when it was back
    (and again at each retry), counted each request two or three times."""
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET=ADMIN, REDIS_URL=redis_server.url, WORKERS="1") as proxy:
        key = create(redis_server.url, "lab", "--budget", "100000000/day")  # its usage is written per answer
        sent = 0

        def send(n: int) -> None:
            nonlocal sent
            for _ in range(n):
                assert chat(proxy.url, key).status_code == 200
                sent += 1
        send(3)
        assert poll(lambda: _requests(redis_server.url, "lab") == 3)
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            send(4)  # the first write times out, was received, and waits in Redis's socket
            assert poll(lambda: "counting per worker until it is back" in proxy.read_log())
            started = time.monotonic()
            while time.monotonic() - started < 2.5:  # the retries each second send the kept writes again
                send(1)
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)

        def written_back() -> bool:
            send(1)
            return "usage kept meanwhile written" in proxy.read_log()
        assert poll(written_back, timeout=15)
        assert poll(lambda: _requests(redis_server.url, "lab") == sent, timeout=10), (sent, _requests(
            redis_server.url, "lab"))


def _requests(redis_url: str, name: str) -> int:
    done = keys(redis_url, "usage", "--csv")
    return sum(int(row["requests"]) for row in csv.DictReader(io.StringIO(done.stdout)) if row["key"] == name)


def test_a_keys_priority_is_kept_in_redis_and_a_record_written_before_it_reads_none(redis_server):
    import redis

    from argoproxy.teamkeys.redis_store import PREFIX
    create(redis_server.url, "vip", "--priority", "4")
    create(redis_server.url, "old")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.hdel(PREFIX + "key:" + client.get(PREFIX + "name:old"), "priority")  # as a record made before priorities

    def priorities() -> dict[str, str]:
        header, *rows = keys(redis_server.url, "list").stdout.splitlines()
        column = header.split().index("PRIORITY")
        return {row.split()[0]: row.split()[column] for row in rows}
    assert priorities() == {"vip": "4", "old": "-"}
    assert keys(redis_server.url, "update", "old", "--priority", "2").returncode == 0
    assert priorities() == {"vip": "4", "old": "2"}
