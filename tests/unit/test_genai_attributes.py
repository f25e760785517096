"""The GenAI semantic conventions' attributes of a call (tracing/genai_attributes.py), what an answer says of itself
(pipeline/answer_facts.py: streams read as they pass, whole answers once) and the trace context headers carried
upstream (upstream/trace_context.py). Pure functions: no SDK, no server."""

from __future__ import annotations

import json

from argoproxy.tracing import genai_attributes as genai
from argoproxy.pipeline.answer_facts import CONTENT_CHARS, FactsReader, whole_facts
from argoproxy.upstream import sse
from argoproxy.upstream.trace_context import trace_context_carried, with_context
from argoproxy.upstream.wire import UpstreamRequest


def test_request_parameters_each_in_its_attribute():
    body = {"model": "m", "temperature": 0, "top_p": 0.9, "top_k": 40, "frequency_penalty": -0.5,
            "presence_penalty": 1.5, "max_completion_tokens": 100, "max_tokens": 50, "seed": 3, "n": 2,
            "stop": "###", "stream": True}
    assert genai.request_attributes(body) == {
        "gen_ai.request.temperature": 0, "gen_ai.request.top_p": 0.9, "gen_ai.request.top_k": 40,
        "gen_ai.request.frequency_penalty": -0.5, "gen_ai.request.presence_penalty": 1.5,
        "gen_ai.request.max_tokens": 100, "gen_ai.request.seed": 3, "gen_ai.request.choice.count": 2,
        "gen_ai.request.stop_sequences": ("###",), "gen_ai.request.stream": True}


def test_parameters_of_the_wrong_type_or_default_are_left_out():
    body = {"temperature": "hot", "top_p": True, "max_tokens": 1.5, "seed": "7", "n": 1, "stop": [1, 2], "stream": "yes"}
    assert genai.request_attributes(body) == {}
    assert genai.request_attributes({"n_predict": 20}) == {"gen_ai.request.max_tokens": 20}  # llama.cpp's spelling
    assert genai.request_attributes({"input": "x", "encoding_format": "base64", "dimensions": 256}) == {
        "gen_ai.request.encoding_formats": ("base64",), "gen_ai.embeddings.dimension.count": 256}


def test_parameters_fit_the_conventions_types_and_otlps_ints():
    attributes = genai.request_attributes({"temperature": 1, "top_k": 40, "max_tokens": 2 ** 63, "seed": -2 ** 63,
                                           "n": 2 ** 64, "max_completion_tokens": 2 ** 70, "top_p": 10 ** 400})
    assert attributes == {"gen_ai.request.temperature": 1.0, "gen_ai.request.top_k": 40.0,
                          "gen_ai.request.seed": -2 ** 63}
    assert [type(v) for v in attributes.values()] == [float, float, int]  # doubles whether written 1 or 1.0
    assert genai.request_parameters({"max_tokens": 8, "max_completion_tokens": 9}) == \
        (("gen_ai.request.max_tokens", 9),)
    assert genai.usage_attributes({"prompt_tokens": 2 ** 63, "completion_tokens": 1}) == \
        {"gen_ai.usage.output_tokens": 1}
    assert "gen_ai.usage.input_tokens" not in genai.usage_attributes(  # each an int64, their sum not
        {"input_tokens": 2 ** 62, "cache_read_input_tokens": 2 ** 62, "cache_creation_input_tokens": 2 ** 62})


def test_usage_in_each_shape():
    openai = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
              "prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 12}}
    assert genai.usage_attributes(openai) == {
        "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
        "gen_ai.usage.cache_read.input_tokens": 64, "gen_ai.usage.reasoning.output_tokens": 12}
    # Anthropic's input_tokens leave out the cache's reads and writes: the input counts them all
    anthropic = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 80, "cache_creation_input_tokens": 30}
    assert genai.usage_attributes(anthropic) == {
        "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cache_read.input_tokens": 80, "gen_ai.usage.cache_creation.input_tokens": 30}
    responses = {"input_tokens": 40, "output_tokens": 9, "input_tokens_details": {"cached_tokens": 32},
                 "output_tokens_details": {"reasoning_tokens": 4}}
    assert genai.usage_attributes(responses) == {
        "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 9,
        "gen_ai.usage.cache_read.input_tokens": 32, "gen_ai.usage.reasoning.output_tokens": 4}
    assert genai.usage_attributes(None) == {} and genai.usage_attributes({"prompt_tokens": "many"}) == {}


def test_operation_provider_and_span_names():
    assert [genai.operation(k) for k in ("chat", "completions", "embeddings", "models")] == [
        "chat", "text_completion", "embeddings", None]
    assert [genai.provider_name(b) for b in ("openai", "argo", "dashscope")] == ["openai", "argo", "dashscope"]
    assert genai.span_name("chat", "gpt-4o", "POST", "v1/chat/completions") == "chat gpt-4o"
    assert genai.span_name("embeddings", None, "POST", "v1/embeddings") == "embeddings"
    assert genai.span_name("passthrough", None, "GET", "v1/files/file-123") == "GET passthrough"  # no id in the name


def test_error_types():
    assert genai.error_type(200, {"id": "x"}) is None
    assert genai.error_type(429, {"error": {"message": "m", "type": "rate_limit", "code": "rate_limit_exceeded"}}) == \
        "rate_limit_exceeded"
    assert genai.error_type(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "m"}}) == \
        "invalid_request_error"
    assert genai.error_type(502, b"bytes") == "502"
    assert genai.error_type(499, None, client_left=True) == "client_left"


