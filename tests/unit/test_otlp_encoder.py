"""The fast path's OTLP encoder (argoproxy/fastpath/otlp.py) writes the proxy's span records as the SDK's encoder
writes the same spans: both outputs decoded with opentelemetry-proto are the same message, for spans of every kind,
status and parent, attributes of every type shared or a span's own, resources and scopes with and without schemas.
Its batch processor exports what it is handed through the exporter's own client, in batches, at shutdown too, and
drops past its queue's bound; its Session reads the environment's proxy settings once and honours them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from argoproxy.fastpath import otlp
from argoproxy.tracing.genai_attributes import Answered, answered, request_parameters
from argoproxy.pipeline.answer_facts import AnswerFacts
from argoproxy.upstream.answer_bounds import CREDENTIAL_PROVIDERS
from argoproxy.tracing.tracer import Fixed, Record, Tracing, readable
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.polling import poll

RESOURCE = Resource({"service.name": "cot_proxy", "host.cores": 2, "deployment.weights": [0.5, 1.5]})
OTHER = Resource({"service.name": "other"}, "https://opentelemetry.io/schemas/1.30.0")
SCOPE = InstrumentationScope("cot_proxy")
VERSIONED = InstrumentationScope("lib", "1.2", "https://schema", {"scope.flag": True})
TRACE, CLIENT_PARENT = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
REMOTE = SpanContext(TRACE, CLIENT_PARENT, True, TraceFlags(1), TraceState([("vendor", "x"), ("other", "y")]))
UPSTREAM = Fixed({"server.address": "10.0.0.7", "server.port": 8080, "http.request.method": "POST",
                  "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
ROUTE = Fixed({"http.request.method": "POST", "url.path": "/v1/chat/completions", "cot_proxy.api": "openai",
               "gen_ai.request.model": "gpt-4o", "cot_proxy.key.name": "team-ä"})


def record(name: str, span_id: int, parent: SpanContext | Record | None = None, attributes: dict | None = None,
           fixed: Fixed | None = None, kind: SpanKind = SpanKind.SERVER, status: Status = Status(StatusCode.UNSET),
           state: TraceState | None = None) -> Record:
    r = Record(name, TRACE, span_id, 3, state, parent, kind, 1_795_000_000_000_000_000 + span_id,
               dict(attributes or {}), fixed or Fixed({}))
    r.end, r.status = 1_795_000_000_500_000_000 + span_id, status
    return r


def decoded(data: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(data)
    return message


def same_as_the_sdk(records: list[Record], resource: Resource = RESOURCE,
                    scope: InstrumentationScope | None = SCOPE) -> None:
    mine = decoded(otlp.Batch(resource, scope).encode(records))
    theirs = encode_spans([readable(r, resource, scope) for r in records])
    assert mine == theirs, f"{mine}\n!=\n{theirs}"


def spans() -> list[Record]:
    answer = Answered("chatcmpl-42", (("gen_ai.response.model", "gpt-4o-2024-08-06"),
                                      ("gen_ai.response.finish_reasons", ("stop",))),
                      (("gen_ai.usage.input_tokens", 5), ("gen_ai.usage.output_tokens", 70_000),
                       ("gen_ai.usage.cache_read.input_tokens", 0), ("gen_ai.usage.reasoning.output_tokens", 2 ** 40)))
    server = record("chat gpt-4o", 1, REMOTE, {
        "http.response.status_code": 200, "reasons": ("stop", "length"),
        "gen_ai.request.seed": -7, "big": 2 ** 62, "empty": "", "unicode": "naïve – 日本語 🎉",
        "gen_ai.request.stop_sequences": (), "flags": [True, False], "numbers": (1, 2, 3)},
        ROUTE, state=REMOTE.trace_state)
    server.request_id, server.params = "req-1", (("gen_ai.request.temperature", 0.25), ("gen_ai.request.stream", True))
    server.cost = 0.019
    answered = record("chat m", 7, server, {"http.response.status_code": 200}, UPSTREAM, SpanKind.CLIENT)
    server.answer = answered.answer = answer  # what answered: the same on both, written once
    estimated = record("chat m", 8, server, {}, UPSTREAM, SpanKind.CLIENT)
    estimated.answer = Answered(None, (("cot_proxy.usage.estimated", True),), (("gen_ai.usage.input_tokens", -1),))
    unpriced = record("chat local", 9, None, {"error.type": "x"}, Fixed(ROUTE.attributes))
    unpriced.request_id, unpriced.cost = "", False
    return [
        answered,
        server,
        estimated,
        record("chat m", 2, server, {"http.response.status_code": 503, "error.type": "503"}, UPSTREAM,
               SpanKind.CLIENT, Status(StatusCode.ERROR)),
        record("chat m", 3, server, {"error.type": "upstream_timeout"}, UPSTREAM, SpanKind.CLIENT,
               Status(StatusCode.ERROR, "ReadTimeout")),
        record("background chat m", 4, server, {}, None, SpanKind.INTERNAL),
        record("GET passthrough", 5, None, None, None, SpanKind.SERVER, Status(StatusCode.OK)),
        unpriced,
        record("long", 6, None, {"gen_ai.input.messages": "x" * 70_000}, Fixed(ROUTE.attributes)),
    ]


def test_the_same_message_as_the_sdks_encoder():
    batch = spans()
    same_as_the_sdk(batch)
    for span in batch:
        same_as_the_sdk([span])
    same_as_the_sdk(batch, OTHER, VERSIONED)
    same_as_the_sdk(batch, OTHER, None)


def test_what_answered_is_written_straight_as_the_answered_it_stands_for():
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    cases = [(AnswerFacts("chatcmpl-1", "m", ["stop"]), usage, False),
             (AnswerFacts("chatcmpl-\ud800", None, ["stop", "length"]), usage, False),
             (AnswerFacts("x" * 255, "m", ["stop"]), usage, False),
             (AnswerFacts("é" * 200, "m", ["stop"]), usage, False),
             (AnswerFacts(None, "m", []), {"prompt_tokens": 0, "completion_tokens": 16383, "total_tokens": 1}, False),
             (AnswerFacts(None, None, []), {"prompt_tokens": 16384, "completion_tokens": 1, "total_tokens": 1}, False),
             (AnswerFacts("a", "m", ["stop"]), {"prompt_tokens": True, "completion_tokens": 1, "total_tokens": 1},
              False),
             (AnswerFacts("a", "m", ["stop"]), {"prompt_tokens": -1, "completion_tokens": 1, "total_tokens": 1}, False),
             (AnswerFacts("a", "m", ["stop"]), {**usage, "prompt_tokens_details": {"cached_tokens": 2}}, False),
             (AnswerFacts("a", "m", ["stop"]), {"input_tokens": 5, "output_tokens": 6}, False),
             (AnswerFacts("a", "m", ["stop"]), usage, True), (AnswerFacts("a", "m", ["stop"]), None, False),
             (None, usage, False), (None, None, True)]
    for _ in range(2):  # written anew, then from what was kept
        for facts, counts, estimated in cases:
            assert otlp.answer_of(facts, counts, estimated, answered) == \
                otlp.answered(answered(facts, counts, estimated)), (facts, counts, estimated)


def test_a_call_and_its_last_attempt_are_written_together_as_each_alone():
    batch = spans()
    client, server = batch[0], batch[1]
    written = otlp.answered(server.answer)
    for c in (client, record("chat m", 11, server, {"error.type": "upstream_error"}, UPSTREAM, SpanKind.CLIENT,
                             Status(StatusCode.ERROR, "broke"), state=server.state)):
        c.answer = server.answer = written  # bytes: as answer_of writes them
        c.state = server.state  # an attempt's span is in its request's trace, with its state
        assert otlp.pair(c, server, written) == (otlp.span(c), otlp.span(server))
    local = record("chat gpt-4o", 12, None, {}, ROUTE)  # a trace of its own, no parent, an id of 300 bytes
    local.request_id = "r" * 300
    attempt = record("chat m", 13, local, {}, UPSTREAM, SpanKind.CLIENT)
    assert otlp.pair(attempt, local, b"") == (otlp.span(attempt), otlp.span(local))


def test_shared_attributes_are_written_once():
    batch = spans()
    same_as_the_sdk(batch)
    written = ROUTE.encoded
    assert written is not None and UPSTREAM.encoded is not None
    same_as_the_sdk(spans())
    assert ROUTE.encoded is written
    # The tracer gives each span name its own Fixed; one met under two names is written for each, each time
    same_as_the_sdk([record("a", 1, None, None, ROUTE), record("b", 2, None, None, ROUTE, SpanKind.CLIENT),
                     record("a", 3, None, None, ROUTE)])


def test_an_answered_status_is_shared_with_the_upstreams_attributes():
    assert UPSTREAM.answered(200) is UPSTREAM.answered(200)
    assert UPSTREAM.answered(200).attributes == {**UPSTREAM.attributes, "http.response.status_code": 200}
    assert UPSTREAM.answered(503) is not UPSTREAM.answered(200) and "http.response.status_code" not in UPSTREAM.attributes


def test_repeated_pairs_are_written_anew_once_a_table_fills(monkeypatch):
    monkeypatch.setattr(otlp, "_PAIRS_KEPT", 3)
    monkeypatch.setattr(otlp, "_pairs", {})
    same_as_the_sdk([record("s", i, None, {"model": f"m{i % 5}", "n": i, "x": 1.0, "reasons": (f"r{i % 4}",)})
                     for i in range(1, 12)])
    assert all(len(kept) <= 3 for kept in otlp._pairs.values())
    # 1, 1.0 and True are one dict key: three encodings all the same; (1,) and (1.0,) too
    same_as_the_sdk([record("t", 1, None, {"x": 1, "t": (1,)}), record("t", 2, None, {"x": 1.0, "t": (1.0,)}),
                     record("t", 3, None, {"x": True, "t": (True,)})])


def test_zero_and_minus_zero_are_never_written_as_each_other(monkeypatch):
    """0.0 and -0.0 are one dict key, as 1 and 1.0 are: a request's parameters (written once per set) or a pair met
    with the other sign is written as the SDK writes it, whichever came first."""
    monkeypatch.setattr(otlp, "_pairs", {})
    for first, second in ((-0.0, 0.0), (0.0, -0.0)):
        otlp._groups.clear()
        for zero in (first, second):
            server = record("chat m", 1, None, {"x": zero}, ROUTE)
            server.params = request_parameters({"temperature": zero, "top_p": zero, "presence_penalty": 0})
            same_as_the_sdk([server])


def test_the_clients_and_upstreams_long_texts_are_written_but_never_kept(monkeypatch):
    """A stop sequence, an error's code, an answering model of any length: written as the SDK writes them, never kept
    in the tables of repeated values (8,192 of a megabyte each would hold gigabytes a worker)."""
    for table in ("_pairs", "_groups", "_described"):
        monkeypatch.setattr(otlp, table, {})
    long = "x" * 5000
    for _ in range(2):
        server = record("chat m", 1, None, {"error.type": long}, ROUTE)
        server.params = request_parameters({"stop": [long], "temperature": 0.5})
        server.answer = answered(AnswerFacts("a", long, ["stop"]), None)
        same_as_the_sdk([server])
        usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        facts = AnswerFacts("a", long, ["stop"])
        assert otlp.answer_of(facts, usage, False, answered) == otlp.answered(answered(facts, usage))
    kept = [*otlp._groups.values(), *otlp._described.values(), *(e[1] for t in otlp._pairs.values() for e in t.values())]
    assert kept and all(len(encoded) <= otlp._BYTES_KEPT for encoded in kept)


def test_a_span_kind_named_by_a_long_model_is_not_kept():
    """The tracer keeps each kind of span's name and shared attributes (a worker's upstreams, routes and models),
    but not those of a client's model of any length."""
    tracer = SimpleNamespace(upstreams={}, routes={}, providers={}, provider="openai")
    url = "http://10.0.0.7:8080/v1/chat/completions"
    for model in ("m", "m" * 5000):
        start = SimpleNamespace(kind="chat", model=model, key_name="team",
                                client=SimpleNamespace(method="POST", path="v1/chat/completions", front="openai"))
        end = SimpleNamespace(deployment=None, upstream_calls=None, status=200)
        assert Tracing.upstream_kind(tracer, (url, "POST", "chat", model))[0] == f"chat {model[:256]}"
        assert Tracing.route_kind(tracer, start, end, SpanKind.SERVER)[0] == f"chat {model[:256]}"  # what a span keeps
    assert [key[3] for key in tracer.upstreams] == ["m"] and [key[1] for key in tracer.routes] == ["m"]


