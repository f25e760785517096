"""argoproxy.providers.dashscope.translate: request encoding, response/stream decoding, error mapping.

The last section drives the pure functions against tests/fakes/fake_dashscope.py over real
loopback HTTP (requests), the way the pipeline will.
"""

from __future__ import annotations

import array
import base64
import itertools
import json

import pytest
import requests
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from argoproxy.providers.dashscope import translate as ds
from argoproxy.errors import ProxyError
from argoproxy.pipeline.streamconv import aggregate_chat
from tests.fakes.fake_dashscope import FakeDashScope

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]


# --------------------------------------------------------------------------- encoding


def test_encode_chat_moves_messages_to_input_and_everything_else_to_parameters() -> None:
    body = {
        "model": "qwen-plus", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}, "n": 1,
        "temperature": 0.7, "top_p": 0.8, "top_k": 20, "max_tokens": 100, "seed": 7, "stop": ["\n\n"],
        "repetition_penalty": 1.1, "presence_penalty": 0.5, "tools": TOOLS, "tool_choice": "auto",
        "enable_thinking": True, "thinking_budget": 50, "response_format": {"type": "json_object"},
    }
    encoded = ds.encode_chat(body, stream=True)
    assert encoded["model"] == "qwen-plus"
    assert encoded["input"] == {"messages": MESSAGES}
    params = encoded["parameters"]
    assert params["result_format"] == "message" and params["incremental_output"] is True
    for key in ("temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "repetition_penalty",
                "presence_penalty", "tools", "tool_choice", "enable_thinking", "thinking_budget", "response_format"):
        assert params[key] == body[key], key
    for key in ("model", "messages", "stream", "stream_options", "n"):
        assert key not in params
    assert body["stream"] is True  # the caller's dict is not modified


def test_encode_chat_non_stream_and_field_adjustments() -> None:
    encoded = ds.encode_chat({"model": "m", "messages": MESSAGES, "top_p": 1, "max_completion_tokens": 64}, stream=False)
    params = encoded["parameters"]
    assert params["incremental_output"] is False
    assert params["top_p"] == 0.9999  # DashScope rejects top_p == 1
    assert params["max_tokens"] == 64 and "max_completion_tokens" not in params
    # an explicit max_tokens wins over max_completion_tokens
    both = ds.encode_chat({"model": "m", "messages": MESSAGES, "max_tokens": 10, "max_completion_tokens": 64}, False)
    assert both["parameters"]["max_tokens"] == 10


@pytest.mark.parametrize("effort, on", [("low", True), ("medium", True), ("high", True), ("none", False)])
def test_reasoning_effort_becomes_enable_thinking(effort: str, on: bool) -> None:
    """What the Messages and Google doors' thinking becomes reaches DashScope as its own switch."""
    params = ds.encode_chat({"model": "qwen-plus", "messages": MESSAGES, "reasoning_effort": effort}, True)["parameters"]
    assert params["enable_thinking"] is on and "reasoning_effort" not in params
    # DashScope refuses thinking on in a call that does not stream: there only "off" is said
    whole = ds.encode_chat({"model": "qwen-plus", "messages": MESSAGES, "reasoning_effort": effort}, False)
    assert whole["parameters"].get("enable_thinking") is (None if on else False)
    # the client's own enable_thinking wins
    own = {"model": "qwen-plus", "messages": MESSAGES, "reasoning_effort": effort, "enable_thinking": not on}
    assert ds.encode_chat(own, True)["parameters"]["enable_thinking"] is (not on)


def test_openai_model_names_become_qwen_models() -> None:
    """Seed 004's protocol-conversion example: gpt-4 is sent to DashScope as qwen-max."""
    encoded = ds.encode_chat({"model": "gpt-4", "messages": MESSAGES, "temperature": 0.7}, stream=False)
    assert encoded["model"] == "qwen-max" and encoded["parameters"]["temperature"] == 0.7
    assert ds.encode_chat({"model": "qwen-plus", "messages": MESSAGES}, False)["model"] == "qwen-plus"


