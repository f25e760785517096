"""Tracing through the running app: the real OTLP/HTTP exporter of each worker sends to a receiver in the suite
(tests/fakes/otlp_receiver.py, decoding the protocol's protobuf), and each span is checked attribute by attribute:
a SERVER span per request continuing the client's traceparent, a CLIENT span per upstream attempt (a retry, a
routed fallback) whose context the upstream receives as its traceparent, a stream, an error, prompts and answers
recorded only when asked for, every worker class, and the spans still queued sent when a worker stops."""

from __future__ import annotations

import json
import signal

import openai
import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.fakes.otlp_receiver import OtlpReceiver, Span
from tests.polling import poll
from tests.proxy_process import free_port, running_proxy

pytestmark = pytest.mark.timeout(120)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_PARENT}-01"
PROMPT = "the secret plan is to reach the summit by noon"
ANSWER = "a reply nobody else should read"
CHAT = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}


@pytest.fixture
def receiver():
    with OtlpReceiver() as r:
        yield r


@pytest.fixture
def upstream():
    with FakeOpenAI(says="vLLM") as fake:  # a local server, which says so: its models cost nothing
        yield fake


def traced(receiver: OtlpReceiver, **settings: str):
    """The proxy exporting to the receiver, its batch processor sending every 50 ms."""
    return running_proxy(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50", **settings)


def by_kind(spans: list[Span], kind: str) -> list[Span]:
    return sorted((s for s in spans if s.kind == kind), key=lambda s: s.start_ns)


def one_request(spans: list[Span], clients: int = 1) -> bool:
    return len(by_kind(spans, "SERVER")) == 1 and len(by_kind(spans, "CLIENT")) == clients


def test_a_chat_call_span_by_span(receiver, upstream):
    upstream.add(Reply({**chat_completion(ANSWER, model="m-2026"), "id": "chatcmpl-42"}))
    with traced(receiver, TARGET_BASE_URL=upstream.base_url, TRACING="on") as proxy:
        r = requests.post(proxy.base_url + "/chat/completions", timeout=30, json={
            **CHAT, "temperature": 0.25, "top_p": 0.5, "max_tokens": 64, "seed": 7, "stop": ["END"]},
            headers={"traceparent": TRACEPARENT, "tracestate": "vendor=x"})
        assert r.status_code == 200, r.text
        spans = receiver.wait(one_request)
    [server], [client] = by_kind(spans, "SERVER"), by_kind(spans, "CLIENT")
    assert (server.name, server.trace_id, server.parent_id, server.status) == ("chat m", TRACE_ID, CLIENT_PARENT, "UNSET")
    assert (client.name, client.trace_id, client.parent_id, client.status) == ("chat m", TRACE_ID, server.span_id, "UNSET")
    assert server.service == "cot_proxy" and server.scope == "cot_proxy"
    assert server.attributes == {
        "http.request.method": "POST", "url.path": "/v1/chat/completions", "http.response.status_code": 200,
        "cot_proxy.request_id": r.headers["X-Request-ID"], "cot_proxy.api": "openai",
        "cot_proxy.served_by": f"127.0.0.1:{upstream.port}", "cot_proxy.upstream.calls": 1,
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "m",
        "gen_ai.request.temperature": 0.25, "gen_ai.request.top_p": 0.5, "gen_ai.request.max_tokens": 64,
        "gen_ai.request.seed": 7, "gen_ai.request.stop_sequences": ["END"],
        "gen_ai.response.id": "chatcmpl-42", "gen_ai.response.model": "m-2026",
        "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 7,
        "cot_proxy.cost.usd": 0.0}  # a server that says it is vLLM is self-hosted: priced, at nothing (docs/spend.md)
    assert client.attributes == {
        "server.address": "127.0.0.1", "server.port": upstream.port, "http.request.method": "POST",
        "http.response.status_code": 200, "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "m", "gen_ai.response.id": "chatcmpl-42", "gen_ai.response.model": "m-2026",
        "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 7}
    # The upstream is asked in the CLIENT span's context, the client's tracestate kept; one traceparent header.
    sent = upstream.received[-1].headers
    assert sent["traceparent"] == f"00-{TRACE_ID}-{client.span_id}-01" and sent["tracestate"] == "vendor=x"
    assert [k.lower() for k in sent].count("traceparent") == 1
    # Nested in time: the request's span holds its attempt's.
    assert server.start_ns <= client.start_ns <= client.end_ns <= server.end_ns
    # Neither the prompt nor the answer is recorded without TRACING_CONTENT.
    recorded = json.dumps([s.attributes for s in spans])
    assert PROMPT not in recorded and ANSWER not in recorded


def test_the_span_carries_what_the_request_cost(receiver, upstream):
    """The request's cost at its model's prices (docs/spend.md): here $1,000 and $2,000 per million tokens in and
    out, for the fake's 5 and 7 tokens: $0.019."""
    prices = '{"models": {"m": {"input_mtok": 1000, "output_mtok": 2000}}}'
    with traced(receiver, TARGET_BASE_URL=upstream.base_url, TRACING="on", PRICES=prices) as proxy:
        assert requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30).status_code == 200
        [server] = by_kind(receiver.wait(one_request), "SERVER")
    assert server.attributes["cot_proxy.cost.usd"] == pytest.approx(0.019, abs=1e-12)


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_a_model_with_no_price_is_flagged_on_its_span(receiver, upstream, tmp_path, fast_path):
    """Served by a provider of the table that does not list the model (docs/spend.md: unpriced): the span says it
    has no price, and carries no cost of 0."""
    from tests.integration.test_spend import vendor_table
    prices = json.dumps({"table": str(vendor_table(upstream, tmp_path / "prices.json"))})
    with traced(receiver, TARGET_BASE_URL=upstream.base_url, PRICES=prices, FAST_PATH=fast_path) as proxy:
        assert requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30).status_code == 200
        [server] = by_kind(receiver.wait(one_request), "SERVER")
    assert server.attributes["cot_proxy.cost.priced"] is False and "cot_proxy.cost.usd" not in server.attributes


