"""Budgets that hold under parallel load, through the running proxy: a request is admitted with a reservation
(the most its upstream may spend on it, read as the upstream reads it) that counts as used until it ends, and
only while it fits in what is left, so 60 requests started at once spend at most the budget, whatever shape
they take (they did not: n, max_completion_tokens, n_predict, /v1/completions' prompts, no length field,
Ollama's own API passed through and background Responses runs spent up to 128x a --budget); --max-parallel caps
requests in flight and every ending gives the slot back (done, client gone, worker killed, a background run's
end). On SQLite (one instance, two workers) and on a real Redis (three replicas)."""

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

import openai
import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.fakes.generating import generating
from tests.integration import test_shared_redis as shared
from tests.integration.test_scale_out import instances
from tests.keys_cli import run_keys
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
        done = self.keys("create", name, *options)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def keys(self, *args: str):
        """The keys command on this store, run in this process (tests/keys_cli.py: the crowds read usage often)."""
        return run_keys(*args, redis_url=self.redis.url) if self.redis else run_keys(*args, keys_db=self.db)

    def usage(self, name: str) -> tuple[int, int]:
        """(requests, tokens) the key's usage rows hold."""
        done = self.keys("usage", "--csv")
        rows = [r for r in csv.DictReader(io.StringIO(done.stdout)) if r["key"] == name]
        return (sum(int(r["requests"]) for r in rows),
                sum(int(r["input_tokens"]) + int(r["output_tokens"]) for r in rows))

    @contextmanager
    def proxies(self, fake: FakeOpenAI, **settings: str) -> Iterator[list[str]]:
        common = {"TARGET_BASE_URL": fake.base_url, "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN, **settings}
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


class Crowd:
    """One store's proxies in front of a fake that generates what is asked, shared by the tests that take `crowd`
    (each with keys of its own): three replicas of two workers started for each test cost more than its requests."""

    def __init__(self, store: Store, fake: FakeOpenAI, bases: list[str]) -> None:
        self.store, self.fake, self.bases = store, fake, bases


def _crowd(kind: str, directory) -> Iterator[Crowd]:
    store = Store(kind, directory)
    try:
        with FakeOpenAI() as fake:
            fake.default_answer = generating(fake.default_answer)
            with store.proxies(fake, FRONTS_PASSTHROUGH="ollama", TARGET_BASE_URL=fake.root_url,
                               RESPONSES_BACKGROUND_PER_KEY="100", RESPONSES_BACKGROUND_MAX="200") as bases:
                yield Crowd(store, fake, bases)
    finally:
        store.close()


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def crowd_proxies(request, tmp_path_factory) -> Iterator[Crowd]:
    yield from _crowd(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture
def crowd(crowd_proxies: Crowd) -> Crowd:
    crowd_proxies.fake.reset()  # what reached it is this test's
    return crowd_proxies


SQLITE_ONLY = pytest.mark.parametrize("crowd_proxies", ["sqlite"], indirect=True)


def openai_sdk_at(base: str, key: str):
    import openai
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def stream(base: str, key: str, **extra) -> int:
    return send(base, key, "/v1/chat/completions", {"model": "gpt-4o", "messages": MSG, "stream": True, **extra})


def send(base: str, key: str, path: str, body: dict | str) -> int:
    """One request (a text: its bytes as written), its answer read to the end: its status."""
    with requests.post(base + path, headers={"Authorization": f"Bearer {key}"}, stream=True, timeout=60,
                       **({"data": body} if isinstance(body, str) else {"json": body})) as r:
        body = b"".join(r.iter_content(None))
        if r.status_code not in (200, 429):  # shown with a failure: which part of the proxy said so
            print(f"{path}: {r.status_code} {body[:500]!r}")
        return r.status_code


def at_once(bases: list[str], key: str, n: int, path: str = "/v1/chat/completions", body: dict | str | None = None,
            **extra) -> list[int]:
    """`n` requests started together, spread over the instances: their statuses."""
    body = body if body is not None else {"model": "gpt-4o", "messages": MSG, "stream": True, **extra}
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def one(i: int) -> None:
        start.wait(30)
        status = send(bases[i % len(bases)], key, path, body)
        with lock:
            statuses.append(status)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return statuses


CHAT = "/v1/chat/completions"
# Every shape that walked around a budget of 1,000 or 10,000 tokens (up to 128x), 60 of each at once: each reads
# as its upstream does (the fake generates what is asked: tests/fakes/generating.py).
SHAPES = [
    ("n", CHAT, {"max_tokens": 10, "n": 100, "stream": True}),
    ("max_completion_tokens (vLLM)", CHAT, {"max_tokens": 1, "max_completion_tokens": 1000, "stream": True}),
    ("n_predict (llama.cpp)", CHAT, {"max_tokens": 1, "n_predict": 1000, "stream": True}),
    ("n times max_tokens", CHAT, {"max_tokens": 1000, "n": 8}),
    ("100 prompts of /v1/completions", "/v1/completions", {"prompt": ["hi"] * 100, "max_tokens": 10}),
    ("no length field, 10,000-token answers", CHAT, {"stream": True}),
    ("Ollama's /api/chat passed through", "/api/chat", {}),
    ("Ollama's /api/generate passed through", "/api/generate", {"prompt": "hi"}),
    ("background Responses runs", "/v1/responses", {"input": "hi", "background": True, "max_output_tokens": 1000}),
]
BUDGET = 10_000


def shaped(path: str, extra: dict) -> dict:
    body = {"model": "gpt-4o", **extra}
    if path in (CHAT, "/api/chat"):
        body["messages"] = MSG
    return body


# First of the tests that take `crowd`, as it is short: the first bears the start of the store's proxies.
@pytest.mark.parametrize("limit", ["--budget=1000/day", "--tpm=1000", "--budget=10000/day"])
def test_sixty_parallel_streams_spend_at_most_the_budget(crowd, limit):
    store, bases = crowd.store, crowd.bases
    option, value = limit.split("=")
    name = f"crowd{option}-{value.split('/')[0]}"
    key = store.create(name, option, value)
    statuses = at_once(bases, key, 60, max_tokens=900)
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429} and len(statuses) == 60
    assert poll(lambda: store.usage(name)[0] == admitted, timeout=15)
    spent = store.usage(name)[1]
    print(f"{store.kind}, {len(bases)} instance(s), {limit}: {admitted} of 60 admitted, {spent} tokens spent")
    budget = int(value.split("/")[0])
    assert budget * 0.9 <= spent <= budget  # as many as fit, none past it (before: 60 of 60, 60,000)


def test_sixty_parallel_requests_of_every_shape_spend_at_most_the_budget(crowd):
    store, bases = crowd.store, crowd.bases
    spent_by = {}
    for i, (name, path, extra) in enumerate(SHAPES):
        key = store.create(f"shape-{i}", "--budget", f"{BUDGET}/day")
        statuses = at_once(bases, key, 60, path, shaped(path, extra))
        admitted = statuses.count(200)
        assert set(statuses) <= {200, 429} and len(statuses) == 60, (name, statuses)
        assert admitted >= 1, name  # the budget has room for some
        assert poll(lambda: store.usage(f"shape-{i}")[0] == admitted, timeout=30), name
        spent_by[name] = spent = store.usage(f"shape-{i}")[1]
        print(f"{store.kind}, {len(bases)} instance(s), {name}: {admitted} of 60 admitted, {spent} tokens")
        assert 0 < spent <= BUDGET * 1.05, (name, spent)


def test_a_negative_n_predict_cannot_walk_around_the_budget(crowd):
    """llama.cpp's server reads n_predict before max_tokens, and -1 is no limit: 60 streams of max_tokens 1 beside
    n_predict -1 reserved 1 token each and went on to the end of the context (60 of 60 admitted, 600,060 tokens
    of a 10,000 budget). Now each reserves the default 4,096 and the proxy sends it as n_predict too."""
    store, bases = crowd.store, crowd.bases
    for i, (path, extra) in enumerate([(CHAT, {"stream": True}), ("/v1/completions", {"prompt": "hi"})]):
        key = store.create(f"unlimited-{i}", "--budget", f"{BUDGET}/day")
        statuses = at_once(bases, key, 60, path, shaped(path, {"max_tokens": 1, "n_predict": -1, **extra}))
        admitted = statuses.count(200)
        assert set(statuses) <= {200, 429} and admitted >= 1, (path, statuses)
        assert poll(lambda: store.usage(f"unlimited-{i}")[0] == admitted, timeout=30), path
        spent = store.usage(f"unlimited-{i}")[1]
        print(f"{store.kind}, {path}, n_predict -1: {admitted} of 60 admitted, {spent} tokens")
        assert 0 < spent <= BUDGET * 1.05, (path, spent)
    sent = [r.json() for r in crowd.fake.received if r.method == "POST"]
    assert sent and all(b["n_predict"] == 4096 for b in sent)


@pytest.fixture
def ollama_relayed(crowd):
    """A proxy relaying Ollama's API (FRONTS_PASSTHROUGH=ollama) to a fake that reads it as Ollama does, on
    SQLite (SQLITE_ONLY): (the store, the fake, the proxy's URL)."""
    return crowd.store, crowd.fake, crowd.bases[0]


@SQLITE_ONLY
def test_a_relayed_body_after_white_space_is_read(ollama_relayed):
    """Go's JSON parser, as every other, skips white space before the body: 60 bodies after 100 spaces were read as
    no JSON (4,096 reserved and no limit sent: 20,002 tokens of a 10,000 budget)."""
    store, fake, base = ollama_relayed
    key = store.create("spaced", "--budget", f"{BUDGET}/day")
    statuses = at_once([base], key, 60, "/api/generate",
                       " " * 100 + json.dumps({"model": "gpt-4o", "prompt": "hi", "stream": False}))
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429} and admitted >= 1, statuses
    assert poll(lambda: store.usage("spaced")[0] == admitted, timeout=30)
    assert 0 < store.usage("spaced")[1] <= BUDGET * 1.05
    sent = [json.loads(r.body) for r in fake.received if r.path.endswith("/api/generate")]
    assert sent and all(b["options"]["num_predict"] == 4096 for b in sent)


