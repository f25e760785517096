"""A span's record (tracing/tracer.py's Record) is not tracked by the garbage collector: a reference cycle through
one would never be collected, and would hold what it reaches for the worker's life. Through the door in-process,
traced, with either exporter (the SDK's, FAST_PATH=off; the fast path's), every record a request made is freed once
its spans are exported: what the tracer's module allocated and still holds does not grow with the requests served
(an answered request, one continuing a client's trace, an upstream's error, a stream, a refused request)."""

from __future__ import annotations

import gc
import json
import tracemalloc
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from argoproxy.config.settings import load_settings
from argoproxy.edge.http_objects import Request
from argoproxy.tracing import tracer as tracing
from argoproxy.serve.proxy import build_proxy
from tests.fakes.fake_upstream import FakeUpstream, sse_chunks
from tests.fakes.otlp_receiver import OtlpReceiver

CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}).encode()
STREAM = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
CONTINUED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "vendor=x"}
BUSY = {"error": {"message": "busy", "type": "server_error"}}


def serve(door: Any, upstream: FakeUpstream, rounds: int) -> None:
    """Rounds of the requests the tracer meets, each its own kind of spans."""
    for _ in range(rounds):
        for body, headers, answer in ((CHAT, {}, None), (CHAT, CONTINUED, None), (CHAT, {}, "busy"),
                                      (STREAM, {}, "stream"), (b"{not json", {}, None)):
            if answer == "busy":
                upstream.reply(BUSY, status=503)
            elif answer == "stream":
                upstream.stream(sse_chunks(["Hel", "lo"]))
            door.handle(Request.of("POST", "/v1/chat/completions", body,
                                   {"Content-Type": "application/json", **headers})).get_data()
        upstream.sent.clear()  # (the fake keeps what it was sent: its traceparents among it)


def sdk_batching(most: int, size: int) -> BatchSpanProcessor:
    return BatchSpanProcessor(OTLPSpanExporter(), max_queue_size=most, max_export_batch_size=size)


def held_by_tracing() -> int:
    """Bytes the tracer's module allocated that are still alive, once every span is exported."""
    tracing.Sdk.get().provider.force_flush()
    gc.collect()
    only = [tracemalloc.Filter(True, tracing.__file__)]
    return sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces(only).statistics("filename"))


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_every_record_is_freed_once_its_spans_are_exported(monkeypatch, fast_path):
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)  # the SDK's exporter reads it
        monkeypatch.setattr(tracing.Sdk, "_instance", None)  # this test's exporter, made anew: the SDK's, unless
        monkeypatch.setattr(tracing.Sdk, "batching", staticmethod(sdk_batching))  # the door hands the fast path's
        settings = load_settings({}, environ={"TRACING": "on", "FAST_PATH": fast_path,
                                              "TARGET_BASE_URL": "http://upstream.test/v1"})
        upstream = FakeUpstream()
        door = build_proxy(settings, upstream)
        try:
            serve(door, upstream, 20)  # the tracer's bounded tables filled
            tracemalloc.start(1)
            try:
                serve(door, upstream, 5)
                before = held_by_tracing()
                serve(door, upstream, 100)  # 500 requests more, about 1,000 records
                after = held_by_tracing()
            finally:
                tracemalloc.stop()
            assert receiver.wait(lambda spans: len(spans) >= 125 * 9)  # every span exported
        finally:
            tracing.shutdown()
    assert after - before < 2_000, (before, after)
