"""Answers whose model has no price, counted per model in /metrics (cot_proxy_unpriced_requests_total), and priced
ones in the cost, through the door in-process: each model's series is its own child, kept after its first answer
(observe/metrics.py), so a second model's answers never land in the first's."""

from __future__ import annotations

import json
import re

from argoproxy.config.settings import load_settings
from argoproxy.edge.http_objects import Request
from argoproxy.serve.proxy import build_proxy
from tests.fakes.fake_upstream import FakeUpstream

PRICES = json.dumps({"models": {"house-priced": {"input_mtok": 1000, "output_mtok": 1000}}})  # $0.001 a token
ADMIN = {"Authorization": "Bearer sk-admin-0123456789"}


def test_unpriced_answers_are_counted_per_model_and_priced_ones_cost(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = load_settings({}, environ={"HOME": str(tmp_path), "ENABLE_AUTH": "true", "PRICES": PRICES,
                                          "API_KEY_SECRET": "sk-admin-0123456789",
                                          "TARGET_BASE_URL": "http://upstream.test/v1"})
    door = build_proxy(settings, FakeUpstream())
    for model in ("house-a", "house-b", "house-a", "house-priced", "house-a"):
        answer = door.handle(Request.of("POST", "/v1/chat/completions",
                                        {"model": model, "messages": [{"role": "user", "content": "hi"}]},
                                        headers=ADMIN))
        assert answer.status_code == 200, answer.get_data()
        answer.get_data()
    metrics = door.handle(Request.of("GET", "/metrics", headers=ADMIN)).get_data().decode()
    unpriced = dict(re.findall(r'^cot_proxy_unpriced_requests_total\{model="([^"]+)"\} (\S+)$', metrics, re.M))
    assert unpriced == {"house-a": "3.0", "house-b": "1.0"}
    cost = re.findall(r'^cot_proxy_cost_usd_total\{key="none",model="([^"]+)"\} (\S+)$', metrics, re.M)
    assert cost == [("house-priced", "0.007")]  # the fake's 3 prompt and 4 completion tokens at $0.001 each
