"""argoproxy.pipeline.streamconv: aggregation and packaging of OpenAI chat / text completions.

The SDK checks drive the real ``openai`` client over an in-memory httpx transport, so what is
asserted is exactly what an application using the SDK would see.
"""

from __future__ import annotations

import copy
import json

import httpx2 as httpx  # the openai SDK installed here is built on httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import OpenAI
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from argoproxy.errors import ProxyError
from argoproxy.pipeline.streamconv import aggregate_chat, aggregate_completion, package_chat, package_completion

BASE = {"id": "chatcmpl-abc123", "created": 1700000000, "model": "qwen-plus"}
USAGE = {"prompt_tokens": 15, "completion_tokens": 32, "total_tokens": 47}


def chat(*choices: dict, usage: dict | None = USAGE, **extra: object) -> dict:
    obj = {**BASE, "object": "chat.completion", "choices": list(choices), **extra}
    if usage is not None:
        obj["usage"] = usage
    return obj


def choice(index: int = 0, finish_reason: str = "stop", **message: object) -> dict:
    return {"index": index, "message": {"role": "assistant", **message}, "logprobs": None, "finish_reason": finish_reason}


TOOL_CALLS = [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
]

COMPLETIONS = {
    "text": chat(choice(content="Hello! How can I help you today?")),
    "empty": chat(choice(content="")),
    "reasoning": chat(choice(content="42", reasoning_content="Think: 6*7.")),
    "reasoning_alias": chat(choice(content="42", reasoning="Think: 6*7.")),
    "tools": chat(choice(finish_reason="tool_calls", content=None, tool_calls=TOOL_CALLS)),
    "tools_and_text": chat(choice(finish_reason="tool_calls", content="Checking.", tool_calls=TOOL_CALLS[:1])),
    "n2": chat(choice(0, content="one"), choice(1, finish_reason="length", content="two")),
    "n2_stop": chat(choice(0, content="one"), choice(1, content="two")),
    "fingerprint": chat(choice(content="x"), system_fingerprint="fp_1", service_tier="default"),
    "no_usage": chat(choice(content="x"), usage=None),
}


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", sorted(COMPLETIONS))
@pytest.mark.parametrize("include_usage", [True, False])
def test_package_then_aggregate_is_identity(name: str, include_usage: bool) -> None:
    original = COMPLETIONS[name]
    chunks = list(package_chat(copy.deepcopy(original), include_usage))
    expected = original if include_usage else {k: v for k, v in original.items() if k != "usage"}
    assert aggregate_chat(chunks) == expected


@pytest.mark.parametrize("name", sorted(COMPLETIONS))
def test_packaged_chunks_and_aggregate_validate_against_sdk_types(name: str) -> None:
    chunks = list(package_chat(COMPLETIONS[name], include_usage=True))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    ChatCompletion.model_validate(aggregate_chat(chunks))


def test_package_layout_role_then_finish_then_usage() -> None:
    chunks = list(package_chat(COMPLETIONS["reasoning"], include_usage=True))
    assert len(chunks) == 3
    first, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "42", "reasoning_content": "Think: 6*7."}
    assert first["choices"][0]["finish_reason"] is None
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"] == USAGE
    assert first["usage"] is None and finish["usage"] is None  # as OpenAI does with include_usage
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert (chunk["id"], chunk["created"], chunk["model"]) == (BASE["id"], BASE["created"], BASE["model"])


def test_package_without_include_usage_has_no_usage_anywhere() -> None:
    chunks = list(package_chat(COMPLETIONS["text"], include_usage=False))
    assert len(chunks) == 2
    assert all("usage" not in c and c["choices"] for c in chunks)


def test_package_tool_calls_carry_index_id_type_and_full_function() -> None:
    first = next(package_chat(COMPLETIONS["tools"], include_usage=False))
    delta = first["choices"][0]["delta"]
    assert delta["content"] is None
    assert delta["tool_calls"] == [{"index": i, **call} for i, call in enumerate(TOOL_CALLS)]