def test_the_docs_list_every_openai_name_and_the_qwen_model_sent() -> None:
    """docs/backends/dashscope.md's table is OPENAI_MODEL_NAMES."""
    import re
    from pathlib import Path
    page = (Path(__file__).resolve().parents[4] / "docs" / "backends" / "dashscope.md").read_text()
    assert dict(re.findall(r"(?m)^\| `([\w.-]+)` \| `([\w.-]+)` \|$", page)) == ds.OPENAI_MODEL_NAMES


def test_encode_embeddings() -> None:
    encoded = ds.encode_embeddings({"model": "text-embedding-v3", "input": "hello", "dimensions": 512,
                                    "encoding_format": "base64", "user": "u", "text_type": "query"})
    assert encoded == {"model": "text-embedding-v3", "input": {"texts": ["hello"]},
                       "parameters": {"text_type": "query", "dimension": 512}}
    assert ds.encode_embeddings({"model": "e", "input": ["a", "b"]})["input"] == {"texts": ["a", "b"]}


@pytest.mark.parametrize("bad", [[1, 2, 3], [[1, 2]], [], None, ["a", 3]])
def test_encode_embeddings_rejects_token_ids_and_empty_input(bad: object) -> None:
    with pytest.raises(ProxyError) as info:
        ds.encode_embeddings({"model": "e", "input": bad})
    assert info.value.status == 400 and info.value.param == "input"


def test_request_headers() -> None:
    assert ds.request_headers("k", False) == {"Authorization": "Bearer k", "Content-Type": "application/json"}
    assert ds.request_headers("k", True)["X-DashScope-SSE"] == "enable"


# --------------------------------------------------------------------------- decoding


def test_decode_chat_message_format() -> None:
    obj = {
        "output": {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "Hi!",
                                                                     "reasoning_content": "Greet back."}}]},
        "usage": {"input_tokens": 15, "output_tokens": 32, "total_tokens": 47,
                  "output_tokens_details": {"reasoning_tokens": 3}, "prompt_tokens_details": {"cached_tokens": 8}},
        "request_id": "req-1",
    }
    result = ds.decode_chat(obj, "qwen-plus")
    assert result["id"] == "chatcmpl-req-1" and result["request_id"] == "req-1"
    assert result["object"] == "chat.completion" and result["model"] == "qwen-plus"
    assert isinstance(result["created"], int)
    assert result["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hi!", "reasoning_content": "Greet back."},
                                  "logprobs": None, "finish_reason": "stop"}]
    assert result["usage"] == {"prompt_tokens": 15, "completion_tokens": 32, "total_tokens": 47,
                               "completion_tokens_details": {"reasoning_tokens": 3},
                               "prompt_tokens_details": {"cached_tokens": 8}}
    ChatCompletion.model_validate(result)


