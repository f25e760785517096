"""Chat chunks as Google's stream, SSE or one JSON array, and what it holds bounded
(argoproxy/fronts/google/stream.py)."""

from __future__ import annotations

import json

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts import DoorArgs
from argoproxy.fronts.front import ARGS_LIMIT
from tests.unit.fronts.google.test_request import FRONT, USER


def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def stream_bytes(chunks: list[dict], sse: bool = True) -> bytes:
    _, ex = FRONT.to_chat({"contents": [USER]}, False, DoorArgs(model="m", stream=True, sse=sse))
    return b"".join(FRONT.encode_event(e) for e in FRONT.stream(iter(chunks), ex))


TOOL_CHUNKS = [chunk({"content": "Let me check."}),
               chunk({"tool_calls": [{"index": 0, "id": "call_7", "function": {"name": "f", "arguments": '{"a"'}}]}),
               chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': 1}'}}]}),
               chunk({}, "tool_calls"), {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6,
                                                                  "total_tokens": 10}}]


def test_stream_sse_sends_text_at_once_and_calls_whole():
    data = stream_bytes(TOOL_CHUNKS)
    events = [json.loads(e[len(b"data: "):]) for e in data.split(b"\r\n\r\n") if e]
    assert [e["candidates"][0]["content"]["parts"] for e in events] == [
        [{"text": "Let me check."}], [{"functionCall": {"name": "f", "args": {"a": 1}, "id": "call_7"}}]]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP" and events[-1]["usageMetadata"]["totalTokenCount"] == 10
    assert len({e["responseId"] for e in events}) == 1


def test_stream_without_alt_sse_is_one_json_array():
    events = json.loads(stream_bytes(TOOL_CHUNKS, sse=False))
    assert len(events) == 2 and events[1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("sse", [True, False])
def test_stream_errors_end_in_googles_shape(sse):
    def broken():
        yield chunk({"content": "Hel"})
        raise ProxyError(502, "The upstream broke off.")
    _, ex = FRONT.to_chat({"contents": [USER]}, False, DoorArgs(model="m", stream=True, sse=sse))
    data = b"".join(FRONT.encode_event(e) for e in FRONT.stream(broken(), ex))
    if sse:  # the error as Google writes one mid-stream: the bare object, after the events
        *chunks, error = data.split(b"\r\n\r\n")
        assert chunks[0].startswith(b"data: ") and not error.startswith(b"data:") and error.endswith(b"}\r\n")
        events = [json.loads(e[6:]) for e in chunks] + [json.loads(error)]
    else:
        events = json.loads(data)
    assert events[-1] == {"error": {"code": 502, "message": "The upstream broke off.", "status": "UNAVAILABLE"}}
    assert ex.error is not None and ex.error.status == 502


def test_stream_holds_bounded_tool_arguments():
    huge = "x" * (1024 * 1024)
    chunks = [chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]})]
    chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": huge}}]})] * (ARGS_LIMIT // len(huge) + 1)
    *_, error = stream_bytes(chunks).split(b"\r\n\r\n")
    assert json.loads(error)["error"]["code"] == 502 and "exceed" in json.loads(error)["error"]["message"]


def test_stream_holds_many_tiny_argument_fragments_joined():
    """7.9 million one-byte fragments (within ARGS_LIMIT) were as many string objects: half a gigabyte held.
    They are joined as they come; the call goes out whole and right."""
    from argoproxy.fronts.google.stream import GoogleStream
    _, ex = FRONT.to_chat({"contents": [USER]}, False, DoorArgs(model="m", stream=True))
    state = GoogleStream(ex)
    state.tool_call(0, {"id": "c", "function": {"name": "f", "arguments": ""}})
    for ch in '{"a": "' + "x" * 20000 + '"}':
        state.tool_call(0, {"function": {"arguments": ch}})
    assert len(state.waiting[0][2]) < 200
    assert json.loads("".join(state.waiting[0][2])) == {"a": "x" * 20000}
