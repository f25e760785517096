"""Which model names become /metrics labels (observe/metrics.Metrics.model_label)."""

from __future__ import annotations

from argoproxy.config.settings import load_settings
from argoproxy.observe.metrics import Metrics
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.call_records import ended, started


def label(metrics: Metrics, model: str, status: int = 200) -> str:
    call = Call.of("chat", "POST", "v1/chat/completions")
    call.plan.model, call.outcome.status = model, status
    return metrics.model_label(started(call), ended(call))


def test_a_served_name_is_a_label_and_a_refused_one_is_not(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = Metrics(load_settings(environ={}))
    assert label(metrics, "gpt-4o") == "gpt-4o"
    assert label(metrics, "made-up", status=404) == "other"


def test_a_proxy_made_key_written_into_a_model_name_is_never_a_label(monkeypatch):
    """An upstream that answers any name (llama.cpp, the bench's) made a client's pasted key a series that every
    scrape of /metrics showed."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = Metrics(load_settings(environ={}))
    assert label(metrics, "m-sk-proxy-" + "A" * 40) == "other"
    assert label(metrics, "sk-proxy-gpt") == "other"
