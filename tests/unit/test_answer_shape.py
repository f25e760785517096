"""A malformed upstream answer (a hostile or broken server) is a 502 `upstream_bad_response`, or an error event
once a stream has begun: never a 500 of the proxy's own, nor a stream cut without a word. Driven in-process
through the door with a fake upstream object, on every route that reads an answer."""

from __future__ import annotations

import json

import pytest

from argoproxy.edge.http_objects import Request
from argoproxy.serve.proxy import build_proxy
from argoproxy.config.settings import load_settings
from tests.fakes.fake_upstream import FakeUpstream

MSG = [{"role": "user", "content": "hi"}]
REQUESTS = {
    "chat": ("/v1/chat/completions", {"model": "m", "messages": MSG}),
    "chat-stream": ("/v1/chat/completions", {"model": "m", "messages": MSG, "stream": True}),
    "completions": ("/v1/completions", {"model": "m", "prompt": "x"}),
    "responses": ("/v1/responses", {"model": "m", "input": "x"}),
    "responses-stream": ("/v1/responses", {"model": "m", "input": "x", "stream": True}),
    "messages": ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": MSG}),
    "messages-stream": ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": MSG, "stream": True}),
}
WHOLE = [{"choices": [None]}, {"choices": [{"message": {"content": None, "tool_calls": [None]}}]},
         {"choices": [{"index": "a", "message": {"role": "assistant", "content": "x"}, "finish_reason": 5}],
          "usage": {"prompt_tokens": "x"}},
         {"choices": [{"message": {"role": "assistant", "content": "x", "tool_calls": [{"function": 5}]}}]},
         {"choices": {"0": {}}}, {"choices": [{"message": "text"}]}, {"usage": [1]},
         # text that translators join, and tool-call arguments (JSON text) given as another type
         {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
                       "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}}]},
         {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": {"t": 1}}}]},
         {"choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "x", "reasoning_content": 5}}]}]
STREAMED = [b'data: {"choices":[null]}\n\n', b'data: {"choices":[{"delta":{"tool_calls":[null]}}]}\n\n',
            b'data: {"choices":[{"delta":{"tool_calls":[{"index":"x","function":5}]}}]}\n\n',
            b'data: {"choices":[{"delta":"x"}]}\n\n', b'data: {"choices":[{"index":0,"delta":{}}],"usage":5}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"content":5}}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"reasoning_content":["r"]}}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":{"a":1}}}]}}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"function_call":{"name":"f","arguments":[1]}}}]}\n\n',
            # data that is not a JSON object: read, it was left out and the answer ended as if whole
            b'data: {"choices":[{"index":0,"delta":{"content":"a"}}\n\n', b'data: {"a":' + b'[' * 5000 + b'\n\n',
            b'data: {"choices":[{"index":null,"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":null,"function":{"arguments":"{}"}}]}}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"content":"\xff"}}]}\n\n']


def door_for(tmp_path, monkeypatch, **env):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off",
                                          "TARGET_BASE_URL": "http://upstream.test/v1/", **env})
    upstream = FakeUpstream()
    return build_proxy(settings, upstream), upstream


def refused(status: int, data: bytes) -> bool:
    """A 502, or a stream that ends with an error event saying the answer could not be used."""
    return status == 502 or b"cannot be understood" in data or b"before the answer was complete" in data


def own_failure(data: bytes) -> bool:
    """The proxy's own failure said: internal_error, or server_error other than as a failed Responses object's
    `error.code` (its document lists no code for an upstream's fault; the error event before it names the cause)."""
    return b"internal_error" in data or b"server_error" in data.replace(b'"error":{"code":"server_error"', b"")


def answered(door, route: str) -> tuple[int, bytes]:
    path, body = REQUESTS[route]
    answer = door.handle(Request.of("POST", path, body))
    data = answer.get_data() if not answer.is_streamed else b"".join(answer.response)
    return answer.status_code, data


@pytest.mark.parametrize("mode", ["off", "non_stream"])
@pytest.mark.parametrize("reply", WHOLE, ids=range(len(WHOLE)))
def test_malformed_whole_answers_are_502(tmp_path, monkeypatch, mode, reply):
    for route in REQUESTS:
        door, up = door_for(tmp_path, monkeypatch, UPSTREAM_MODE=mode)
        # twice: a stream answered with no data is asked again whole, and a broken server breaks again
        up.reply(reply)
        up.reply(reply)
        status, data = answered(door, route)
        assert b"internal_error" not in data and b"server_error" not in data, (route, data)
        assert status in (200, 502), (route, status, data)  # 200: relayed as it came (never parsed)
        if route.startswith(("responses", "messages")):  # translated: read, so refused
            assert refused(status, data), (route, data)


@pytest.mark.parametrize("mode", ["off", "stream"])
@pytest.mark.parametrize("event", STREAMED, ids=range(len(STREAMED)))
def test_malformed_stream_chunks_are_502_or_an_error_event(tmp_path, monkeypatch, mode, event):
    for route in REQUESTS:
        door, up = door_for(tmp_path, monkeypatch, UPSTREAM_MODE=mode)
        up.stream([event, b"data: [DONE]\n\n"])
        status, data = answered(door, route)
        assert not own_failure(data), (route, data)
        if route.startswith(("responses", "messages")) or mode == "stream" and route in ("chat", "completions"):
            assert refused(status, data), (route, data)  # read, so refused


def test_a_model_list_with_odd_ids_is_filtered_not_500(tmp_path, monkeypatch):
    door, up = door_for(tmp_path, monkeypatch, ALLOWED_MODELS="gpt-4o")
    up.reply({"object": "list", "data": [{"id": 5}, {"id": None}, "x", {"id": "gpt-4o"}]})
    answer = door.handle(Request.of("GET", "/v1/models"))
    assert answer.status_code == 200 and [m["id"] for m in json.loads(answer.get_data())["data"]] == ["gpt-4o"]
    up.reply({"object": "list", "data": {"id": "gpt-4o"}})
    answer = door.handle(Request.of("GET", "/v1/models"))
    assert answer.status_code == 502 and b"upstream_bad_response" in answer.get_data()


@pytest.mark.parametrize("reply", [None, [1], "s", b"\xff", {"usage": 5}, {"output": {"choices": [None]}},
                                   {"output": {"choices": [{"message": {"content": 5, "tool_calls": [None]}}]}}])
def test_malformed_dashscope_answers_are_502(tmp_path, monkeypatch, reply):
    for route in ("chat", "responses", "messages"):
        door, up = door_for(tmp_path, monkeypatch, BACKEND="dashscope", DASHSCOPE_API_KEY="k")
        up.reply(reply)
        status, data = answered(door, route)
        assert status == 502, (route, data)


@pytest.mark.parametrize("event", [b"\xff\xfe", b'data: {"output":{"choices":[null]}}\n\n',
                                   b'data: {"output":{"choices":[{"message":{"content":5}}]}}\n\n'])
def test_malformed_dashscope_stream_events_are_502(tmp_path, monkeypatch, event):
    door, up = door_for(tmp_path, monkeypatch, BACKEND="dashscope", DASHSCOPE_API_KEY="k")
    up.stream([event])
    status, data = answered(door, "chat-stream")
    assert refused(status, data), data


def test_argo_tool_calls_that_are_not_a_list_are_502(tmp_path, monkeypatch):
    door, up = door_for(tmp_path, monkeypatch, BACKEND="argo", ARGO_USER="alice")
    up.reply({"response": {"content": "x", "tool_calls": 5}})
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    answer = door.handle(Request.of("POST", "/v1/chat/completions", {"model": "gpt4o", "messages": MSG,
                                                                       "tools": [tool]}))
    assert answer.status_code == 502, answer.get_data()


@pytest.mark.parametrize("route", ["responses-stream", "messages-stream", "chat"])
def test_heartbeats_of_json_that_is_not_a_chunk_are_skipped(tmp_path, monkeypatch, route):
    door, up = door_for(tmp_path, monkeypatch, UPSTREAM_MODE="stream")
    up.stream([b'data: "ping"\n\n', b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n', b"data: [1]\n\n",
               b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', b"data: [DONE]\n\n"])
    status, data = answered(door, route)
    assert status == 200 and b"Hi" in data and not refused(status, data), data