def test_input_messages_in_the_conventions_shape_without_data():
    body = {"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\": 1}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}]}
    assert json.loads(genai.input_messages(body, "chat")) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "what is this?"}, {"type": "image_url"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "look", "arguments": "{\"q\": 1}"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "a cat"}]}]
    assert "AAAA" not in genai.input_messages(body, "chat")
    assert json.loads(genai.input_messages({"prompt": ["a", "b"]}, "completions")) == [
        {"role": "user", "parts": [{"type": "text", "content": "a"}]},
        {"role": "user", "parts": [{"type": "text", "content": "b"}]}]
    long = genai.input_messages({"messages": [{"role": "user", "content": "z" * (CONTENT_CHARS + 500)},
                                              {"role": "user", "content": "more"}]}, "chat")
    assert long.count("z") == CONTENT_CHARS and "more" not in long


def event(obj) -> bytes:
    return sse.encode(obj)


def chunk(delta: dict | None = None, finish: str | None = None, index: int = 0, **top) -> dict:
    return {"id": "chatcmpl-9", "object": "chat.completion.chunk", "model": "m-1", **top,
            "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish}]}


def test_a_stream_read_for_its_facts_alone_parses_few_events():
    reader = FactsReader()
    events = [event(chunk({"role": "assistant", "content": ""})), event(chunk({"content": "Hel"})),
              event(chunk({"content": "lo"})), b": keepalive\n\n", event(chunk({}, "length")),
              event({**chunk(), "choices": [], "usage": {"prompt_tokens": 1}}), sse.DONE]
    parsed = []
    original = sse.sse_object
    try:
        sse.sse_object = lambda item: parsed.append(item) or original(item)  # count the events parsed
        for item in events:
            reader.item(item)
    finally:
        sse.sse_object = original
    facts = reader.result()
    assert (facts.id, facts.model, facts.finish_reasons, facts.output) == ("chatcmpl-9", "m-1", ["length"], None)
    assert parsed == [events[0], events[4]]  # the first, for id and model; the one naming a finish reason


def test_a_stream_with_content_keeps_each_choice_bounded():
    reader = FactsReader(content=True)
    for item in [chunk({"role": "assistant", "reasoning_content": "think"}), chunk({"content": "A"}, index=1),
                 event(chunk({"content": "Hi"})), chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {
                     "name": "f", "arguments": "{\"a\""}}]}),
                 chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
                 event(chunk({}, "tool_calls")), chunk({}, "stop", index=1)]:
        reader.item(item)
    facts = reader.result()
    assert facts.finish_reasons == ["tool_calls", "stop"]
    assert facts.output == [
        {"role": "assistant", "parts": [{"type": "reasoning", "content": "think"}, {"type": "text", "content": "Hi"},
                                        {"type": "tool_call", "id": "c1", "name": "f", "arguments": "{\"a\": 1}"}],
         "finish_reason": "tool_calls"},
        {"role": "assistant", "parts": [{"type": "text", "content": "A"}], "finish_reason": "stop"}]
    big = FactsReader(content=True)
    for _ in range(3):
        big.item(chunk({"content": "y" * CONTENT_CHARS}))
    assert sum(len(p["content"]) for p in big.result().output[0]["parts"]) == CONTENT_CHARS


def test_finish_reasons_of_several_choices_in_one_event():
    reader = FactsReader()
    reader.item(event(chunk({"content": "x"})))
    reader.item(event({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": None},
                                                            {"index": 1, "delta": {}, "finish_reason": "stop"}]}))
    reader.item(b'data: {"choices": [{"index": 0, "finish_reason" :  "length", "delta": {}}]}\n\n')
    assert reader.result().finish_reasons == ["stop", "length"]


def test_a_whole_answer_read_once():
    completion = {"id": "chatcmpl-1", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "yes"}, "finish_reason": "stop"}]}
    facts = whole_facts(json.dumps(completion).encode())
    assert (facts.id, facts.model, facts.finish_reasons, facts.output) == ("chatcmpl-1", "m", ["stop"], None)
    assert whole_facts(completion, content=True).output == [
        {"role": "assistant", "parts": [{"type": "text", "content": "yes"}], "finish_reason": "stop"}]
    legacy = {"id": "cmpl-1", "model": "m", "choices": [{"index": 0, "text": "done", "finish_reason": "length"}]}
    assert whole_facts(legacy, content=True).output[0]["parts"] == [{"type": "text", "content": "done"}]
    embeddings = {"object": "list", "model": "e", "data": [{"embedding": [0.1]}]}
    assert (whole_facts(embeddings).model, whole_facts(embeddings).finish_reasons) == ("e", [])
    assert whole_facts(b"not json").id is None


def test_trace_context_carried_upstream():
    req = UpstreamRequest("POST", "http://up/v1/chat/completions", {"Content-Type": "application/json"}, b"{}")
    client = {"Traceparent": "00-a-b-01", "Tracestate": "k=v", "Authorization": "x"}
    assert trace_context_carried(req, client).headers == {"Content-Type": "application/json",
                                                          "traceparent": "00-a-b-01", "tracestate": "k=v"}
    assert trace_context_carried(req, {}) is req
    passed = UpstreamRequest("POST", "http://up/", {"Traceparent": "00-a-b-01"}, b"{}")
    assert trace_context_carried(passed, client) is passed  # the backend passed the client's headers on
    assert with_context({"Traceparent": "old", "tracestate": "old", "X": "1"}, "00-new", "") == \
        {"X": "1", "traceparent": "00-new"}