@SQLITE_ONLY
@pytest.mark.parametrize("body, said", [
    (b'{"model": "gpt-4o", "prompt": "hi \xff", "stream": false}', "UTF-8"),
    (b'{"model": "gpt-4o", "prompt": "hi", "stream": false} {"options": {"num_predict": 1}}', "JSON"),
])
def test_a_relayed_body_the_proxy_cannot_read_is_refused(ollama_relayed, body, said):
    """Go's decoder takes invalid UTF-8 in a string (as U+FFFD) and stops after the first value: one such byte in
    the prompt, or a second value after the body, made it 'a body the proxy does not read' (4,096 reserved, no
    limit sent) while Ollama read it and generated without limit (10,000 tokens on a 10,000 budget)."""
    store, fake, base = ollama_relayed
    key = store.create(f"garbled-{said}", "--budget", f"{BUDGET}/day")
    r = requests.post(base + "/api/generate", headers={"Authorization": f"Bearer {key}"}, timeout=30, data=body)
    assert r.status_code == 400 and said in r.json()["error"], r.text
    assert not [r for r in fake.received if r.path.endswith("/api/generate")]


@SQLITE_ONLY
def test_a_relayed_body_with_a_member_in_two_cases_is_refused(ollama_relayed):
    """Go's JSON parser takes `Options` for `options`, the last one winning: `options` with num_predict 10 then
    `Options` with 9,000 reserved 10 tokens and was sent on (60 of 60 admitted, Ollama generating 9,000 each)."""
    store, fake, base = ollama_relayed
    key = store.create("cased", "--budget", f"{BUDGET}/day")
    r = requests.post(base + "/api/generate", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      data=json.dumps({"model": "gpt-4o", "prompt": "hi", "options": {"num_predict": 10},
                                       "Options": {"num_predict": 9000}}))
    assert r.status_code == 400 and "`options` more than once" in r.json()["error"], r.text
    assert not [r for r in fake.received if r.path.endswith("/api/generate")]