def test_package_text_and_tool_calls_go_in_separate_chunks() -> None:
    chunks = list(package_chat(COMPLETIONS["tools_and_text"], include_usage=False))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": "Checking."}  # text first, no tool_calls beside it
    assert deltas[1] == {"tool_calls": [{"index": 0, **TOOL_CALLS[0]}]}  # then the calls, no content beside them
    assert deltas[2] == {} and chunks[2]["choices"][0]["finish_reason"] == "tool_calls"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:2]] == [None, None]


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:])] or [""]


def _stream_of(content: str, reasoning: str, cuts: list[int]) -> list[dict]:
    base = {**BASE, "object": "chat.completion.chunk"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for piece in _split(reasoning, cuts):
        chunks.append({**base, "choices": [{"index": 0, "delta": {"reasoning_content": piece}, "finish_reason": None}]})
    for piece in _split(content, cuts):
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": USAGE})
    return chunks


@settings(max_examples=150, deadline=None)
@given(content=st.text(), reasoning=st.text(min_size=1), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_any_chunking_aggregates_to_the_same_message(content: str, reasoning: str, cuts: list[int]) -> None:
    result = aggregate_chat(_stream_of(content, reasoning, cuts))
    assert result == chat(choice(content=content, reasoning_content=reasoning))
    # ...and packaging that result streams back to the same thing.
    assert aggregate_chat(package_chat(result, include_usage=True)) == result


# --------------------------------------------------------------------------- aggregation details


def test_tool_call_fragments_are_reassembled_by_index() -> None:
    base = {**BASE, "object": "chat.completion.chunk"}

    def delta(d: dict, finish: str | None = None) -> dict:
        return {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]}

    chunks = [
        delta({"role": "assistant", "content": None}),
        delta({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        # parallel tool calls interleave: the second call starts before the first is done
        delta({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz"'}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}),
        delta({"tool_calls": [{"index": 1, "function": {"arguments": ': "CET"}'}}]}),
        delta({}, "tool_calls"),
    ]
    result = aggregate_chat(chunks)
    assert result["choices"][0] == choice(finish_reason="tool_calls", content=None, tool_calls=TOOL_CALLS)
    assert "usage" not in result
    ChatCompletion.model_validate(result)


def test_reasoning_alias_and_duplicate_reasoning_fields_are_counted_once() -> None:
    base = {**BASE, "object": "chat.completion.chunk"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning": "a", "reasoning_content": "a"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"reasoning": "b", "reasoning_content": "b"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "c"}, "finish_reason": "stop"}]},
    ]
    message = aggregate_chat(chunks)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "c", "reasoning": "ab", "reasoning_content": "ab"}


def test_head_fields_come_from_first_non_empty_chunk_and_usage_from_the_chunk_that_has_it() -> None:
    chunks = [
        # Azure's prompt-filter chunk: empty id/model, no choices
        {"id": "", "object": "chat.completion.chunk", "created": 0, "model": "", "choices": [], "prompt_filter_results": []},
        {**BASE, "object": "chat.completion.chunk", "system_fingerprint": "fp", "usage": None,
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}]},
        {**BASE, "id": "other", "object": "chat.completion.chunk", "usage": None,
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**BASE, "object": "chat.completion.chunk", "choices": [], "usage": USAGE},
    ]
    result = aggregate_chat(chunks)
    assert result["id"] == BASE["id"] and result["model"] == "qwen-plus" and result["system_fingerprint"] == "fp"
    assert result["created"] == 0  # created 0 is a real value, not an empty one
    assert result["usage"] == USAGE


def test_last_non_null_finish_reason_wins() -> None:
    base = {**BASE, "object": "chat.completion.chunk"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "length"}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": None}]},
    ]
    assert aggregate_chat(chunks)["choices"][0]["finish_reason"] == "length"


def test_logprobs_are_concatenated() -> None:
    base = {**BASE, "object": "chat.completion.chunk"}
    lp = lambda tok: {"content": [{"token": tok, "logprob": -0.1, "bytes": None, "top_logprobs": []}], "refusal": None}  # noqa: E731
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "a"}, "logprobs": lp("a"), "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "b"}, "logprobs": lp("b"), "finish_reason": "stop"}]},
    ]
    result = aggregate_chat(chunks)
    assert [t["token"] for t in result["choices"][0]["logprobs"]["content"]] == ["a", "b"]
    ChatCompletion.model_validate(result)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ({"message": "Rate limit reached", "type": "rate_limit_error", "code": 429}, 429, "429"),
        ({"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}, 502, "rate_limit_exceeded"),
        ({"message": "boom", "code": "500"}, 500, "500"),
        ({"message": "odd", "code": 200}, 502, "200"),
        ({"message": "no code"}, 502, None),
    ],
)
def test_error_object_in_stream_raises(error: dict, status: int, code: str | None) -> None:
    chunks = [
        {**BASE, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]},
        {"error": error},
    ]
    with pytest.raises(ProxyError) as info:
        aggregate_chat(chunks)
    assert info.value.status == status
    assert info.value.message == error["message"]
    assert info.value.code == code