HOSTILE_TRACEPARENTS = {
    "zero trace id": f"00-{'0' * 32}-{CLIENT_PARENT}-01", "zero span id": f"00-{TRACE_ID}-{'0' * 16}-01",
    "version ff": f"ff-{TRACE_ID}-{CLIENT_PARENT}-01", "capitals": TRACEPARENT.upper(),
    "version 00 with more": TRACEPARENT + "-extra", "short trace id": f"00-{TRACE_ID[:16]}-{CLIENT_PARENT}-01",
    "non-ASCII digit": TRACEPARENT[:-4] + "\u0661-01", "two of them": f"{TRACEPARENT},00-{'1' * 32}-{'2' * 16}-01",
    "long": "00-" + "a" * 4000,
}


def test_a_clients_malformed_trace_context_is_not_written_to_the_log(receiver, upstream):
    """OpenTelemetry's propagator logs a warning for a trace state it cannot read, the client's text in it, and for
    an overlong traceparent or tracestate: any client, before its key is checked, wrote a line into the proxy's log
    with each request. The trace context is left out as before; the log says nothing of it."""
    headers = [{"traceparent": TRACEPARENT, "tracestate": "forged log line!"},
               {"traceparent": TRACEPARENT, "tracestate": "a=1,a=2"},
               {"traceparent": TRACEPARENT, "tracestate": ",".join(f"k{i}=v" for i in range(33))},
               {"traceparent": TRACEPARENT, "tracestate": "k=" + "v" * 600},
               {"traceparent": TRACEPARENT + "-" + "x" * 600}]
    with traced(receiver, TARGET_BASE_URL=upstream.base_url, ENABLE_AUTH="true", API_KEY_SECRET="admin") as proxy:
        for each in headers:
            for key in ("admin", "not-a-key"):
                r = requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30,
                                  headers={**each, "Authorization": f"Bearer {key}"})
                assert r.status_code == (200 if key == "admin" else 401), r.text
        receiver.wait(lambda s: len(by_kind(s, "SERVER")) == 2 * len(headers))
        log = proxy.read_log()
    assert "forged log line" not in log and "WARNING" not in log, log