def test_a_request_larger_than_the_whole_budget_is_refused_before_it_is_sent(tmp_path):
    """n: 128 of max_tokens 1,000 on a 1,000-token budget spent 128,000 tokens. Now: a 429 saying why, that the
    SDKs are told not to retry, in each door's shape, and nothing sent upstream."""
    store = Store("sqlite", tmp_path)
    with FakeOpenAI() as fake:
        fake.default_answer = generating(fake.default_answer)
        with store.proxies(fake) as (base,):
            key = store.create("small", "--budget", "1000/day")
            r = requests.post(base + CHAT, headers={"Authorization": f"Bearer {key}"}, timeout=30,
                              json={"model": "gpt-4o", "messages": MSG, "max_tokens": 1000, "n": 128})
            assert r.status_code == 429 and r.headers["x-should-retry"] == "false", r.text
            said = r.json()["error"]["message"]
            assert "larger than this API key's whole budget of 1000/day tokens" in said
            assert "128 answers (n=128) of up to 1,000 tokens (max_tokens=1,000)" in said
            m = requests.post(base + "/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                              json={"model": "gpt-4o", "max_tokens": 5000, "messages": MSG}, timeout=30)
            assert m.status_code == 429 and m.json()["error"]["type"] == "rate_limit_error"
            assert "max_tokens=5,000" in m.json()["error"]["message"]
            assert not fake.received


def test_an_upload_or_a_cancel_reserves_nothing_and_the_batch_reserves_its_lines(tmp_path):
    """An upload generates nothing: it reserved the 4,096-token default of a body the proxy does not read, so a
    key whose budget is smaller could never upload a batch's file. The batch made of it reserves its lines."""
    store = Store("sqlite", tmp_path)
    with FakeOpenAI() as fake, store.proxies(fake) as (base,):
        key = store.create("small", "--budget", "1000/day")
        client = openai_sdk_at(base, key)
        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o", "messages": MSG, "max_tokens": 100}}
        small = client.files.create(file=("b.jsonl", json.dumps(line).encode() + b"\n"), purpose="batch")
        made = client.batches.create(input_file_id=small.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")
        client.batches.cancel(made.id)
        large = dict(line, body=dict(line["body"], max_tokens=5000))
        big = client.files.create(file=("c.jsonl", json.dumps(large).encode() + b"\n"), purpose="batch")
        with pytest.raises(openai.RateLimitError, match="budget"):
            client.batches.create(input_file_id=big.id, endpoint="/v1/chat/completions", completion_window="24h")


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
    held request asking for 6,000 tokens left room for another on a 6,050-token tpm)."""
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
            key = store.create("wide", "--tpm", "6050")
            auth = {"Authorization": f"Bearer {key}"}
            fake.add(Reply(chat_completion("held"), delay=20, path="/chat/completions"))
            held = threading.Thread(target=lambda: _quietly(lambda: requests.post(
                base + path, json=body, headers=auth, timeout=60)), daemon=True)
            held.start()
            assert poll(lambda: len(fake.received) >= 1, timeout=15)
            small = requests.post(base + "/v1/chat/completions", headers=auth, timeout=30,
                                  json={"model": "gpt-4o", "messages": MSG, "max_tokens": 100})
            assert small.status_code == 429, small.text  # the held request's 6,000 tokens are reserved
            assert "over its budget of 6050 tokens per minute" in small.json()["error"]["message"]


def test_a_background_run_holds_its_keys_slot_and_is_charged_until_it_ends(tmp_path):
    """A key with --max-parallel 1 ran 4 background runs and a stream at once, and its runs were charged 0: the
    request that answers `queued` gave its slot and reservation back at once. Now the run holds them until it
    ends or is cancelled, and is charged what it used."""
    store = Store("sqlite", tmp_path)
    with FakeOpenAI() as fake:
        fake.default_answer = generating(fake.default_answer, seconds=3)
        with store.proxies(fake) as (base,):
            key = store.create("runner", "--max-parallel", "1", "--budget", "100000/day")
            auth = {"Authorization": f"Bearer {key}"}
            ask = {"model": "gpt-4o", "input": "hi", "background": True, "max_output_tokens": 700}
            run = requests.post(base + "/v1/responses", json=ask, headers=auth, timeout=30)
            assert run.status_code == 200 and run.json()["status"] in ("queued", "in_progress"), run.text
            second = requests.post(base + "/v1/responses", json=ask, headers=auth, timeout=30)
            assert second.status_code == 429 and "in flight" in second.json()["error"]["message"], second.text
            assert stream(base, key) == 429  # a stream too: the run holds the key's one slot

            def status(resp_id: str) -> str:
                return requests.get(f"{base}/v1/responses/{resp_id}", headers=auth, timeout=10).json()["status"]
            assert poll(lambda: status(run.json()["id"]) == "completed", timeout=30)
            assert poll(lambda: stream(base, key) == 200, timeout=10)  # its end gave the slot back
            assert poll(lambda: store.usage("runner") == (2, 701 + 4096 + 1), timeout=15), store.usage("runner")
            # a cancelled run gives it back too
            cancelled = requests.post(base + "/v1/responses", json=ask, headers=auth, timeout=30).json()
            assert stream(base, key) == 429
            assert requests.post(f"{base}/v1/responses/{cancelled['id']}/cancel", headers=auth, timeout=10).ok
            assert poll(lambda: stream(base, key) == 200, timeout=15)


def test_stored_responses_work_for_a_key_with_limits_and_reserve_their_history(tmp_path):
    """previous_response_id, conversation and background were a 400 "this proxy is stateless" for a key with
    --budget or --tpm: its reservation read the body through the stateless translation. It reads the request
    the stateful door builds now: the stored history counts as input."""
    store = Store("sqlite", tmp_path)
    text = "the quick brown fox jumps over the lazy dog " * 200
    with FakeOpenAI() as fake:
        fake.default_answer = generating(fake.default_answer, seconds=0.05)
        with store.proxies(fake) as (base,):
            key = store.create("keeper", "--budget", "20000/day")
            client = openai_sdk_at(base, key)
            first = client.responses.create(model="gpt-4o", input=text, max_output_tokens=100)
            second = client.responses.create(model="gpt-4o", input="and then?", previous_response_id=first.id,
                                             max_output_tokens=100)
            assert second.status == "completed"
            conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "hello"}])
            talked = client.responses.create(model="gpt-4o", input="hi", conversation=conv.id, max_output_tokens=50)
            assert talked.status == "completed"
            later = client.responses.create(model="gpt-4o", input="more", previous_response_id=second.id,
                                            background=True, max_output_tokens=50)
            assert poll(lambda: client.responses.retrieve(later.id).status == "completed", timeout=20)
            # what the chain holds is input the upstream reads: it is reserved
            r = requests.post(base + "/v1/responses", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                              json={"model": "gpt-4o", "input": "hi", "previous_response_id": second.id,
                                    "max_output_tokens": 15000})
            assert r.status_code == 429, r.text
            said = r.json()["error"]["message"]
            assert int(said.split(" of input")[0].rsplit(" ", 1)[1].replace(",", "")) > 1500, said  # "hi": 10


def test_a_request_no_field_bounds_reserves_the_context_its_server_lists(tmp_path):
    """Without a length field an answer runs until the model's context is full (vLLM, llama.cpp's server): the
    context the model list gives is what such a request reserves; a limit the client sets is read instead."""
    store = Store("sqlite", tmp_path)
    with FakeOpenAI() as fake:
        fake.default_answer = generating(fake.default_answer)
        fake.add(Reply({"object": "list", "data": [{"id": "gpt-4o", "object": "model", "max_model_len": 32768}]},
                       path="/models"))
        with store.proxies(fake) as (base,):
            key = store.create("ctx", "--budget", "10000/day")
            refused = requests.post(base + CHAT, headers={"Authorization": f"Bearer {key}"}, timeout=30,
                                    json={"model": "gpt-4o", "messages": MSG})
            assert refused.status_code == 429, refused.text
            assert "the model's context of 32,768" in refused.json()["error"]["message"]
            assert [r.path for r in fake.received] == ["/v1/models"]  # nothing was sent to be answered
            assert send(base, key, CHAT, {"model": "gpt-4o", "messages": MSG, "max_tokens": 100}) == 200
