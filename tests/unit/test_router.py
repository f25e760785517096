"""The router in-process: name and glob -> pool, least in flight with weights and random ties, cooldown,
fallback chains, health; the cooldown board is shared between processes."""

import os
from collections import Counter

from argoproxy.config.routing_settings import ModelEntry
from argoproxy.routing.router import Router
from argoproxy.shared_cells import SharedCells
from argoproxy.upstream.wire import describe_host


def entry(name, url="http://h1:8000/v1/", backend="openai", weight=1.0, upstream_model=""):
    return ModelEntry(name=name, backend=backend, base_url=url, weight=weight, upstream_model=upstream_model)


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def router(entries, fallbacks=(), **kw):
    return Router(entries, fallbacks, lambda e: describe_host(e.base_url or "http://default/"), **kw)


def test_exact_names_first_then_the_first_matching_glob():
    r = router([entry("argo:*", backend="argo"), entry("gpt-4o"), entry("*", url="http://catchall/"),
                entry("argo:gpt-4o", url="http://special/")])
    assert r.pool_for("argo:gpt-4o").name == "argo:gpt-4o"
    assert r.pool_for("argo:claude").name == "argo:*"
    assert r.pool_for("llama").name == "*"
    assert r.pool_for("gpt-4o").deployments[0].served_by == "h1:8000"
    assert router([entry("a")]).pool_for("b") is None


def test_glob_results_are_cached_within_a_bound():
    r = router([entry("x-*")])
    for i in range(5000):
        r.pool_for(f"y-{i}")
    assert len(r._glob_cache) <= 4096


def test_same_name_is_one_pool_and_upstream_model_defaults_to_the_name():
    r = router([entry("q", "http://a:1/", upstream_model="Qwen/Qwen3-8B"), entry("q", "http://b:2/")])
    pool = r.pool_for("q")
    assert [d.served_by for d in pool.deployments] == ["a:1", "b:2"]
    assert [d.upstream_model("q") for d in pool.deployments] == ["Qwen/Qwen3-8B", "q"]


def test_fewest_in_flight_wins():
    r = router([entry("q", "http://a:1/"), entry("q", "http://b:2/"), entry("q", "http://c:3/")])
    a, b, c = r.pool_for("q").deployments
    a.in_flight, b.in_flight, c.in_flight = 3, 1, 2
    assert r.pick(r.pool_for("q")) is b
    # spreading: each pick followed by its request starting leaves the counts level
    a.in_flight = b.in_flight = c.in_flight = 0
    for _ in range(30):
        r.pick(r.pool_for("q")).in_flight += 1
    assert (a.in_flight, b.in_flight, c.in_flight) == (10, 10, 10)


def test_ties_are_broken_at_random_in_proportion_to_weight():
    import random
    rng = random.Random(7)
    r = router([entry("q", "http://a:1/", weight=3), entry("q", "http://b:2/", weight=1)], rand=rng.random)
    pool = r.pool_for("q")
    counts = Counter(r.pick(pool).served_by for _ in range(4000))
    assert 2800 < counts["a:1"] < 3200, counts
    even = router([entry("q", "http://a:1/"), entry("q", "http://b:2/")], rand=rng.random)
    counts = Counter(even.pick(even.pool_for("q")).served_by for _ in range(2000))
    assert 900 < counts["a:1"] < 1100, counts


def test_weights_scale_in_flight():
    r = router([entry("q", "http://a:1/", weight=2), entry("q", "http://b:2/", weight=1)])
    a, b = r.pool_for("q").deployments
    a.in_flight, b.in_flight = 3, 1  # 1.5 vs 1.0 per unit of weight
    assert r.pick(r.pool_for("q")) is b
    a.in_flight = 1  # 0.5 vs 1.0
    assert r.pick(r.pool_for("q")) is a


def test_tried_deployments_are_skipped_until_none_is_left():
    r = router([entry("q", "http://a:1/"), entry("q", "http://b:2/")])
    pool = r.pool_for("q")
    first = r.pick(pool)
    second = r.pick(pool, {first.index})
    assert second is not first
    assert r.pick(pool, {first.index, second.index}) is None


def test_a_cooling_deployment_gets_no_traffic_while_another_serves():
    clock = Clock()
    r = router([entry("q", "http://a:1/"), entry("q", "http://b:2/")], clock=clock, cooldown_seconds=5)
    a, b = r.pool_for("q").deployments
    r.cool_down(a, error="refused")
    assert all(r.pick(r.pool_for("q")) is b for _ in range(50))
    assert r.state(a) == "down" and r.state(b) == "up"
    clock.now += 5.01
    assert r.state(a) == "up"