def test_a_traceparent_that_is_not_w3c_starts_a_trace_of_its_own(receiver, upstream):
    """A client's traceparent the W3C format refuses is not continued: the request's span is a root of a trace of its
    own, and the upstream gets that trace's context, never the client's text."""
    with traced(receiver, TARGET_BASE_URL=upstream.base_url) as proxy:
        for why, traceparent in HOSTILE_TRACEPARENTS.items():
            r = requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "user": why}, timeout=30,
                              headers={"traceparent": traceparent.encode(), "tracestate": "vendor=x"})
            assert r.status_code == 200, (why, r.text)
        count = len(HOSTILE_TRACEPARENTS)
        spans = receiver.wait(lambda s: len(by_kind(s, "SERVER")) == len(by_kind(s, "CLIENT")) == count)
    sent = {json.loads(r.body)["user"]: {k.lower(): v for k, v in r.headers.items()} for r in upstream.received}
    for server in by_kind(spans, "SERVER"):
        [client] = [c for c in by_kind(spans, "CLIENT") if c.parent_id == server.span_id]
        why = next(w for w, h in sent.items() if client.named_by(h["traceparent"]))
        assert server.parent_id == "" and server.trace_id not in (TRACE_ID, "0" * 32), why
        assert "tracestate" not in sent[why], why  # a trace state belongs to the trace it came with
    assert set(sent) == set(HOSTILE_TRACEPARENTS)


@pytest.mark.parametrize("stream", [False, True])
def test_a_clients_long_strings_are_cut_on_the_spans(receiver, upstream, stream):
    """A model name of 100,000 characters (the fake echoes it as its answer's model, as llama.cpp's server does) and
    100 stop sequences of 1,000: each span keeps 256 characters of each string and 16 sequences, where it kept them
    whole (megabytes of span for a request of megabytes, which a collector refuses with the rest of its batch)."""
    model = "m" * 100_000
    with traced(receiver, TARGET_BASE_URL=upstream.base_url) as proxy:
        r = requests.post(proxy.base_url + "/chat/completions", timeout=30, json={
            "model": model, "messages": CHAT["messages"], "stop": ["s" * 1000] * 100, "stream": stream})
        assert r.status_code == 200, r.text
        spans = receiver.wait(one_request)
    [server], [client] = by_kind(spans, "SERVER"), by_kind(spans, "CLIENT")
    assert server.name == client.name == "chat " + model[:256]
    for span in (server, client):
        assert span.attributes["gen_ai.request.model"] == span.attributes["gen_ai.response.model"] == model[:256]
    assert server.attributes["gen_ai.request.stop_sequences"] == ["s" * 256] * 16
    assert upstream.received[-1].json()["model"] == model  # the request itself goes as it came


def test_a_retry_is_a_client_span_of_its_own(receiver, upstream):
    upstream.add(Reply({"error": {"message": "busy", "type": "server_error"}}, status=503, headers={"Retry-After": "0"}),
                 Reply(chat_completion("ok")))
    with traced(receiver, TARGET_BASE_URL=upstream.base_url, MAX_RETRIES="1") as proxy:
        r = requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30)
        assert r.status_code == 200, r.text
        spans = receiver.wait(lambda s: one_request(s, clients=2))
    [server], (first, second) = by_kind(spans, "SERVER"), by_kind(spans, "CLIENT")
    assert server.parent_id == "" and first.parent_id == second.parent_id == server.span_id
    assert first.trace_id == second.trace_id == server.trace_id
    assert (first.attributes["http.response.status_code"], first.attributes["error.type"], first.status) == \
        (503, "503", "ERROR")
    assert "gen_ai.response.id" not in first.attributes and first.end_ns <= second.start_ns
    assert (second.attributes["http.response.status_code"], second.status) == (200, "UNSET")
    assert "error.type" not in second.attributes and second.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert server.attributes["cot_proxy.upstream.calls"] == 2 and "error.type" not in server.attributes
    # each attempt went in its own span's context
    assert first.named_by(upstream.received[0].headers["traceparent"])
    assert second.named_by(upstream.received[1].headers["traceparent"])