def test_decode_chat_tool_calls_null_content_and_total_fallback() -> None:
    obj = {"output": {"choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "",
        "tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}]},
        "usage": {"input_tokens": 5, "output_tokens": 6}, "request_id": "r"}
    result = ds.decode_chat(obj, "qwen-plus")
    message = result["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "call_9", "type": "function",
                                      "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    assert result["usage"]["total_tokens"] == 11
    ChatCompletion.model_validate(result)


def test_decode_chat_text_format_and_null_finish_reason() -> None:
    obj = {"output": {"text": "plain", "finish_reason": "null"}, "usage": {"input_tokens": 1, "output_tokens": 1}, "request_id": "r"}
    result = ds.decode_chat(obj, "qwen-turbo")
    assert result["choices"][0]["message"] == {"role": "assistant", "content": "plain"}
    assert result["choices"][0]["finish_reason"] is None


def test_decode_chat_multimodal_list_content_is_joined() -> None:
    obj = {"output": {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": [{"text": "a"}, {"text": "b"}]}}]}}
    assert ds.decode_chat(obj, "qwen-vl")["choices"][0]["message"]["content"] == "ab"


def test_decode_chat_error_body_raises() -> None:
    with pytest.raises(ProxyError) as info:
        ds.decode_chat({"code": "Throttling.RateQuota", "message": "slow down", "request_id": "r1"}, "m")
    assert info.value.status == 429 and info.value.code == "Throttling.RateQuota"


EMBEDDING_RESULT = {"output": {"embeddings": [{"text_index": 1, "embedding": [0.5, -0.25]},
                                              {"text_index": 0, "embedding": [0.125, 1.0]}]},
                    "usage": {"total_tokens": 4}, "request_id": "r"}


def test_decode_embeddings_float() -> None:
    result = ds.decode_embeddings(EMBEDDING_RESULT, "text-embedding-v3")
    assert result == {"object": "list", "model": "text-embedding-v3",
                      "data": [{"object": "embedding", "index": 0, "embedding": [0.125, 1.0]},
                               {"object": "embedding", "index": 1, "embedding": [0.5, -0.25]}],
                      "usage": {"prompt_tokens": 4, "total_tokens": 4}}
    CreateEmbeddingResponse.model_validate(result)


def test_decode_embeddings_base64_is_what_the_sdk_decodes() -> None:
    result = ds.decode_embeddings(EMBEDDING_RESULT, "e", encoding_format="base64")
    first = result["data"][0]["embedding"]
    assert isinstance(first, str)
    # the openai SDK decodes with array("f", b64decode(...)) when it asked for base64 itself
    assert array.array("f", base64.b64decode(first)).tolist() == [0.125, 1.0]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (200, "InvalidApiKey", 401), (200, "InvalidParameter", 400), (200, "Arrearage", 403),
        (200, "DataInspectionFailed", 400), (200, "Throttling", 429), (200, "Throttling.RateQuota", 429),
        (200, "Throttling.AllocationQuota", 429), (200, "ModelNotFound", 404), (200, "InternalError", 500),
        (200, "InternalError.Algo", 500), (200, "SomethingNew", 502),
        # an upstream error status is kept as is
        (400, "Arrearage", 400), (401, "InvalidApiKey", 401), (503, "InternalError", 503), (429, "Whatever", 429),
    ],
)
def test_error_from_maps_codes(status: int, code: str, expected: int) -> None:
    err = ds.error_from(status, {"code": code, "message": "msg", "request_id": "rid-7"})
    assert err.status == expected
    assert err.code == code
    assert "msg" in err.message and "rid-7" in err.message
    body = err.body()["error"]
    assert set(body) == {"message", "type", "param", "code"}


def test_error_from_accepts_compatible_mode_envelope() -> None:
    err = ds.error_from(400, {"error": {"message": "bad", "type": "invalid_request_error", "param": "model", "code": "invalid_value"}})
    assert (err.status, err.message, err.param, err.code) == (400, "bad", "model", "invalid_value")


# --------------------------------------------------------------------------- stream decoding


def frames(datas: list[dict], *, space: bool = False, crlf: bool = False) -> list[bytes]:
    """Raw DashScope SSE lines (as requests' iter_lines yields them: bytes, no newline)."""
    out: list[bytes] = []
    end = "\r" if crlf else ""
    for i, data in enumerate(datas, start=1):
        sep = ": " if space else ":"
        out += [f"id{sep}{i}{end}".encode(), f"event{sep}result{end}".encode(), f":HTTP_STATUS/200{end}".encode(),
                f"data{sep}{json.dumps(data)}{end}".encode(), end.encode()]
    return out


def event(content: str, finish: str = "null", *, reasoning: str | None = None, out_tokens: int = 1, tool_calls=None) -> dict:
    message: dict = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {"output": {"choices": [{"finish_reason": finish, "message": message}]},
            "usage": {"input_tokens": 10, "output_tokens": out_tokens, "total_tokens": 10 + out_tokens},
            "request_id": "rid-s"}


INCREMENTAL = [event("Hel", out_tokens=1), event("lo, ", out_tokens=2), event("world", out_tokens=3), event("", "stop", out_tokens=3)]
CUMULATIVE = [event("Hel", out_tokens=1), event("Hello, ", out_tokens=2), event("Hello, world", out_tokens=3),
              event("Hello, world", "stop", out_tokens=3)]


@pytest.mark.parametrize(("datas", "incremental"), [(INCREMENTAL, True), (CUMULATIVE, False)])
def test_incremental_and_cumulative_streams_give_the_same_deltas(datas: list[dict], incremental: bool) -> None:
    chunks = list(ds.decode_chat_stream(frames(datas), "qwen-plus", incremental=incremental, include_usage=True))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas == [{"role": "assistant", "content": "Hel"}, {"content": "lo, "}, {"content": "world"}, {}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    assert {c["id"] for c in chunks} == {"chatcmpl-rid-s"} and len({c["created"] for c in chunks}) == 1
    result = aggregate_chat(chunks)
    assert result["choices"][0]["message"]["content"] == "Hello, world"
    assert result["usage"]["total_tokens"] == 13


def test_stream_tolerates_spaces_crlf_and_missing_final_blank_line() -> None:
    lines = frames(INCREMENTAL, space=True, crlf=True)
    lines = [line.decode() for line in lines][:-1]  # str input too, and no trailing blank line
    result = aggregate_chat(ds.decode_chat_stream(lines, "m", include_usage=True))
    assert result["choices"][0]["message"]["content"] == "Hello, world"
    assert result["choices"][0]["finish_reason"] == "stop"


def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    chunks = list(ds.decode_chat_stream(frames(INCREMENTAL), "m"))
    assert all(c["choices"] and "usage" not in c for c in chunks)


def test_stream_reasoning_then_content() -> None:
    datas = [event("", reasoning="Let me "), event("", reasoning="think."), event("Answer", reasoning=""),
             event("", "stop", reasoning="")]
    chunks = list(ds.decode_chat_stream(frames(datas), "qwen3", include_usage=True))
    message = aggregate_chat(chunks)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Answer", "reasoning_content": "Let me think."}


@pytest.mark.parametrize("incremental", [True, False])
def test_stream_tool_calls_become_openai_fragments(incremental: bool) -> None:
    pieces = ['{"ci', 'ty": ', '"Paris"}']
    datas, so_far = [], ""
    for n, piece in enumerate(pieces):
        so_far += piece
        args = piece if incremental else so_far
        first = n == 0 or not incremental
        call = {"index": 0, "id": "call_x" if first else "", "type": "function",
                "function": {"arguments": args, **({"name": "get_weather"} if first else {})}}
        datas.append(event("", tool_calls=[call]))
    datas.append(event("", "tool_calls"))
    chunks = list(ds.decode_chat_stream(frames(datas), "m", incremental=incremental))
    fragments = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    # id/type/name only once: the SDK concatenates repeated strings
    assert fragments[0] == {"index": 0, "id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": '{"ci'}}
    assert fragments[1:] == [{"index": 0, "function": {"arguments": 'ty": '}}, {"index": 0, "function": {"arguments": '"Paris"}'}}]
    result = aggregate_chat(chunks)
    assert result["choices"][0]["message"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert result["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_text_result_format() -> None:
    datas = [{"output": {"text": "Hi", "finish_reason": "null"}, "request_id": "r"},
             {"output": {"text": "Hi there", "finish_reason": "stop"}, "request_id": "r"}]
    result = aggregate_chat(ds.decode_chat_stream(frames(datas), "m", incremental=False))
    assert result["choices"][0]["message"]["content"] == "Hi there"


def test_stream_error_frame_raises_after_earlier_chunks() -> None:
    lines = frames(INCREMENTAL[:2]) + [b"id:3", b"event:error", b":HTTP_STATUS/429",
                                       b'data:{"code":"Throttling.RateQuota","message":"Requests rate limit exceeded","request_id":"r9"}', b""]
    decoder = ds.ChatStreamDecoder("m")
    got = []
    with pytest.raises(ProxyError) as info:
        for chunk in decoder.decode(lines):
            got.append(chunk)
    assert len(got) == 2  # what came before the error was delivered first
    assert info.value.status == 429 and info.value.code == "Throttling.RateQuota"
    assert "rate limit" in info.value.message


def test_stream_error_frame_without_status_uses_code_and_garbage_is_502() -> None:
    with pytest.raises(ProxyError) as info:
        list(ds.decode_chat_stream([b"event:error", b'data:{"code":"InvalidApiKey","message":"bad key"}', b""], "m"))
    assert info.value.status == 401
    with pytest.raises(ProxyError) as info:
        list(ds.decode_chat_stream([b"data:not json", b""], "m"))
    assert info.value.status == 502


# --------------------------------------------------------------------------- against the fake server


@pytest.fixture(scope="module")
def fake():
    with FakeDashScope(api_key="sk-fake-dashscope") as server:
        yield server


def _post(fake: FakeDashScope, path: str, body: dict, *, stream: bool = False, key: str = "sk-fake-dashscope") -> requests.Response:
    return requests.post(fake.base_url + path, json=body, headers=ds.request_headers(key, stream), stream=stream, timeout=10)


def test_fake_non_stream_round_trip(fake: FakeDashScope) -> None:
    body = ds.encode_chat({"model": "qwen-plus", "messages": MESSAGES, "temperature": 0.2}, stream=False)
    response = _post(fake, ds.TEXT_GENERATION_PATH, body)
    assert response.status_code == 200
    result = ds.decode_chat(response.json(), "qwen-plus")
    assert result["choices"][0]["message"]["content"] == fake.reply
    assert result["usage"]["total_tokens"] == result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]
    received = fake.received[-1]
    assert received.path == "/api/v1/services/aigc/text-generation/generation"
    assert received.header("authorization") == "Bearer sk-fake-dashscope"
    assert received.json["parameters"]["temperature"] == 0.2


@pytest.mark.parametrize("incremental", [True, False])
def test_fake_stream_round_trip(fake: FakeDashScope, incremental: bool) -> None:
    body = ds.encode_chat({"model": "qwen-plus", "messages": MESSAGES}, stream=True)
    body["parameters"]["incremental_output"] = incremental
    with _post(fake, ds.TEXT_GENERATION_PATH, body, stream=True) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        chunks = list(ds.decode_chat_stream(response.iter_lines(), "qwen-plus", incremental=incremental, include_usage=True))
    assert len(chunks) > 4
    result = aggregate_chat(chunks)
    assert result["choices"][0]["message"]["content"] == fake.reply
    assert result["usage"]["completion_tokens"] > 0
    assert fake.received[-1].header("X-DashScope-SSE") == "enable"


def test_fake_thinking_stream_and_its_rules(fake: FakeDashScope) -> None:
    request = {"model": "qwen3-32b", "messages": MESSAGES, "enable_thinking": True}
    with _post(fake, ds.TEXT_GENERATION_PATH, ds.encode_chat(request, stream=True), stream=True) as response:
        result = aggregate_chat(ds.decode_chat_stream(response.iter_lines(), "qwen3-32b", include_usage=True))
    message = result["choices"][0]["message"]
    assert message["reasoning_content"] == fake.reasoning and message["content"] == fake.reply
    assert result["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    # like the real service: thinking needs a stream
    response = _post(fake, ds.TEXT_GENERATION_PATH, ds.encode_chat(request, stream=False))
    assert response.status_code == 400
    err = ds.error_from(response.status_code, response.json())
    assert err.code == "InvalidParameter" and "enable_thinking" in err.message


def test_fake_tool_call_stream(fake: FakeDashScope) -> None:
    fake.tool_calls = True
    try:
        request = {"model": "qwen-plus", "messages": MESSAGES, "tools": TOOLS}
        with _post(fake, ds.TEXT_GENERATION_PATH, ds.encode_chat(request, stream=True), stream=True) as response:
            chunks = list(ds.decode_chat_stream(response.iter_lines(), "qwen-plus"))
        non_stream = ds.decode_chat(_post(fake, ds.TEXT_GENERATION_PATH, ds.encode_chat(request, stream=False)).json(), "qwen-plus")
    finally:
        fake.tool_calls = False
    streamed = aggregate_chat(chunks)
    for result in (streamed, non_stream):
        choice = result["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": fake.tool_arguments}


def test_fake_rejects_bad_key(fake: FakeDashScope) -> None:
    response = _post(fake, ds.TEXT_GENERATION_PATH, ds.encode_chat({"model": "m", "messages": MESSAGES}, False), key="wrong")
    assert response.status_code == 401
    err = ds.error_from(response.status_code, response.json())
    assert (err.status, err.code, err.type) == (401, "InvalidApiKey", "authentication_error")


def test_fake_fail_next_and_mid_stream_error(fake: FakeDashScope) -> None:
    fake.fail_next("Throttling.RateQuota", 429, "Requests rate limit exceeded")
    response = _post(fake, ds.TEXT_GENERATION_PATH, ds.encode_chat({"model": "m", "messages": MESSAGES}, False))
    assert response.status_code == 429 and response.json()["code"] == "Throttling.RateQuota"
    assert _post(fake, ds.TEXT_GENERATION_PATH, ds.encode_chat({"model": "m", "messages": MESSAGES}, False)).status_code == 200

    fake.error_mid_stream(after=2, code="InternalError", status=500)
    got = []
    with _post(fake, ds.TEXT_GENERATION_PATH, ds.encode_chat({"model": "m", "messages": MESSAGES}, True), stream=True) as response:
        with pytest.raises(ProxyError) as info:
            for chunk in ds.decode_chat_stream(response.iter_lines(), "m"):
                got.append(chunk)
    assert len(got) == 2 and info.value.status == 500 and info.value.code == "InternalError"


def test_fake_embeddings(fake: FakeDashScope) -> None:
    request = {"model": "text-embedding-v3", "input": ["a", "b"], "dimensions": 4}
    response = _post(fake, ds.EMBEDDINGS_PATH, ds.encode_embeddings(request))
    assert response.status_code == 200
    result = ds.decode_embeddings(response.json(), "text-embedding-v3")
    assert [d["index"] for d in result["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 4 for d in result["data"])
    assert fake.received[-1].json["parameters"] == {"dimension": 4}
    CreateEmbeddingResponse.model_validate(result)


def test_an_incremental_stream_is_translated_without_keeping_its_text() -> None:
    """Only the lengths sent are kept to diff cumulative events: a 64 MB incremental stream held whole (and
    copied per event by +=) before."""
    import tracemalloc
    line = frames([event("x" * 65536)])
    end = frames([event("", finish="stop")])  # the finishing event (a stream without it was cut short)
    lines = itertools.chain((piece for _ in range(1000) for piece in line), end)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        size = sum(len(chunk["choices"][0]["delta"].get("content") or "")
                   for chunk in ds.decode_chat_stream(lines, "m", incremental=True))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert size == 1000 * 65536
    assert peak < 4 * 1024 * 1024, peak


def test_a_stream_ending_before_its_finishing_event_is_cut_short() -> None:
    """A well-framed body that ends before the event with the finish reason: read as whole, every door ended
    it as if complete (the Google door with finishReason STOP)."""
    with pytest.raises(ProxyError) as info:
        list(ds.decode_chat_stream(iter(frames([event("Hel"), event("Hello")])), "m"))
    assert info.value.status == 502 and info.value.code == "upstream_stream_incomplete"