def test_the_lean_exporter_sends_through_the_exporters_client():
    with OtlpReceiver() as receiver:
        exporter = otlp.LeanSpanExporter(endpoint=receiver.endpoint + "/v1/traces")
        exporter.batch = otlp.Batch(RESOURCE, SCOPE)
        batch = spans()
        assert exporter.export(batch) is SpanExportResult.SUCCESS
        assert [s.name for s in receiver.spans] == [r.name for r in batch] and receiver.refused == []
        assert receiver.spans[1].attributes["cot_proxy.key.name"] == "team-ä"
        assert receiver.spans[0].attributes["gen_ai.response.id"] == receiver.spans[1].attributes["gen_ai.response.id"]
        # a span of the SDK's (one with an event) is not the proxy's: the SDK's encoder writes it
        event = ReadableSpan("e", SpanContext(TRACE, 9, False, TraceFlags(1)), None, RESOURCE, {},
                             events=[Event("ev", {"k": "v"}, 1)], instrumentation_scope=SCOPE, start_time=1, end_time=2)
        assert exporter.export([event]) is SpanExportResult.SUCCESS
        assert receiver.spans[-1].name == "e"
        exporter.shutdown()
    down = otlp.LeanSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", timeout=1)
    down.batch = otlp.Batch(RESOURCE, SCOPE)
    assert down.export(spans()) is SpanExportResult.FAILURE