def test_a_routed_fallback_is_a_client_span_per_deployment(receiver):
    with FakeOpenAI() as a, FakeOpenAI() as b:
        a.add(Reply({"error": {"message": "down", "type": "server_error"}}, status=503))
        b.add(Reply({**chat_completion("from b", model="b-served"), "id": "chatcmpl-b"}))
        entries = [{"name": "a", "backend": "openai", "base_url": a.base_url},
                   {"name": "b", "backend": "openai", "base_url": b.base_url}]
        with traced(receiver, MODELS=json.dumps(entries), FALLBACKS='{"a": ["b"]}', MAX_RETRIES="0",
                    COOLDOWN_SECONDS="0") as proxy:
            r = requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": "a"}, timeout=30)
            assert r.status_code == 200 and r.headers["X-Served-Model"] == "b", r.text
            spans = receiver.wait(lambda s: one_request(s, clients=2))
        assert a.received[-1].headers["traceparent"] != b.received[-1].headers["traceparent"]
    [server], (first, second) = by_kind(spans, "SERVER"), by_kind(spans, "CLIENT")
    assert (first.attributes["server.port"], first.attributes["gen_ai.request.model"],
            first.attributes["error.type"]) == (a.port, "a", "503")
    assert (second.attributes["server.port"], second.attributes["gen_ai.request.model"],
            second.attributes["gen_ai.response.model"]) == (b.port, "b", "b-served")
    assert first.named_by(a.received[-1].headers["traceparent"])
    assert second.named_by(b.received[-1].headers["traceparent"])
    assert {k: server.attributes[k] for k in ("gen_ai.request.model", "gen_ai.response.model", "gen_ai.response.id",
                                              "cot_proxy.served_by", "cot_proxy.upstream.calls")} == \
        {"gen_ai.request.model": "a", "gen_ai.response.model": "b-served", "gen_ai.response.id": "chatcmpl-b",
         "cot_proxy.served_by": f"127.0.0.1:{b.port}", "cot_proxy.upstream.calls": 2}


@pytest.mark.parametrize("path", ["/v1/models", "/api/tags"])
def test_a_model_list_asked_upstream_goes_in_its_own_spans_context(receiver, upstream, path):
    """The list the upstream is asked for (OpenAI's door, and Ollama's reading it) is an attempt like any other:
    the client's traceparent, forwarded with its headers, went up as it came, so the upstream's span was a
    sibling of the request's."""
    with traced(receiver, TARGET_BASE_URL=upstream.base_url) as proxy:
        r = requests.get(proxy.url + path, headers={"traceparent": TRACEPARENT, "tracestate": "vendor=x"}, timeout=30)
        assert r.status_code == 200, r.text
        spans = receiver.wait(one_request)
    [server], [client] = by_kind(spans, "SERVER"), by_kind(spans, "CLIENT")
    assert (server.trace_id, server.parent_id, client.trace_id, client.parent_id) == \
        (TRACE_ID, CLIENT_PARENT, TRACE_ID, server.span_id)
    [sent] = [q.headers for q in upstream.received if q.path == "/v1/models"]
    assert [k.lower() for k in sent].count("traceparent") == 1
    assert client.named_by(sent.get("traceparent") or sent["Traceparent"]), sent
    assert (sent.get("tracestate") or sent.get("Tracestate")) == "vendor=x"


def test_a_stream_is_traced_to_its_end(receiver, upstream):
    upstream.add(Stream(chat_chunks(["Hel", "lo"], model="m-stream", usage=True), delay=0.05))
    with traced(receiver, TARGET_BASE_URL=upstream.base_url) as proxy:
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="sk-client", max_retries=0)
        stream = sdk.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True})
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "Hello"
        spans = receiver.wait(one_request)
    [server], [client] = by_kind(spans, "SERVER"), by_kind(spans, "CLIENT")
    for span in (server, client):
        assert {k: span.attributes.get(k) for k in ("gen_ai.response.id", "gen_ai.response.model",
                                                    "gen_ai.response.finish_reasons", "gen_ai.usage.input_tokens",
                                                    "gen_ai.usage.output_tokens")} == {
            "gen_ai.response.id": "chatcmpl-fake", "gen_ai.response.model": "m-stream",
            "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 5,
            "gen_ai.usage.output_tokens": 7}
    assert server.attributes["gen_ai.request.stream"] is True
    assert client.end_ns - client.start_ns >= 150_000_000  # it lasted as the stream did (4 events 50 ms apart)


def test_an_upstream_that_is_down(receiver):
    down = f"http://127.0.0.1:{free_port()}/v1"
    with traced(receiver, TARGET_BASE_URL=down, MAX_RETRIES="0") as proxy:
        r = requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30)
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_connection_refused"
        spans = receiver.wait(one_request)
    [server], [client] = by_kind(spans, "SERVER"), by_kind(spans, "CLIENT")
    assert (server.status, server.attributes["error.type"], server.attributes["http.response.status_code"]) == \
        ("ERROR", "upstream_connection_refused", 502)
    assert client.status == "ERROR" and client.attributes["error.type"] == "upstream_connection_refused"
    assert "http.response.status_code" not in client.attributes


