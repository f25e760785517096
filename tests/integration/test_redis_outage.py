"""A team key while Redis is cut off, through the running proxy: two replicas of two Gunicorn workers each, a real
redis-server behind a TCP middlebox (tests/middlebox.py). With REDIS_OUTAGE=local each worker counts from the
last state it saw of the key, so a key that spent its budget before the outage stays within the documented worst
case (docs/team-keys.md: at most one request per worker that had not seen it spent); with REDIS_OUTAGE=refuse
every team-key request is refused with a 503 for as long as Redis is cut off."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.generating import generating
from tests.integration.test_reservations import at_once, send
from tests.integration.test_scale_out import instances
from tests.integration.test_shared_redis import ADMIN, create
from tests.middlebox import Middlebox
from tests.polling import poll
from tests.redis_server import RedisServer

REPLICAS, WORKERS = 2, 2
# Answers of 500 tokens at $0.001 a token: the key's budgets (10,000 tokens, $10) hold 19 of them.
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 500}
BUDGET_TOKENS, BUDGET_DOLLARS = 10_000, 10
PRICES = json.dumps({"models": {"gpt-4o": {"input_mtok": 1000, "output_mtok": 1000}}})


@pytest.fixture
def redis_box():
    server = RedisServer().start()
    box = Middlebox(server.port)
    yield server, box
    box.close()
    server.close()


def usage(redis_url: str, name: str) -> tuple[int, int, float]:
    """(requests, tokens, dollars) the key's usage rows in Redis hold."""
    from argoproxy.teamkeys.redis_store import RedisKeyStore
    rows = [r for r in RedisKeyStore(redis_url).usage() if r[0] == name]
    return sum(r[3] for r in rows), sum(r[4] + r[5] for r in rows), sum(r[6] for r in rows) / 1e9


def test_a_key_that_spent_its_budget_stays_spent_while_redis_is_away(redis_box):
    """Before, every worker counted from an empty window once Redis was away: a spent key got 59 of 60 more
    requests (3.8x its token budget, 4.5x its dollar budget). Now a worker that saw the key spent refuses it, and
    one that had not seen it admits it once at most: at most REPLICAS x WORKERS requests more, each within its
    reservation. Once Redis is back, what was served meanwhile is written once.

    The key is spent through a replica of its own, so each worker under test either saw it spent (a refusal) or
    never saw it: one that last saw it partly spent may admit what it saw left (docs/team-keys.md), which is
    another bound, and which worker the kernel hands a connection to is not the test's to choose."""
    server, box = redis_box
    with FakeOpenAI() as fake:
        fake.default_answer = generating(fake.default_answer, seconds=0.1)
        with instances(REPLICAS + 1, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       REDIS_URL=box.url, WORKERS=str(WORKERS), PRICES=PRICES) as started:
            spender, replicas = f"http://127.0.0.1:{started[0].port}", started[1:]
            bases = [f"http://127.0.0.1:{r.port}" for r in replicas]
            key = create(server.url, "spent", "--budget", f"{BUDGET_TOKENS}/day", "--budget-usd",
                         f"{BUDGET_DOLLARS}/day")
            statuses = []
            while not statuses or statuses[-1] == 200:  # spent: the next answer does not fit in what is left
                statuses.append(send(spender, key, "/v1/chat/completions", BODY))
                assert len(statuses) < 40 and statuses[-1] in (200, 429), statuses
            statuses += [send(bases[i % REPLICAS], key, "/v1/chat/completions", BODY) for i in range(REPLICAS)]
            before = statuses.count(200)
            assert statuses[before:] == [429] * (len(statuses) - before), statuses
            assert poll(lambda: usage(server.url, "spent")[0] == before, timeout=10)
            _, tokens_before, dollars_before = usage(server.url, "spent")
            for i in range(8 * REPLICAS):  # read by more workers: one that never counted it admits it once
                listed = requests.get(bases[i % REPLICAS] + "/v1/models", headers={"Authorization": f"Bearer {key}"},
                                      timeout=10)
                assert listed.status_code == 200, listed.text
            box.set("cut")
            statuses = at_once(bases, key, 60, "/v1/chat/completions", BODY)
            admitted = statuses.count(200)
            assert len(statuses) == 60 and set(statuses) <= {200, 429, 503}, statuses
            box.set("open")
            assert poll(lambda: usage(server.url, "spent")[0] == before + admitted, timeout=15), \
                (before, admitted, usage(server.url, "spent"))
            _, tokens, dollars = usage(server.url, "spent")
            print(f"Redis cut, 60 parallel requests of a spent key ({before} admitted before) on {REPLICAS} replicas x "
                  f"{WORKERS} workers: {admitted} admitted, {tokens / BUDGET_TOKENS:.2f}x its token budget and "
                  f"{dollars / BUDGET_DOLLARS:.2f}x its dollar budget spent in all")
            most = REPLICAS * WORKERS  # the documented worst case: once per worker that had not seen it spent
            assert admitted <= most, statuses
            each_tokens, each_dollars = tokens_before / before, dollars_before / before
            assert tokens <= tokens_before + admitted * each_tokens and dollars <= dollars_before + admitted * each_dollars + 1e-6
            for replica in started:
                assert "Traceback" not in replica_log(replica)


