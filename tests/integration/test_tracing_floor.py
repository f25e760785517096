"""bench/run.py's tracing floor (bench/tracing_floor/sitecustomize.py) is a bound on the product's tracer only while
it writes what the product writes: for the bench's request, through the running app, both proxies' spans are
decoded and compared attribute by attribute (their ids and times aside), the floor's tracer is shown to be the
one that ran in the worker that wrote them, and a request the bench never makes (a probe, a refused request)
costs it no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, chat_completion
from tests.fakes.otlp_receiver import OtlpReceiver, Span
from tests.proxy_process import ROOT, running_proxy

sys.path.insert(0, str(ROOT / "bench"))
from client import chat_body  # noqa: E402  (the bench's own request)
from targets import FLOOR_SAYS  # noqa: E402  (what a floor's worker says: bench/run.py checks it too)

pytestmark = pytest.mark.timeout(120)
FLOOR = ROOT / "bench" / "tracing_floor"


def spans_of(receiver: OtlpReceiver, upstream: FakeOpenAI, **settings: str) -> tuple[list[Span], dict[str, str], str]:
    """The spans of one bench request, the headers the upstream received, and what the proxy logged once a probe
    and a refused request followed."""
    receiver.clear()
    upstream.add(Reply({**chat_completion("Hello."), "id": "chatcmpl-bench"}))
    with running_proxy(TARGET_BASE_URL=upstream.base_url, TRACING="on", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                       OTEL_BSP_SCHEDULE_DELAY="50", FAST_PATH="on", **settings) as proxy:  # the bench's default
        r = requests.post(proxy.base_url + "/chat/completions", data=chat_body(), timeout=30,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        spans = receiver.wait(lambda found: len(found) == 2)
        assert requests.get(proxy.url + "/health", timeout=30).status_code == 200
        refused = requests.post(proxy.base_url + "/chat/completions", data=b"{not json", timeout=30,
                                headers={"Content-Type": "application/json"})
        assert refused.status_code == 400, refused.text
    [asked] = [q for q in upstream.received if q.path.endswith("/chat/completions")][-1:]  # (the probe asks too)
    return spans, asked.headers, proxy.log


def described(spans: list[Span]) -> list[tuple]:
    ids = ("cot_proxy.request_id",)
    return sorted((s.name, s.kind, bool(s.parent_id), s.status, s.service, s.scope, s.flags,
                   json.dumps({k: v for k, v in s.attributes.items() if k not in ids}, sort_keys=True))
                  for s in spans)


def test_the_floor_writes_the_products_spans_for_the_bench_request():
    with OtlpReceiver() as receiver, FakeOpenAI() as upstream:
        product, product_sent, product_log = spans_of(receiver, upstream)
        floor, sent, floor_log = spans_of(receiver, upstream, PYTHONPATH=f"{FLOOR}:{ROOT}")
    # the floor's tracer is the one that ran in the worker (else this compares the product with itself)
    assert FLOOR_SAYS in floor_log and FLOOR_SAYS not in product_log, floor_log[-2000:]
    assert "Traceback" not in floor_log and "Traceback" not in product_log, floor_log[-2000:]
    assert described(floor) == described(product)
    server = next(s for s in floor if s.kind == "SERVER")
    client = next(s for s in floor if s.kind == "CLIENT")
    assert client.parent_id == server.span_id and client.trace_id == server.trace_id
    assert client.named_by(sent["traceparent"])  # the attempt's context went upstream
    assert sent["traceparent"][-3:] == product_sent["traceparent"][-3:]  # with the product's flags
    assert server.start_ns <= client.start_ns <= client.end_ns == server.end_ns


def test_the_floor_is_the_tracer_that_ran():
    """Its patch takes where the proxy's workers start (the floor first on PYTHONPATH): a silent miss would measure
    the product twice."""
    code = "from argoproxy.tracing import tracer as tracing; print(tracing.Tracing.__init__.__qualname__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "PYTHONPATH": f"{FLOOR}:{ROOT}"})
    assert out.stdout.strip() == "_Patch.exec_module.<locals>.init", out.stderr