def test_the_batch_processor_exports_in_batches_and_at_shutdown(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only a full batch, or the shutdown, sends
    with OtlpReceiver() as receiver:
        processor = otlp.LeanBatch(otlp.LeanSpanExporter(endpoint=receiver.endpoint + "/v1/traces"), 100, 4)
        hand = processor.records_to(RESOURCE, SCOPE)
        for i in range(1, 11):
            hand(record(f"s{i}", i))
        poll(lambda: len(receiver.spans) == 8, timeout=10)  # two full batches, the rest waiting
        assert len(receiver.exports) == 2 and len(processor.waiting) == 2
        processor.shutdown()
        assert [s.name for s in receiver.spans] == [f"s{i}" for i in range(1, 11)]


def test_the_batch_processor_drops_past_its_queues_bound(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    with OtlpReceiver() as receiver:
        processor = otlp.LeanBatch(otlp.LeanSpanExporter(endpoint=receiver.endpoint + "/v1/traces"), 3, 2048)
        hand = processor.records_to(RESOURCE, SCOPE)
        for i in range(1, 6):
            hand(record(f"s{i}", i))
        assert processor.size == 3  # a batch is at most the queue
        processor.force_flush()
        poll(lambda: len(receiver.spans) == 3, timeout=10)
        assert "2 spans dropped" in caplog.text
        processor.shutdown()
        assert [s.name for s in receiver.spans] == ["s1", "s2", "s3"]


def test_a_span_that_cannot_be_encoded_is_dropped_never_raised_into_the_request(monkeypatch, caplog):
    """Spans are written as they end, on the request's path: one the encoder cannot write is dropped and said,
    the request and the other spans go on."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")

    class Unwritable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    with OtlpReceiver() as receiver:
        processor = otlp.LeanBatch(otlp.LeanSpanExporter(endpoint=receiver.endpoint + "/v1/traces"), 100, 2048)
        hand = processor.records_to(RESOURCE, SCOPE)
        hand(record("s1", 1))
        hand(record("bad", 2, None, {"x": Unwritable()}))
        hand(record("s3", 3))
        processor.shutdown()
        assert [s.name for s in receiver.spans] == ["s1", "s3"]
    assert "a span could not be encoded" in caplog.text and "1 spans dropped: they could not be encoded" in caplog.text


def test_the_session_reads_the_environment_once_and_honours_no_proxy(monkeypatch):
    read = []
    merged = requests.Session.merge_environment_settings

    def counted(self, *args):
        read.append(args[0])
        return merged(self, *args)

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counted)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens: a request through it fails
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        exporter = otlp.LeanSpanExporter(endpoint=receiver.endpoint + "/v1/traces", timeout=2)
        exporter.batch = otlp.Batch(RESOURCE, SCOPE)
        for _ in range(3):
            assert exporter.export(spans()) is SpanExportResult.SUCCESS
        assert len(read) == 1  # read once, not for every export
        monkeypatch.delenv("NO_PROXY")
        through_proxy = otlp.LeanSpanExporter(endpoint=receiver.endpoint + "/v1/traces", timeout=2)
        through_proxy.batch = otlp.Batch(RESOURCE, SCOPE)
        assert through_proxy.export(spans()) is SpanExportResult.FAILURE  # HTTP_PROXY honoured


@pytest.mark.parametrize("name", CREDENTIAL_PROVIDERS)
def test_a_credential_providers_session_is_left_to_the_exporter(monkeypatch, name):
    monkeypatch.setenv(name, "no_such_provider")  # the exporter looks for it (and finds none): no Session of ours
    with pytest.raises(RuntimeError, match="no_such_provider"):
        otlp.LeanSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")


def test_the_batch_sizes_are_the_settings_else_the_proxys_defaults(monkeypatch):
    """Batches of 2,048 (the SDK's default is 512): each export costs about a millisecond of Python whatever its
    size, so larger batches cost a gateway's two spans a request less; a setting still decides."""
    from argoproxy.tracing.tracer import batch_sizes
    monkeypatch.delenv("OTEL_BSP_MAX_QUEUE_SIZE", raising=False)
    monkeypatch.delenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", raising=False)
    assert batch_sizes() == (4096, 2048)
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "2048")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512")
    assert batch_sizes() == (2048, 512)
    monkeypatch.delenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")  # a smaller queue alone: batches of at most it
    assert batch_sizes() == (100, 100)