def test_a_lone_surrogate_in_a_client_or_upstream_text_is_exported_as_a_question_mark(receiver, upstream):
    """JSON lets a text hold a lone surrogate, which UTF-8 cannot carry: the span is exported with "?" in its place
    (the SDK's encoder failed on it, and the batch's other spans, other clients' too, were lost with it)."""
    upstream.accepts_lone_surrogates = True  # as a Go server does; OpenAI's API would answer 400
    upstream.add(Reply({**chat_completion("ok", model="m-\ud800"), "id": "chatcmpl-\udfff"}),
                 Reply(chat_completion("ok")))
    with running_proxy(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="1000",
                       TARGET_BASE_URL=upstream.base_url) as proxy:  # both requests' spans in one batch
        odd = '{"model": "m\\ud800", "stop": ["\\udfff"], "messages": [{"role": "user", "content": "hi"}]}'
        r = requests.post(proxy.base_url + "/chat/completions", data=odd, timeout=30,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30).status_code == 200
        spans = receiver.wait(lambda s: len(s) == 4)
    [odd_server, _], [odd_client, _] = by_kind(spans, "SERVER"), by_kind(spans, "CLIENT")
    assert (odd_server.name, odd_client.name) == ("chat m?", "chat m?")
    assert (odd_server.attributes["gen_ai.request.stop_sequences"], odd_server.attributes["gen_ai.response.id"],
            odd_client.attributes["gen_ai.response.model"]) == (["?"], "chatcmpl-?", "m-?")
    assert "UnicodeEncodeError" not in proxy.log


def test_a_collector_that_is_down_is_logged_without_the_endpoints_credentials(upstream):
    # OpenTelemetry's exporter logs the URL it could not reach, query included; its records went straight to
    # stderr, past the proxy's redaction.
    collector = f"http://127.0.0.1:{free_port()}/otlp?token=tok98765secret"
    with running_proxy(TARGET_BASE_URL=upstream.base_url, OTEL_EXPORTER_OTLP_ENDPOINT=collector,
                       OTEL_BSP_SCHEDULE_DELAY="50") as proxy:
        assert requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30).status_code == 200
        logged = poll(lambda: "exporting spans" in proxy.read_log() and proxy.read_log(), timeout=60)
    assert "token=***" in logged and "tok98765secret" not in logged, logged


def test_a_refused_request_has_its_span_and_no_attempt(receiver, upstream):
    with traced(receiver, TARGET_BASE_URL=upstream.base_url, ENABLE_AUTH="true", API_KEY_SECRET="sk-admin") as proxy:
        requests.get(proxy.url + "/health", timeout=30)  # probes are not traced (its span would come first)
        r = requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30,
                          headers={"Authorization": "Bearer sk-wrong"})
        assert r.status_code == 401
        spans = receiver.wait(lambda s: len(s) >= 1)
    [server] = spans
    assert (server.kind, server.status, server.attributes["error.type"], server.attributes["http.response.status_code"]) \
        == ("SERVER", "UNSET", "invalid_api_key", 401)
    assert "sk-wrong" not in json.dumps(server.attributes) and [m.method for m in upstream.received] == ["GET"]


