"""Budgets that hold under parallel load, through the running proxy: a request is admitted with a reservation
(its counted input plus its max_tokens) that counts as used until it ends, so 60 streams started at once cannot
all pass a token budget (they did: 60,000 tokens spent on --budget 1000/day); --max-parallel caps requests in
flight and every ending gives the slot back (done, client gone, worker killed). On SQLite (one instance, two
workers) and on a real Redis (three replicas)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.integration import test_shared_redis as shared
from tests.integration import test_team_keys as local
from tests.integration.test_scale_out import instances
from tests.polling import poll
from tests.proxy_process import running_proxy
from tests.redis_server import RedisServer

ADMIN = "admin-key"
USAGE = {"prompt_tokens": 400, "completion_tokens": 600, "total_tokens": 1000}
MSG = [{"role": "user", "content": "hi"}]


def slow_answers(seconds: float = 1.0):
    """Streams of about `seconds`, each reporting 1,000 tokens; whole answers likewise."""
    def answer(method: str, path: str, body: bytes):
        req = json.loads(body or b"{}")
        if req.get("stream"):
            events = chat_chunks(["one ", "two ", "three ", "four"], usage=True)
            events[-2]["usage"] = dict(USAGE)
            return Stream(events, delay=seconds / len(events))
        answer = chat_completion("one two three four")
        answer["usage"] = dict(USAGE)
        return Reply(answer, delay=seconds)
    return answer


class Store:
    """The key store under test: SQLite behind one instance, or Redis behind three."""

    def __init__(self, kind: str, tmp_path) -> None:
        self.kind = kind
        self.db = tmp_path / "keys.db"
        self.redis = RedisServer().start() if kind == "redis" else None

    def create(self, name: str, *options: str) -> str:
        return shared.create(self.redis.url, name, *options) if self.redis else local.create(self.db, name, *options)

    def usage(self, name: str) -> tuple[int, int]:
        """(requests, tokens) the key's usage rows hold."""
        done = shared.keys(self.redis.url, "usage", "--csv") if self.redis else local.keys(self.db, "usage", "--csv")
        rows = [r for r in csv.DictReader(io.StringIO(done.stdout)) if r["key"] == name]
        return (sum(int(r["requests"]) for r in rows),
                sum(int(r["input_tokens"]) + int(r["output_tokens"]) for r in rows))

    @contextmanager
    def proxies(self, fake: FakeOpenAI, **settings: str) -> Iterator[list[str]]:
        common = dict(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN, **settings)
        if self.redis:
            with instances(3, REDIS_URL=self.redis.url, WORKERS="2", **common) as replicas:
                yield [f"http://127.0.0.1:{r.port}" for r in replicas]
        else:
            with running_proxy(KEYS_DB=str(self.db), WORKERS="2", **common) as proxy:
                yield [proxy.url]

    def close(self) -> None:
        if self.redis:
            self.redis.close()


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    s = Store(request.param, tmp_path)
    yield s
    s.close()


def stream(base: str, key: str, **extra) -> int:
    with requests.post(base + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, stream=True,
                       json={"model": "gpt-4o", "messages": MSG, "stream": True, **extra}, timeout=60) as r:
        for _ in r.iter_content(None):
            pass
        return r.status_code


def at_once(bases: list[str], key: str, n: int, **extra) -> list[int]:
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def one(i: int) -> None:
        start.wait(30)
        status = stream(bases[i % len(bases)], key, **extra)
        with lock:
            statuses.append(status)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return statuses


@pytest.mark.parametrize("limit", ["--budget=1000/day", "--tpm=1000", "--budget=10000/day"])
def test_sixty_parallel_streams_spend_at_most_one_reservation_over_a_budget(store, limit):
    with FakeOpenAI() as fake:
        fake.default_answer = slow_answers()
        with store.proxies(fake) as bases:
            option, value = limit.split("=")
            key = store.create("crowd", option, value)
            statuses = at_once(bases, key, 60, max_tokens=1000)
            admitted = statuses.count(200)
            assert set(statuses) <= {200, 429} and len(statuses) == 60
            assert poll(lambda: store.usage("crowd")[0] == admitted, timeout=15)
            spent = store.usage("crowd")[1]
            print(f"{store.kind}, {len(bases)} instance(s), {limit}: {admitted} of 60 admitted, {spent} tokens spent")
            budget = int(value.split("/")[0])
            assert budget <= spent <= budget + 1000 + 10  # the budget plus one reservation (input + max_tokens)


