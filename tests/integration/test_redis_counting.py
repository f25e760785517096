"""The Redis key store's counting against a real redis-server: the same decisions as the window arithmetic
the SQLite store uses (argoproxy/teamkeys/windows.py), one budget for clients racing from many connections,
a refused request taken back, and a re-created key starting from nothing."""

from __future__ import annotations

import random
import threading

import pytest

from argoproxy.teamkeys import windows
from argoproxy.teamkeys.records import Budget, KeyRecord, digest
from argoproxy.teamkeys.redis_store import LEASE_MAX, RedisKeyStore


def record(name: str, rpm: int = 0, tpm: int = 0, budget: Budget | None = None) -> KeyRecord:
    return KeyRecord(name, digest("sk-" + name), "sk-" + name[:4], rpm=rpm, tpm=tpm, budget=budget, created=1.0)


def test_decisions_match_the_window_arithmetic(redis_url):
    rng = random.Random(21)
    store = RedisKeyStore(redis_url, lease_max=1)  # every decision in Redis (leases: below)
    key = record("same", rpm=5, tpm=400, budget=Budget(2_000, "hour"))
    store.create(key)
    state = list(windows.NEW_STATE)
    now = 1_800_000_000.0
    for _ in range(400):
        now += rng.choice((0.5, 3.0, 11.0, 40.0))
        expected = windows.admit(state, key.rpm, key.tpm, key.budget, now)
        got = store.admit(key, now)
        assert got[1] == expected[1] and got[0] == pytest.approx(expected[0], abs=1e-6), now
        if not got[1] and rng.random() < 0.7:
            tokens = rng.randint(1, 150)
            windows.add_tokens(state, tokens, key.budget, now)
            store.record_usage(key.name, "m", tokens, 0, now, key.budget)


@pytest.mark.parametrize("limits,refused_by,longest", [({"rpm": 1}, "requests", windows.WINDOW),
                                                       ({"tpm": 10}, "tokens", windows.WINDOW),
                                                       ({"budget": Budget(10, "day")}, "budget", 86400)])
def test_each_limit_refuses_with_the_seconds_until_it_frees(redis_url, limits, refused_by, longest):
    store = RedisKeyStore(redis_url)
    key = record("each-" + refused_by, **limits)
    store.create(key)
    at = 1_900_000_020.0
    assert store.admit(key, at) == (0.0, "")
    store.record_usage(key.name, "m", 50, 0, at, key.budget)
    waiting, by = store.admit(key, at + 1)
    assert by == refused_by and 0 < waiting <= longest


def test_racing_clients_get_exactly_the_budget(redis_url):
    store_of = [RedisKeyStore(redis_url) for _ in range(8)]  # eight replicas' connections
    key = record("race", rpm=30)
    store_of[0].create(key)
    now = 1_800_000_000.0  # one moment: nothing slides out
    admitted = []

    def client(store: RedisKeyStore) -> None:
        for _ in range(20):
            admitted.append(store.admit(key, now)[1] == "")
    threads = [threading.Thread(target=client, args=(s,)) for s in store_of]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(admitted) == 160
    assert sum(admitted) == 30
    # refused requests were taken back: the count is the budget, so the next window's estimate is exact
    assert store_of[0].redis.get(f"cot_proxy:req:race:{int(now // 60)}") == "30"


def test_a_recreated_key_starts_with_nothing_counted(redis_url):
    store = RedisKeyStore(redis_url)
    key = record("again", rpm=1, budget=Budget(100, "day"))
    now = 1_800_000_000.0
    store.create(key)
    assert store.admit(key, now) == (0.0, "")
    store.record_usage(key.name, "m", 100, 0, now, key.budget)
    assert store.admit(key, now)[1] in ("requests", "budget")
    assert store.revoke(key.name, now)
    store.create(record("again", rpm=1, budget=Budget(100, "day")))
    assert store.admit(key, now + 1) == (0.0, "")
    assert ("again", "m", "2027-01-15", 1, 100, 0, 0, 0) in store.usage()  # its history stays: it is the audit


def test_an_updated_key_keeps_its_digest_and_a_revoked_one_cannot_be_updated(redis_url):
    store = RedisKeyStore(redis_url)
    key = record("changing", rpm=1)
    store.create(key)
    assert store.update("changing", {"rpm": 0, "models": ("gpt-*",), "budget": Budget(500, "week")})
    found = store.find(key.digest)
    assert (found.rpm, found.models, found.budget, found.prefix) == (0, ("gpt-*",), Budget(500, "week"), key.prefix)
    assert store.revoke("changing")
    assert not store.update("changing", {"rpm": 5}) and not store.update("nobody", {"rpm": 5})