def replica_log(replica) -> str:
    from pathlib import Path
    return "".join(p.read_text(errors="replace") for p in Path(replica.home).glob("*.log"))


def test_refuse_refuses_every_team_key_request_while_redis_is_cut(redis_box):
    """REDIS_OUTAGE=refuse: about one request every 2 s was still answered 200 (the key's cached record served
    when a retry found Redis still away). Now, once a worker found Redis away, every request with a team key is a
    503 there until Redis answers again."""
    server, box = redis_box
    with FakeOpenAI() as fake, instances(1, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                                         REDIS_URL=box.url, WORKERS=str(WORKERS), REDIS_OUTAGE="refuse") as (proxy,):
        base = f"http://127.0.0.1:{proxy.port}"
        limited = create(server.url, "limited", "--budget", "1000000/day")
        free = create(server.url, "free")
        for key in (limited, free):
            assert poll(lambda: all(chat(base, key) == 200 for _ in range(2 * WORKERS)), timeout=10)
        box.set("cut")

        def every_worker_found_it_away() -> bool:  # each within CACHE_SECONDS (0.5 s), at its next request
            for key in (limited, free):
                chat(base, key)
            return replica_log(proxy).count("refusing team-key requests (REDIS_OUTAGE=refuse)") >= WORKERS
        assert poll(every_worker_found_it_away, timeout=10)
        statuses: list[int] = []
        started = time.monotonic()
        while time.monotonic() - started < 5:  # past several retries of Redis (one a second per worker)
            statuses += [chat(base, limited), chat(base, free)]
        print(f"REDIS_OUTAGE=refuse, Redis cut: {len(statuses)} requests in 5 s, {statuses.count(200)} answered 200")
        assert set(statuses) == {503}, [s for s in statuses if s != 503]
        box.set("open")
        for key in (limited, free):
            assert poll(lambda: chat(base, key) == 200, timeout=10)