def test_max_parallel_caps_requests_in_flight_and_every_ending_gives_the_slot_back(store):
    with FakeOpenAI() as fake:
        fake.default_answer = slow_answers(1.5)
        with store.proxies(fake) as bases:
            key = store.create("pair", "--max-parallel", "2")
            statuses = at_once(bases, key, 6)
            assert sorted(statuses) == [200, 200, 429, 429, 429, 429], statuses
            r = requests.post(bases[0] + "/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                              json={"model": "gpt-4o", "max_tokens": 5, "messages": MSG}, timeout=30)
            assert r.status_code == 200  # both slots came back when their streams ended
            # a client that leaves mid-stream gives its slot back too
            for _ in range(2):
                with requests.post(bases[0] + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                   json={"model": "gpt-4o", "messages": MSG, "stream": True}, stream=True,
                                   timeout=30) as gone:
                    assert gone.status_code == 200
                    next(gone.iter_content(None))
            assert poll(lambda: sorted(at_once(bases, key, 3)).count(200) == 2, timeout=15)
            # beyond the cap: 429 in each door's shape
            statuses = []
            fake.default_answer = slow_answers(8)  # long enough for the status page to see them (it probes /health)

            def hold() -> None:
                statuses.append(stream(bases[0], key))
            holders = [threading.Thread(target=hold) for _ in range(2)]
            for t in holders:
                t.start()
            def in_flight() -> int | None:  # the status page says what admission counts
                data = requests.get(bases[0] + "/ui/data", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
                return {r["key"]: r for r in data.json()["limits"]}.get("pair", {}).get("in_flight")
            seen = []
            assert poll(lambda: seen.append(in_flight()) or seen[-1] == 2, timeout=10), seen
            refused = requests.post(bases[0] + "/v1/messages",
                                    headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                                    json={"model": "gpt-4o", "max_tokens": 5, "messages": MSG}, timeout=30)
            for t in holders:
                t.join(60)
            assert refused.status_code == 429, refused.text
            body = refused.json()
            assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
            assert "in flight" in body["error"]["message"] and refused.headers["Retry-After"] == "1"


def test_a_killed_worker_gives_its_requests_slots_back(tmp_path):
    """SQLite (one instance): the master takes a killed worker's holds off as it dies (child_exit)."""
    store = Store("sqlite", tmp_path)
    with FakeOpenAI() as fake:
        fake.default_answer = slow_answers(30)
        with running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                           KEYS_DB=str(store.db), WORKERS="1") as proxy:
            key = store.create("solo", "--max-parallel", "1", "--budget", "100000/day")
            workers_before = _workers(proxy.proc.pid)
            hung = threading.Thread(target=lambda: _quietly(stream, proxy.url, key), daemon=True)
            hung.start()
            assert poll(lambda: len(fake.received) >= 1, timeout=10)
            assert stream(proxy.url, key) == 429  # its one slot is taken
            for pid in workers_before:
                os.kill(pid, signal.SIGKILL)
            assert poll(lambda: _workers(proxy.proc.pid) and set(_workers(proxy.proc.pid)) != set(workers_before),
                        timeout=20)
            fake.default_answer = slow_answers(0.1)
            assert poll(lambda: stream(proxy.url, key) == 200, timeout=20)
            assert "requests in flight; their holds are given back" in proxy.read_log()


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except requests.RequestException:
        pass


def _workers(master: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                found.append(int(entry))
    return found


def test_key_limits_are_one_budget_across_replicas_with_redis(tmp_path):
    """key_limits (keys held in environment variables) were counted per replica even with REDIS_URL: three
    replicas with rpm=6 let 18 through. They count in Redis now, as team keys do."""
    from datetime import datetime
    while datetime.now().second > 40:  # one rpm window for the whole burst
        time.sleep(0.5)
    server = RedisServer().start()
    try:
        with FakeOpenAI() as fake, instances(3, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                                             REDIS_URL=server.url, KEY_LIMITS='{"TEAM_KEY": {"rpm": 6}}',
                                             TEAM_KEY="sk-team-a") as replicas:
            statuses = [shared.chat(f"http://127.0.0.1:{replicas[i % 3].port}", "sk-team-a").status_code
                        for i in range(18)]
        assert statuses.count(200) == 6 and statuses.count(429) == 12, statuses
    finally:
        server.close()


def test_on_redis_a_live_workers_hold_stays_and_a_killed_ones_lapses():
    """Redis: each worker's holds carry its heartbeat; a stream longer than the hold's lapse keeps its slot, and a
    worker killed mid-request has its slot back once its heartbeat is HOLD_SECONDS old."""
    from argoproxy.teamkeys.redis_store import HOLD_SECONDS
    server = RedisServer().start()
    try:
        with FakeOpenAI() as fake:
            fake.default_answer = slow_answers(HOLD_SECONDS + 6)
            with running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                               REDIS_URL=server.url, WORKERS="1") as proxy:
                key = shared.create(server.url, "solo", "--max-parallel", "1")
                threading.Thread(target=lambda: _quietly(stream, proxy.url, key), daemon=True).start()
                assert poll(lambda: len(fake.received) >= 1, timeout=10)
                started = time.monotonic()
                while time.monotonic() - started < HOLD_SECONDS + 1:  # past the lapse: the heartbeat keeps it
                    time.sleep(0.5)
                assert stream(proxy.url, key) == 429
                workers = _workers(proxy.proc.pid)
                for pid in workers:
                    os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
                fake.default_answer = slow_answers(0.1)
                assert poll(lambda: _workers(proxy.proc.pid) and set(_workers(proxy.proc.pid)) != set(workers),
                            timeout=20)
                assert poll(lambda: stream(proxy.url, key) == 200, timeout=HOLD_SECONDS + 10, interval=0.5)
                print(f"a killed worker's slot came back after {time.monotonic() - killed:.1f} s on Redis")
                assert time.monotonic() - killed < HOLD_SECONDS + 5
    finally:
        server.close()


@pytest.mark.parametrize("door", ["google", "google proto names and a stray max_tokens", "ollama"])
def test_a_doors_own_answer_limit_is_what_its_request_reserves(tmp_path, door):
    """An API door's request reserves what the chat request the door makes of it asks: Gemini's maxOutputTokens
    (or generation_config.max_output_tokens) and Ollama's options.num_predict, whatever else the body holds
    (they reserved the 4,096-token default, and a stray `max_tokens: 1` the door ignores set the reservation: a
    held request asking for 6,000 tokens left room for another on a 6,000-token tpm)."""
    store = Store("sqlite", tmp_path)
    asks = {"google": ("/v1beta/models/gpt-4o:generateContent",
                       {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                        "generationConfig": {"maxOutputTokens": 6000}}),
            "google proto names and a stray max_tokens": (
                "/v1beta/models/gpt-4o:generateContent",
                {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "max_tokens": 1,
                 "generation_config": {"max_output_tokens": 6000}}),
            "ollama": ("/api/chat", {"model": "gpt-4o", "messages": MSG, "stream": False, "max_tokens": 1,
                                     "options": {"num_predict": 6000}})}
    path, body = asks[door]
    with FakeOpenAI() as fake:
        fake.default_answer = slow_answers(0.1)
        with store.proxies(fake) as (base,):
            key = store.create("wide", "--tpm", "6000")
            auth = {"Authorization": f"Bearer {key}"}
            fake.add(Reply(chat_completion("held"), delay=20, path="/chat/completions"))
            held = threading.Thread(target=lambda: _quietly(lambda: requests.post(
                base + path, json=body, headers=auth, timeout=60)), daemon=True)
            held.start()
            assert poll(lambda: len(fake.received) >= 1, timeout=15)
            small = requests.post(base + "/v1/chat/completions", headers=auth, timeout=30,
                                  json={"model": "gpt-4o", "messages": MSG, "max_tokens": 10})
            assert small.status_code == 429, small.text  # the held request's 6,000 tokens are reserved
            assert "over its budget of 6000 tokens per minute" in small.json()["error"]["message"]