def test_a_usage_write_sent_twice_under_one_number_counts_once(redis_url):
    """What the failover sends again after a timeout (failover.WriteNumbers): carried out once."""
    store = RedisKeyStore(redis_url)
    now = 1_800_000_000.0
    for _ in range(3):
        store.record_usage("twice", "m", 7, 3, now, Budget(100, "day"), op=("writer-a", 41))
    store.record_usage("twice", "m", 7, 3, now, Budget(100, "day"), op=("writer-b", 41))  # another writer's 41
    assert ("twice", "m", "2027-01-15", 2, 14, 6, 0, 0) in store.usage()


def _increments(store: RedisKeyStore) -> int:
    stats = store.redis.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("incr", "incrby"))


def test_leases_far_from_the_limit_cost_few_round_trips_and_never_overshoot(redis_url):
    stores = [RedisKeyStore(redis_url) for _ in range(8)]
    key = record("leased", rpm=3200)  # keys with token limits hold a reservation per request (test_reservations.py)
    stores[0].create(key)
    now = 1_800_000_000.0
    before = _increments(stores[0])
    assert all(stores[0].admit(key, now) == (0.0, "") for _ in range(640))
    assert _increments(stores[0]) - before <= 2 * 640 // (LEASE_MAX - 1) + 4  # a round trip or two per lease
    admitted = [640]

    def client(store: RedisKeyStore) -> None:
        got = sum(store.admit(key, now)[1] == "" for _ in range(600))
        admitted.append(got)
    threads = [threading.Thread(target=client, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(admitted) <= 3200
    for store in stores:  # what leases left unused goes back, so nothing reserved is lost
        store.release_leases(expired_only=False)
    assert int(stores[0].redis.get(f"cot_proxy:req:leased:{int(now // 60)}")) == sum(admitted)
    while stores[0].admit(key, now)[1] == "":
        admitted.append(1)
    assert sum(admitted) == 3200


def test_near_a_token_limit_no_lease_is_taken(redis_url):
    store = RedisKeyStore(redis_url)
    key = record("tokens-near", rpm=10**6, tpm=1000)
    store.create(key)
    now = 1_800_000_000.0
    store.record_usage(key.name, "m", 600, 0, now, None)  # over half the tpm: every admission reads the counts
    before = _increments(store)
    for _ in range(5):
        assert store.admit(key, now) == (0.0, "")
    assert _increments(store) - before == 5
    store.record_usage(key.name, "m", 400, 0, now, None)
    assert store.admit(key, now)[1] == "tokens"


def test_leases_reserved_by_threads_of_one_worker_are_all_given_back(redis_url):
    """A gthread worker (or greenlets) admitting one key at once: each admission may reserve a lease, and one
    must not replace another's (the replaced lease's slots were never given back: the counter stayed at the rpm
    with far fewer requests served, and every later request that minute was refused)."""
    store = RedisKeyStore(redis_url)
    key = record("threads", rpm=3200)
    store.create(key)
    now = 1_800_000_000.0
    admitted = []

    def client() -> None:
        admitted.append(sum(store.admit(key, now)[1] == "" for _ in range(50)))
    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    store.release_leases(expired_only=False)
    assert int(store.redis.get(f"cot_proxy:req:threads:{int(now // 60)}")) == sum(admitted) == 400


@pytest.mark.parametrize("limits", [{"budget": Budget(1000, "day")}, {"tpm": 1000}])
def test_a_reservation_is_admitted_only_while_it_fits_in_what_is_left(redis_url, limits):
    """The admission script and the window arithmetic agree: what requests in flight hold, the tokens used and
    this request's own reservation together within the limit (parallel requests cannot pass it)."""
    store = RedisKeyStore(redis_url)
    key = record("fits-" + next(iter(limits)), **limits)
    store.create(key)
    state = list(windows.NEW_STATE)
    now = 1_800_000_010.0
    decided = []
    for reserve in (600, 401, 400, 1):
        expected = windows.admit(state, key.rpm, key.tpm, key.budget, now, reserve)
        got = store.admit(key, now, reserve)
        assert got[1] == expected[1] and got[0] == pytest.approx(expected[0], abs=1e-6), reserve
        decided.append(got[1])
    by = "budget" if "budget" in limits else "tokens"
    assert decided == ["", by, "", by]  # 600 + 400 fill it exactly; 401 or 1 more do not fit