def test_string_error_and_empty_stream_raise_502() -> None:
    with pytest.raises(ProxyError) as info:
        aggregate_chat([{"error": "upstream exploded"}])
    assert (info.value.status, info.value.message) == (502, "upstream exploded")
    with pytest.raises(ProxyError) as info:
        aggregate_chat([])
    assert info.value.status == 502


# --------------------------------------------------------------------------- legacy completions


TEXT_COMPLETION = {
    "id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": "gpt-3.5-turbo-instruct",
    "choices": [
        {"index": 0, "text": "Once upon a time", "logprobs": None, "finish_reason": "length"},
        {"index": 1, "text": "", "logprobs": None, "finish_reason": "stop"},
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}


@pytest.mark.parametrize("include_usage", [True, False])
def test_completion_round_trip(include_usage: bool) -> None:
    chunks = list(package_completion(TEXT_COMPLETION, include_usage))
    assert all(c["object"] == "text_completion" for c in chunks)
    assert all(c["id"] == "cmpl-1" and c["created"] == 1700000000 for c in chunks)
    expected = TEXT_COMPLETION if include_usage else {k: v for k, v in TEXT_COMPLETION.items() if k != "usage"}
    assert aggregate_completion(chunks) == expected
    Completion.model_validate(aggregate_completion(chunks))
    # The finish/usage chunks satisfy the SDK's (strict) Completion type too.
    for chunk in chunks:
        if all(ch["finish_reason"] is not None for ch in chunk["choices"]):
            Completion.model_validate(chunk)


def test_completion_aggregates_pieces_and_legacy_logprobs() -> None:
    base = {"id": "cmpl-2", "object": "text_completion", "created": 1, "model": "m"}
    lp = lambda t, o: {"tokens": [t], "token_logprobs": [-0.5], "top_logprobs": [{t: -0.5}], "text_offset": [o]}  # noqa: E731
    chunks = [
        {**base, "choices": [{"index": 0, "text": "Hel", "logprobs": lp("Hel", 0), "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "text": "lo", "logprobs": lp("lo", 3), "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]},
    ]
    result = aggregate_completion(chunks)
    assert result["choices"][0]["text"] == "Hello"
    assert result["choices"][0]["logprobs"]["tokens"] == ["Hel", "lo"]
    assert result["choices"][0]["logprobs"]["text_offset"] == [0, 3]
    Completion.model_validate(result)
    with pytest.raises(ProxyError):
        aggregate_completion([{"error": {"message": "bad", "code": 400}}])


# --------------------------------------------------------------------------- through the real SDK


def _sse(chunks: list[dict]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _client(handler) -> OpenAI:
    # _strict_response_validation: the SDK validates every object against its types.
    return OpenAI(api_key="sk-test", base_url="http://upstream.test/v1", max_retries=0,
                  http_client=httpx.Client(transport=httpx.MockTransport(handler)), _strict_response_validation=True)


def _stream_handler(body: bytes):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    return handler


# (the SDK's helper refuses finish_reason "length" by design, hence n2_stop)
@pytest.mark.parametrize("name", ["text", "reasoning", "tools", "tools_and_text", "n2_stop"])
def test_sdk_stream_helper_accumulates_packaged_stream_to_the_original(name: str) -> None:
    original = COMPLETIONS[name]
    client = _client(_stream_handler(_sse(list(package_chat(original, include_usage=True)))))
    with client.chat.completions.stream(model="qwen-plus", messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_completion()
    assert final.id == original["id"] and final.created == original["created"] and final.model == original["model"]
    assert final.usage is not None and final.usage.total_tokens == USAGE["total_tokens"]
    for got, want in zip(final.choices, original["choices"], strict=True):
        assert got.finish_reason == want["finish_reason"]
        assert got.message.content == want["message"]["content"]
        calls = [(c.id, c.type, c.function.name, c.function.arguments) for c in got.message.tool_calls or []]
        assert calls == [(c["id"], c["type"], c["function"]["name"], c["function"]["arguments"])
                         for c in want["message"].get("tool_calls", [])]
        if "reasoning_content" in want["message"]:
            assert got.message.model_extra["reasoning_content"] == want["message"]["reasoning_content"]


def test_sdk_non_stream_call_accepts_aggregated_completion() -> None:
    aggregated = aggregate_chat(package_chat(COMPLETIONS["tools"], include_usage=True))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=aggregated)

    result = _client(handler).chat.completions.create(model="qwen-plus", messages=[{"role": "user", "content": "hi"}])
    assert result.choices[0].message.tool_calls[1].function.arguments == '{"tz": "CET"}'
    assert result.choices[0].message.content is None


def test_sdk_raw_stream_of_packaged_completion() -> None:
    client = _client(_stream_handler(_sse(list(package_completion(TEXT_COMPLETION, include_usage=True)))))
    client._strict_response_validation = False  # the SDK's Completion type forbids finish_reason null
    texts: dict[int, str] = {}
    for chunk in client.completions.create(model="m", prompt="x", stream=True):
        for ch in chunk.choices:
            texts[ch.index] = texts.get(ch.index, "") + ch.text
    assert texts == {0: "Once upon a time", 1: ""}


def test_aggregating_a_long_stream_takes_linear_time():
    # A 50,000-token answer is 50,000 chunks; copying the content list per chunk took 7 s.
    import time
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "a", "function_call": {"arguments": "b"}},
                          "logprobs": {"content": [{"token": "a", "logprob": 0.0}]}, "finish_reason": None}]}
    started = time.perf_counter()
    message = aggregate_chat(iter([chunk] * 50_000))["choices"][0]
    assert time.perf_counter() - started < 1.5
    assert message["message"]["content"] == "a" * 50_000
    assert message["message"]["function_call"]["arguments"] == "b" * 50_000
    assert len(message["logprobs"]["content"]) == 50_000


def test_a_fold_fed_one_chunk_at_a_time_is_the_aggregate() -> None:
    from argoproxy.pipeline.streamconv import Fold
    chunks = list(package_chat(COMPLETIONS["tools_and_text"], include_usage=True))
    fold = Fold.for_chunk(chunks[0])
    for chunk in chunks:
        fold.add(chunk)
    assert fold.result() == aggregate_chat(chunks)
    text = [{"id": "c", "object": "text_completion", "created": 1, "model": "m",
             "choices": [{"index": 0, "text": "ab", "finish_reason": None}]}]
    fold = Fold.for_chunk(text[0])
    fold.add(text[0])
    assert fold.result()["object"] == "text_completion" and fold.result()["choices"][0]["text"] == "ab"