def test_retry_after_sets_a_longer_cooldown_and_a_later_end_wins():
    clock = Clock()
    r = router([entry("q", "http://a:1/"), entry("q", "http://b:2/")], clock=clock, cooldown_seconds=5)
    a, _ = r.pool_for("q").deployments
    r.cool_down(a, 30, rate_limited=True)
    r.cool_down(a)  # a shorter one does not shorten it
    assert r.state(a) == "rate_limited" and 29.9 < r.cooling_for(a) <= 30
    r.recover(a)  # a probe does not end a 429's Retry-After
    assert r.state(a) == "rate_limited"


def test_when_every_deployment_cools_the_soonest_back_is_still_tried():
    clock = Clock()
    r = router([entry("q", "http://a:1/"), entry("q", "http://b:2/")], clock=clock)
    a, b = r.pool_for("q").deployments
    r.cool_down(a, 20)
    r.cool_down(b, 10)
    assert r.pick(r.pool_for("q")) is b
    assert r.pick(r.pool_for("q"), {b.index}) is a


def test_fallback_chain_skips_unroutable_and_repeated_pools():
    r = router([entry("qwen3", "http://a:1/"), entry("gpt-4o", "http://b:2/"), entry("argo:*", backend="argo")],
               fallbacks=[("qwen3", ("gpt-4o", "qwen3", "argo:gpt-4o"))])
    assert [name for name, _ in r.chain("qwen3")] == ["qwen3", "gpt-4o", "argo:gpt-4o"]
    assert [name for name, _ in r.chain("gpt-4o")] == ["gpt-4o"]
    assert r.chain("nothing") == []


def test_health_is_ok_while_every_pool_has_a_deployment_that_serves():
    clock = Clock()
    r = router([entry("q", "http://a:1/"), entry("q", "http://b:2/"), entry("solo", "http://c:3/")], clock=clock)
    a, b = r.pool_for("q").deployments
    c = r.pool_for("solo").deployments[0]
    r.cool_down(a, error="connection refused")
    ok, rows = r.health()
    assert ok
    assert [row["state"] for row in rows] == ["down", "up", "up"]
    assert rows[0]["error"] == "connection refused" and rows[0]["served_by"] == "a:1"
    r.cool_down(c)
    assert r.health()[0] is False


def test_an_active_probe_brings_a_failed_deployment_back_and_takes_a_dead_one_out():
    clock = Clock()
    r = router([entry("q", "http://a:1/"), entry("q", "http://b:2/")], clock=clock)
    a, b = r.pool_for("q").deployments
    r.cool_down(a, error="refused")
    r.probe_all(lambda dep: None if dep is a else "refused")
    assert r.state(a) == "up" and r.state(b) == "down"


def test_the_cooldown_board_is_shared_between_processes(tmp_path):
    entries = [entry("q", "http://a:1/"), entry("q", "http://b:2/")]
    cells = SharedCells("cooldown.cells", 4, directory=str(tmp_path))
    r = router(entries, cells=cells)
    pid = os.fork()
    if pid == 0:  # another worker: its own mapping of the same file
        child = router(entries, cells=SharedCells("cooldown.cells", 4, directory=str(tmp_path)))
        child.cool_down(child.pool_for("q").deployments[0], 60)
        os._exit(0)
    os.waitpid(pid, 0)
    assert r.state(r.pool_for("q").deployments[0]) == "down"


def test_every_worker_tells_why_a_deployment_is_down(tmp_path, monkeypatch):
    """Two workers' routers over one shared directory: the cooldown was shared but its reason was not, so
    /health named the error only on the worker that had seen it (3 of 8 answers left it out)."""
    from argoproxy.shared_cells import SHARED_DIR_ENV
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    entries = [entry("qwen3", url="http://a/"), entry("qwen3", url="http://b/")]
    seeing, other = router(entries), router(entries)
    seeing.cool_down(seeing.deployments[0], error="overloaded at gpu7 " + "é" * 300)
    down = [row for row in other.health()[1] if row["state"] == "down"]
    assert len(down) == 1 and down[0]["error"].startswith("overloaded at gpu7 é")
    assert len(down[0]["error"].encode()) <= 256  # cut whole characters to the record's size
    other.recover(other.deployments[0])
    assert all("error" not in row for row in seeing.health()[1])
    seeing.cool_down(seeing.deployments[1], error="bad \ud800 thing")  # an upstream's lone surrogate
    assert "bad" in [row for row in other.health()[1] if row["state"] == "down"][0]["error"]
