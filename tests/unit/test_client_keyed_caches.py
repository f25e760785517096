"""Caches keyed by what clients send (model names) are bounded in entries and in the size of what they keep:
30 requests naming 4 MB models kept 140 MB in a worker (the think-configuration cache held every name), and
256 entries of 32 MB names would have held 8 GB."""

from __future__ import annotations

import gc
import tracemalloc

from argoproxy.edge.client_caches import BoundedCache
from argoproxy.edge.http_objects import Request
from argoproxy.serve.proxy import build_proxy
from argoproxy.config.settings import load_settings
from tests.fakes.fake_upstream import FakeUpstream


def test_long_keys_are_built_every_time_and_never_kept():
    cache = BoundedCache(entries=4, key_chars=16)
    built = []
    for _ in range(2):
        assert cache.get(("x" * 17, None), lambda: built.append(1) or "long") == "long"
        assert cache.get(("short", "m"), lambda: built.append(2) or "short") == "short"
    assert built == [1, 2, 1] and len(cache) == 1


def test_entries_are_capped():
    cache = BoundedCache(entries=3)
    for i in range(10):
        cache.get(str(i), lambda: i)
    assert len(cache) <= 3


def test_requests_naming_huge_models_leave_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off",
                                          "TARGET_BASE_URL": "http://upstream.test/v1/"})
    upstream = FakeUpstream()
    door = build_proxy(settings, upstream)
    # once per process, not per request: the price table, read when the first answer is priced
    assert door.handle(Request.of("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})).status_code == 200
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(8):
            body = {"model": f"{i}" + "m" * (1 << 20), "messages": [{"role": "user", "content": "x"}]}
            assert door.handle(Request.of("POST", "/v1/chat/completions", body)).status_code == 200
            upstream.sent.clear()  # the fake's own record of what it was sent
        gc.collect()  # what a request left in reference cycles is not kept, only not yet freed
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 2 << 20, kept  # under two of the eight 1 MB names


def test_a_huge_model_name_costs_no_pattern_time(tmp_path, monkeypatch):
    # `qwen3.*think` rescans from every "qwen3": a 200 KB name of them took 55 s of one worker's CPU.
    import time
    from argoproxy.config.llm_params import starts_inside
    assert starts_inside("Qwen3-32B-thinking") and starts_inside("deepseek-r1") and not starts_inside("gpt-4o")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off",
                                          "TARGET_BASE_URL": "http://upstream.test/v1/"})
    door = build_proxy(settings, FakeUpstream())
    started = time.perf_counter()
    body = {"model": "qwen3" * 200_000, "messages": [{"role": "user", "content": "x"}]}
    assert door.handle(Request.of("POST", "/v1/chat/completions", body)).status_code == 200
    assert time.perf_counter() - started < 1.0
