"""The fast path's OTLP encoder (argoproxy/fastpath/otlp.py) writes what the SDK's encoder writes: both outputs
decoded with opentelemetry-proto are the same message, for spans of every kind, status, parent and attribute
type, several resources and scopes; and the lean exporter sends it through the exporter's own client."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from argoproxy.fastpath import otlp
from tests.fakes.otlp_receiver import OtlpReceiver

RESOURCE = Resource({"service.name": "cot_proxy", "host.cores": 2, "deployment.weights": [0.5, 1.5]})
OTHER = Resource({"service.name": "other"}, "https://opentelemetry.io/schemas/1.30.0")
SCOPE = InstrumentationScope("cot_proxy")
VERSIONED = InstrumentationScope("lib", "1.2", "https://schema", {"scope.flag": True})
TRACE, PARENT = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331


def context(span_id: int, remote: bool = False, state: TraceState | None = None) -> SpanContext:
    return SpanContext(TRACE, span_id, remote, TraceFlags(3), state or TraceState())


def readable(name: str, span_id: int, parent: SpanContext | None = None, attributes: dict | None = None,
             kind: SpanKind = SpanKind.SERVER, status: Status = Status(StatusCode.UNSET), resource: Resource = RESOURCE,
             scope: InstrumentationScope | None = SCOPE, state: TraceState | None = None) -> ReadableSpan:
    return ReadableSpan(name, context(span_id, state=state), parent, resource, attributes, kind=kind, status=status,
                        start_time=1_795_000_000_000_000_000 + span_id, end_time=1_795_000_000_500_000_000 + span_id,
                        instrumentation_scope=scope)


def decoded(data: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(data)
    return message


def same_as_the_sdk(spans: list[ReadableSpan]) -> None:
    mine, theirs = decoded(otlp.encode_request(spans)), encode_spans(spans)
    assert mine == theirs, f"{mine}\n!=\n{theirs}"


SPANS = [
    readable("chat gpt-4o", 1, context(PARENT, remote=True), {
        "http.request.method": "POST", "http.response.status_code": 200, "gen_ai.request.temperature": 0.25,
        "gen_ai.request.stream": True, "gen_ai.response.finish_reasons": ["stop", "length"],
        "gen_ai.request.seed": -7, "big": 2 ** 62, "empty": "", "unicode": "naïve – 日本語 🎉",
        "gen_ai.request.stop_sequences": [], "flags": [True, False], "numbers": [1, 2, 3]},
        state=TraceState([("vendor", "x"), ("other", "y")])),
    readable("chat m", 2, context(1), {"server.port": 8080, "error.type": "503"}, SpanKind.CLIENT,
             Status(StatusCode.ERROR)),
    readable("chat m", 3, context(1), {"error.type": "upstream_timeout"}, SpanKind.CLIENT,
             Status(StatusCode.ERROR, "ReadTimeout")),
    readable("background chat m", 4, context(1), {}, SpanKind.INTERNAL),
    readable("GET passthrough", 5, None, None, SpanKind.SERVER, Status(StatusCode.OK)),
    readable("long", 6, None, {"gen_ai.input.messages": "x" * 70_000}),
]


def test_the_same_message_as_the_sdks_encoder():
    same_as_the_sdk(SPANS)
    for span in SPANS:
        same_as_the_sdk([span])


def test_spans_grouped_by_resource_then_scope_in_order():
    spans = [readable("a", 1), readable("b", 2, resource=OTHER), readable("c", 3, scope=VERSIONED),
             readable("d", 4), readable("e", 5, resource=OTHER, scope=None)]
    same_as_the_sdk(spans)


def test_repeated_texts_are_written_anew_once_the_table_fills(monkeypatch):
    monkeypatch.setattr(otlp, "_PAIRS_KEPT", 3)
    monkeypatch.setattr(otlp, "_pairs", {})
    spans = [readable("s", i, None, {"model": f"m{i % 5}", "n": i, "x": 1.0}) for i in range(1, 12)]
    same_as_the_sdk(spans)
    assert all(len(kept) <= 3 for kept in otlp._pairs.values())
    same_as_the_sdk([readable("t", 1, None, {"x": 1}), readable("t", 2, None, {"x": 1.0}),
                     readable("t", 3, None, {"x": True})])  # 1, 1.0 and True: three encodings


def test_the_lean_exporter_sends_through_the_exporters_client():
    with OtlpReceiver() as receiver:
        exporter = otlp.LeanSpanExporter(endpoint=receiver.endpoint + "/v1/traces")
        assert exporter.export(SPANS) is SpanExportResult.SUCCESS
        assert [s.name for s in receiver.spans] == [s.name for s in SPANS] and receiver.refused == []
        # a span with an event is not the proxy's: the SDK's encoder writes it
        event = ReadableSpan("e", context(9), None, RESOURCE, {}, events=[Event("ev", {"k": "v"}, 1)],
                             instrumentation_scope=SCOPE, start_time=1, end_time=2)
        assert exporter.export([event]) is SpanExportResult.SUCCESS
        assert receiver.spans[-1].name == "e"
        exporter.shutdown()
    assert otlp.LeanSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", timeout=1).export(SPANS) is \
        SpanExportResult.FAILURE