def chat(base: str, key: str) -> int:
    return requests.post(base + "/v1/chat/completions", json={"model": "gpt-4o", "messages": BODY["messages"]},
                         headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


# In one process, three workers' stores (FailoverStore over RedisKeyStore) on one key, Redis behind the middlebox:
# what each may admit once it is cut, exactly.
def record_of(name: str, tokens: int):
    from argoproxy.teamkeys.records import Budget, KeyRecord, digest
    return KeyRecord(name, digest("sk-" + name), "sk-" + name[:4], budget=Budget(tokens, "day"), created=1.0)


def spend(store, key, now: float, reserve: int, used: int | None = None, hold: str | None = None) -> bool:
    """A request of `reserve` tokens admitted and, unless it is left in flight (used None), ended having used
    `used`, its usage written as the service writes it: False when refused."""
    if hold is None:
        _, by, hold = store.reserve(key, now, reserve)
        if by:
            return False
    if used is not None:  # its team's hold and usage, then its own (as the service settles a call)
        for owner in (key,) if key.windows is None else (key.windows, key):
            usage = (owner.name, "m", used, 0, now, owner.budget, 1, 0, 0, None)
            if not store.release_hold(owner, hold, reserve, used, now, usage=usage):
                store.record_usage(*usage)
    return True


def test_each_worker_counts_from_what_it_last_saw_and_one_that_saw_nothing_admits_once(redis_box):
    """Budget 10,000 tokens; requests of 1,000. Worker a saw 7,000 left; b saw 2,000 left with 1,000 more held by
    a request of its own, which ends during the outage having used 500; c never saw the key's counts: a admits 7,
    b 2 (2,500 left), c 1. Before, each counted from an empty window: 10 each. Once Redis is back, what they used
    is written once and admission reads Redis again."""
    from argoproxy.teamkeys import failover
    from argoproxy.teamkeys.redis_store import RedisKeyStore, _budget_key
    server, box = redis_box
    a, b, c = (failover.FailoverStore(RedisKeyStore(box.url)) for _ in range(3))
    key = record_of("seen", 10_000)
    a.primary.create(key)
    now = time.time()
    assert all(spend(a, key, now, 1000, 1000) for _ in range(3))
    assert all(spend(b, key, now, 1000, 1000) for _ in range(4))
    _, by, in_flight = b.reserve(key, now, 1000)
    assert not by
    box.set("cut")
    admitted = {}
    for name, store in (("a", a), ("b", b), ("c", c)):
        if store is b:
            spend(b, key, now, 1000, 500, hold=in_flight)  # its hold given back, its 500 tokens counted
        admitted[name] = 0
        while spend(store, key, now, 1000, 1000):
            admitted[name] += 1
            assert admitted[name] <= 10
    assert admitted == {"a": 7, "b": 2, "c": 1}, admitted
    box.set("open")
    client = server_client(server)

    def written() -> bool:
        for store in (a, b, c):
            store.heartbeat()  # each worker's flusher does so every 0.5 s: Redis is tried again once a second
        return int(client.get(_budget_key(key.name, key.budget, now))) == 7000 + 500 + 10 * 1000  # each once
    assert poll(written, timeout=10)
    for store in (a, b, c):  # refused by Redis's count (not this worker's own), and every hold given back
        _, by, hold = store.reserve(key, now, 1)
        assert by == "budget" and hold != failover.LOCAL
    assert not client.exists(f"cot_proxy:held:{key.name}", f"cot_proxy:flight:{key.name}")


def server_client(server):
    import redis
    return redis.Redis.from_url(server.url, decode_responses=True)


def test_a_team_is_counted_from_what_the_worker_last_saw_of_it(redis_box):
    """Keys of a team share its budget (5,000 tokens): worker a saw the team with 3,000 left, through ann's
    requests; cut off, it admits 3 of bob's, whom it never served (his own key has no limits), and worker c,
    which never saw the team's counts, admits one."""
    from argoproxy.teamkeys import failover
    from argoproxy.teamkeys.records import Budget, KeyRecord, TeamRecord, digest
    from argoproxy.teamkeys.redis_store import RedisKeyStore
    server, box = redis_box
    a, c = (failover.FailoverStore(RedisKeyStore(box.url)) for _ in range(2))
    a.primary.create_team(TeamRecord("lab", budget=Budget(5000, "day")))
    for name in ("ann", "bob"):
        a.primary.create(KeyRecord(name, digest("sk-" + name), "sk-", team="lab", created=1.0))
    ann, bob = (a.find(digest("sk-" + name)) for name in ("ann", "bob"))
    assert bob.windows is not None and bob.windows.name == "team/lab"
    now = time.time()
    assert all(spend(a, ann, now, 1000, 1000) for _ in range(2))
    box.set("cut")
    admitted = {}
    for name, store in (("a", a), ("c", c)):
        admitted[name] = 0
        while spend(store, bob, now, 1000, 1000):
            admitted[name] += 1
            assert admitted[name] <= 5
        _, by, _ = store.reserve(bob, now, 1000)
        assert by == "team_budget", by
    assert admitted == {"a": 3, "c": 1}, admitted


def test_what_a_worker_saw_in_an_earlier_period_is_not_what_is_left_in_this_one(redis_box):
    """A worker that last saw the key yesterday (its daily budget then barely used) knows nothing of today's
    spending: it admits the key once, as one that never saw it, not a whole budget."""
    from argoproxy.teamkeys import failover
    from argoproxy.teamkeys.redis_store import RedisKeyStore
    server, box = redis_box
    a = failover.FailoverStore(RedisKeyStore(box.url))
    key = record_of("yesterday", 10_000)
    a.primary.create(key)
    now = time.time()
    assert spend(a, key, now - 86400, 1000, 1000)
    box.set("cut")
    admitted = 0
    while spend(a, key, now, 1000, 1000):
        admitted += 1
        assert admitted <= 10
    assert admitted == 1
