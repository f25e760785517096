"""Streams relayed in bounded memory on every door, journals on or off (issue 20, item 1).

An upstream streams STREAM_EVENTS events of 64 KB of text (96 MB) to a streaming client of each door; the
worker's peak resident memory (VmHWM, reset before each request through /proc/PID/clear_refs) may grow by at
most BOUND over its idle size. Before the fix the Responses door held every piece several times over (a 328 MB
stream: 2.2 GB), the Messages door twice (711 MB), and journals kept every parsed chunk (3.9 GB for 656 MB)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Stream
from tests.polling import poll
from tests.proxy_process import running_proxy
from tests.reliability.support import peak_growth, quick_ok

pytestmark = pytest.mark.timeout(300)

MB = 1024 * 1024
STREAM_EVENTS = 1500  # 64 KB each: 96 MB, several times the bound even for the Messages door's old copy
BOUND = 64 * MB
PIECE = "a" * 65536
HEAD = {"id": "chatcmpl-big", "object": "chat.completion.chunk", "created": 1, "model": "m"}
MAX_EVENT = 16 * MB  # the Responses door keeps at most this much output for its closing events


def event(delta: dict, finish: str | None = None, **extra) -> bytes:
    chunk = {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def text_stream(count: int = STREAM_EVENTS) -> Stream:
    """`count` events of 64 KB of text (one bytes object repeated: the fake holds one copy)."""
    usage = {**HEAD, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}}
    return Stream([event({"role": "assistant", "content": ""})] + [event({"content": PIECE})] * count
                  + [event({}, "stop"), b"data: " + json.dumps(usage).encode() + b"\n\n", b"data: [DONE]\n\n"])


def tool_stream(count: int) -> Stream:
    """One tool call whose arguments arrive in `count` fragments of 64 KB."""
    first = event({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                         "function": {"name": "f", "arguments": '{"x": "'}}]})
    piece = event({"tool_calls": [{"index": 0, "function": {"arguments": PIECE}}]})
    last = event({"tool_calls": [{"index": 0, "function": {"arguments": '"}'}}]})
    return Stream([first] + [piece] * count + [last, event({}, "tool_calls"), b"data: [DONE]\n\n"])


REQUESTS = {
    "chat": ("/v1/chat/completions", {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
    "responses": ("/v1/responses", {"model": "m", "stream": True, "input": "hi"}),
    "messages": ("/v1/messages", {"model": "m", "stream": True, "max_tokens": 100,
                                  "messages": [{"role": "user", "content": "hi"}]}),
    "google": ("/v1beta/models/m:streamGenerateContent?alt=sse", {"contents": [{"role": "user", "parts": [
        {"text": "hi"}]}]}),
}


def stream_through(p, door: str, keep: int = 65536) -> tuple[int, bytes]:
    """Stream one answer through a door, reading it as it comes; (bytes received, the last `keep` bytes)."""
    path, body = REQUESTS[door]
    size, tail = 0, bytearray()
    with requests.post(p.url + path, json=body, stream=True, timeout=240) as r:
        assert r.status_code == 200, r.text
        for piece in r.iter_content(65536):
            size += len(piece)
            tail += piece
            del tail[:-keep]
    return size, bytes(tail)


def last_event(tail: bytes) -> dict:
    return json.loads(tail.rsplit(b"data: ", 1)[1])


@pytest.fixture(scope="module", params=["no_journals", "journals"])
def env(request, tmp_path_factory):
    logs = tmp_path_factory.mktemp("journals") if request.param == "journals" else None
    settings = {"LOG_DIR": str(logs)} if logs else {}
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, MAX_SSE_EVENT_BYTES=str(MAX_EVENT), **settings) as p:
            quick_ok(p, timeout=10)
            for door in REQUESTS:  # what a first request loads once (the token counter's tables: ~40 MB)
                fake.add(text_stream(1))
                stream_through(p, door)
            yield fake, p, logs


@pytest.mark.parametrize("door", ["chat", "messages"])
def test_a_large_stream_goes_through_in_bounded_memory(env, door):
    fake, p, logs = env
    fake.add(text_stream())
    journaled = journal_lines(logs)
    growth, (size, tail) = peak_growth(p, lambda: stream_through(p, door))
    assert size > STREAM_EVENTS * len(PIECE)  # every piece reached the client
    assert (b"message_stop" if door == "messages" else b"[DONE]") in tail
    assert growth < BOUND, f"{door}: the worker's peak grew by {growth / MB:.0f} MB"
    if logs is not None:
        check_journaled(logs, journaled)


def test_responses_stream_is_bounded_and_ends_incomplete_past_max_sse_event_bytes(env):
    """response.completed must repeat the whole output, so the door keeps at most MAX_SSE_EVENT_BYTES of it:
    past that the stream ends there as `incomplete` (max_output_tokens), its closing events repeating exactly
    the text sent."""
    fake, p, logs = env
    fake.add(text_stream())
    growth, (size, tail) = peak_growth(p, lambda: stream_through(p, "responses", keep=MAX_EVENT + MB))
    assert growth < BOUND, f"responses: the worker's peak grew by {growth / MB:.0f} MB"
    assert MAX_EVENT < size < 6 * MAX_EVENT  # deltas, then the text repeated by the closing events
    last = last_event(tail)
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    text = last["response"]["output"][0]["content"][0]["text"]
    assert MAX_EVENT - len(PIECE) < len(text) <= MAX_EVENT and set(text) == {"a"}


def test_a_small_responses_stream_completes(env):
    fake, p, _ = env
    fake.add(text_stream(8))
    size, tail = stream_through(p, "responses", keep=MB)
    last = last_event(tail)
    assert last["type"] == "response.completed"
    assert last["response"]["output"][0]["content"][0]["text"] == PIECE * 8


def test_tool_call_arguments_past_max_sse_event_bytes_end_a_responses_stream(env):
    """A Responses tool call's arguments are repeated whole by its .done events: kept up to
    MAX_SSE_EVENT_BYTES, past which the stream ends with an error naming the setting."""
    fake, p, _ = env
    fake.add(tool_stream(STREAM_EVENTS))
    growth, (size, tail) = peak_growth(p, lambda: stream_through(p, "responses", keep=MB))
    assert growth < BOUND, f"responses: the worker's peak grew by {growth / MB:.0f} MB"
    assert size < 2 * MAX_EVENT
    assert last_event(tail)["type"] == "response.failed" and b"MAX_SSE_EVENT_BYTES" in tail


def test_tool_call_arguments_of_any_size_pass_the_messages_door(env):
    """No Messages event repeats a tool call's arguments: they only pass through."""
    fake, p, _ = env
    fake.add(tool_stream(STREAM_EVENTS))
    growth, (size, tail) = peak_growth(p, lambda: stream_through(p, "messages"))
    assert growth < BOUND, f"messages: the worker's peak grew by {growth / MB:.0f} MB"
    assert size > STREAM_EVENTS * len(PIECE) and b'"stop_reason":"tool_use"' in tail