def test_prompts_and_answers_only_when_asked_for(receiver, upstream):
    upstream.add(Reply(chat_completion(f"{ANSWER} sk-upstream-secret")))
    with traced(receiver, TARGET_BASE_URL=upstream.base_url, TRACING_CONTENT="true",
                OPENAI_API_KEY="sk-upstream-secret") as proxy:
        r = requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]}, timeout=30)
        assert r.status_code == 200
        spans = receiver.wait(one_request)
    [server] = by_kind(spans, "SERVER")
    assert json.loads(server.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}]
    assert json.loads(server.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": f"{ANSWER} [redacted]"}], "finish_reason": "stop"}]
    assert "sk-upstream-secret" not in json.dumps([s.attributes for s in spans])


@pytest.mark.parametrize("worker_class", ["gevent", "gthread", "sync"])
def test_each_worker_class_sends_its_spans_when_it_stops(receiver, upstream, worker_class):
    """Batches every 60 s: nothing leaves before the worker stops (SIGTERM), and then everything does."""
    with running_proxy(TARGET_BASE_URL=upstream.base_url, WORKER_CLASS=worker_class, WORKERS="2",
                       OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint + "/v1/traces",
                       OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_SERVICE_NAME="gateway-a") as proxy:
        for _ in range(4):
            r = requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30,
                              headers={"traceparent": TRACEPARENT})
            assert r.status_code == 200
        assert receiver.spans == []
        proxy.stop(signal.SIGTERM)
    spans = receiver.wait(lambda s: len(s) == 8)
    assert len(by_kind(spans, "SERVER")) == 4 and {s.service for s in spans} == {"gateway-a"}
    assert {s.trace_id for s in spans} == {TRACE_ID} and receiver.refused == []


@pytest.mark.parametrize("attributes,service", [
    ("deployment.environment=prod, service.name = gateway-b", "gateway-b"),  # spaces the SDK reads past
    ("team.service.name=gpu,deployment.environment=prod", "cot_proxy"),  # another key: the service is unnamed
])
def test_the_service_named_by_resource_attributes(receiver, upstream, attributes, service):
    with traced(receiver, TARGET_BASE_URL=upstream.base_url, OTEL_RESOURCE_ATTRIBUTES=attributes) as proxy:
        assert requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30).status_code == 200
        spans = receiver.wait(one_request)
    assert {s.service for s in spans} == {service}


@pytest.mark.parametrize("backend", ["openai", "argo"])
def test_untraced_a_clients_trace_context_goes_on_unchanged(backend, upstream):
    """Tracing off: the client's traceparent and tracestate reach the upstream as they came, also through a backend
    that builds its own headers (ARGO's)."""
    from tests.fakes.fake_argo import CHAT_PATH, FakeArgo
    from tests.integration.test_argo import argo_env
    headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=x"}
    with FakeArgo() as argo:
        settings = argo_env(argo) if backend == "argo" else {"TARGET_BASE_URL": upstream.base_url}
        with running_proxy(**settings) as proxy:
            r = requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": "argo:gpt-4o"},
                              headers=headers, timeout=30)
            assert r.status_code == 200, r.text
        sent = argo.requests_to(CHAT_PATH)[-1].headers if backend == "argo" else \
            {k.lower(): v for k, v in upstream.received[-1].headers.items()}
    assert (sent["traceparent"], sent["tracestate"]) == (TRACEPARENT, "vendor=x")


def test_a_front_door_and_a_background_run(receiver, upstream):
    """Anthropic's Messages door: its request a chat span like any other, the API named. A background response:
    the request's SERVER span, and the run's own span under it holding the run's upstream call."""
    import anthropic
    from tests.clients import openai_sdk
    with traced(receiver, TARGET_BASE_URL=upstream.base_url) as proxy:
        claude = anthropic.Anthropic(base_url=proxy.url, api_key="sk-client", max_retries=0)
        message = claude.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        assert message.content[0].text
        spans = receiver.wait(one_request)
        [server], [client] = by_kind(spans, "SERVER"), by_kind(spans, "CLIENT")
        assert (server.name, server.attributes["cot_proxy.api"], server.attributes["gen_ai.operation.name"],
                server.attributes["url.path"], server.attributes["gen_ai.request.max_tokens"]) == \
            ("chat m", "messages", "chat", "/v1/messages", 50)
        assert client.parent_id == server.span_id and client.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        receiver.clear()

        queued = openai_sdk(proxy).responses.create(model="m", input="a long job", background=True)
        assert queued.status in ("queued", "in_progress")
        spans = receiver.wait(lambda s: len(by_kind(s, "INTERNAL")) == 1 and len(by_kind(s, "CLIENT")) == 1)
    [request] = [s for s in by_kind(spans, "SERVER") if s.attributes["url.path"] == "/v1/responses"]
    [run], [call] = by_kind(spans, "INTERNAL"), by_kind(spans, "CLIENT")
    assert (run.name, run.parent_id, run.trace_id) == ("background chat m", request.span_id, request.trace_id)
    assert call.parent_id == run.span_id and run.attributes["cot_proxy.api"] == "responses"