def call_flood(count: int, label: int = 60_000) -> Stream:
    """`count` events each opening another tool call, with an id and a name of `label` characters."""
    events = [event({"tool_calls": [{"index": i, "id": f"{i:08d}" + "i" * label, "type": "function",
                                     "function": {"name": f"{i:08d}" + "n" * label, "arguments": "{}"}}]})
              for i in range(count)]
    return Stream([event({"role": "assistant", "content": ""})] + events + [event({}, "tool_calls"),
                                                                            b"data: [DONE]\n\n"])


@pytest.mark.parametrize("door", ["responses", "messages", "google"])
def test_an_upstream_opening_call_after_call_cannot_grow_a_door(env, door):
    """Each call a door keeps costs a record, its id and its name, which no text budget counted: 2,000 calls with
    60 KB names grew a worker by 700-940 MB. Ids and names are bounded, and so is the number of calls."""
    fake, p, _ = env
    fake.add(call_flood(1200))
    growth, (size, tail) = peak_growth(p, lambda: stream_through(p, door, keep=MB))
    assert growth < BOUND, f"{door}: the worker's peak grew by {growth / MB:.0f} MB"
    assert b"longer than 1024 characters" in tail
    fake.add(call_flood(5000, label=8))
    growth, (size, tail) = peak_growth(p, lambda: stream_through(p, door, keep=MB))
    assert growth < BOUND and b"more than 4096 output items or tool calls" in tail


JOURNALS = ("client_interaction.jsonl", "server_interaction.jsonl")


def journal_lines(logs: Path | None) -> dict[str, int]:
    """How many records each journal holds."""
    return {name: len((logs / name).read_bytes().splitlines()) if (logs / name).exists() else 0
            for name in JOURNALS} if logs else {}


def check_journaled(logs: Path, before: dict[str, int]) -> None:
    """Both journals keep a bounded prefix of the answer, its length and sha256, never the whole stream."""
    for name in JOURNALS:
        new = poll(lambda: (logs / name).read_bytes().splitlines()[before[name]:], timeout=30)
        assert new, f"{name} has no record of the stream"
        output = json.loads(new[-1])["output"]
        assert output["truncated"] is True and output["bytes"] > STREAM_EVENTS * len(PIECE), name
        assert len(output["sha256"]) == 64 and len(output["prefix"].encode()) <= MB, name
        assert max(len(line) for line in (logs / name).read_bytes().splitlines()) < 2 * MB, name
