"""The Responses stream's wired path (ResponseStream._wired: a chunk's text alone goes to its delta event's bytes
in one step) writes exactly the bytes the general path writes: each chunk through StreamState.chunk and text(),
or every event a dict encoded by encode_event, on the same upstream events."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import COMPACT, StreamState
from argoproxy.fronts.responses import ResponsesFront
from argoproxy.fronts.responses.stream import ResponseStream
from argoproxy.fronts.serve import FrontAnswers

FRONT = ResponsesFront()
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def event(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, Any] | None = None,
          null_usage: bool = False) -> bytes:
    """An upstream SSE event, as an OpenAI-style server writes it (`"usage": null` on each chunk, as OpenAI does
    when asked for usage, with null_usage)."""
    obj: dict[str, Any] = {**BASE, "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    if null_usage:
        obj["usage"] = None
    if usage is not None:
        obj = {**BASE, "choices": [], "usage": usage}
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def texts(*parts: str) -> list[bytes]:
    return [event({"content": p}) for p in parts]


TEXT = ["Hello", ", ", 'quo"te\\', "line\nbreak\t", "é ✓ 𝄞 \u2028", "</script>", "\x01"]
STREAMS = {
    "plain text": [event({"role": "assistant", "content": ""}), *texts(*TEXT), event(finish="stop"),
                   event(usage=USAGE)],
    "usage null on each chunk": [event({"content": t}, null_usage=True) for t in TEXT]
                                + [event(finish="stop"), event(usage=USAGE)],
    "escaped and empty deltas": [event({"content": "a"}), event({"content": ""}), event({"content": "\\u00e9"}),
                                 b'data: {"choices":[{"index":0,"delta":{"content":"\\u00e9\\n\\ud83d\\ude00"}}]}\n\n',
                                 event({}), event({"content": "b"}), event(finish="length")],
    "more pieces than a join holds": texts(*(f"t{i} " for i in range(2 * COMPACT + 3))) + [event(finish="stop")],
    "large pieces among small ones": texts("a", "b" * 5000, "c", "d", "é" * 9000, "e") + [event(finish="stop")],
    "reasoning then text": [event({"reasoning_content": "let me think"}), event({"reasoning_content": " more"}),
                            *texts("The", " answer"), event({"reasoning_content": "again"}), *texts(" then"),
                            event(finish="stop"), event(usage=USAGE)],
    "think tags as text": [*texts("<think>", "hm", "</think>", "Done"), event(finish="stop")],
    "text then a tool call": [*texts("Let me ", "look."),
                              event({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                     "function": {"name": "look", "arguments": ""}}]}),
                              event({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
                              event({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                              *texts("after"), event(finish="tool_calls"), event(usage=USAGE)],
    "refusal between texts": [*texts("a"), event({"refusal": "no"}), *texts("b"), event(finish="stop")],
    "no usage (estimated)": texts("one", " two", " three") + [event(finish="stop")],
    "nothing": [event(finish="stop")],
}


def exchange(wire: bool, **request: Any) -> Any:
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True, **request})[1]
    ex.encoded_events, ex.created = wire, 1_800_000_000
    ex.state = {"id": "resp_" + "1" * 24, "store": True}
    return ex


@pytest.fixture(autouse=True)
def fixed_ids_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from argoproxy.fronts.responses import answer, response, stream, tools
    for module in (answer, stream, tools):
        monkeypatch.setattr(module, "output_item_id", lambda prefix, resp_id: prefix + "0" * 32)
    monkeypatch.setattr(response.time, "time", lambda: 1_800_000_000.0)


def read(items: list[bytes]) -> Iterator[Any]:
    """The upstream's events as the door's stream takes them (text alone as a str: plain_chunks.py)."""
    return FrontAnswers(None, 1.0).chunks(iter(items), None, checked=False, texts=True)  # type: ignore[arg-type]


def written(events: Iterator[Any]) -> bytes:
    return b"".join(e if isinstance(e, bytes) else FRONT.encode_event(e) for e in events)


def three_ways(chunks: Any, **request: Any) -> tuple[bytes, bytes, bytes, Any]:
    """The same chunks (made anew by `chunks()`) written wired, chunk by chunk with the bytes it writes itself, and
    as dicts encoded by encode_event; and the wired stream's exchange."""
    wired_ex = exchange(True, **request)
    wired = written(ResponseStream(wired_ex, None, True).run(chunks()))
    stepped = written(StreamState.run(ResponseStream(exchange(True, **request), None, True), chunks()))
    general = written(ResponseStream(exchange(False, **request), None, False).run(chunks()))
    return wired, stepped, general, wired_ex


@pytest.mark.parametrize("name", list(STREAMS))
def test_the_wired_stream_writes_the_general_paths_bytes(name: str) -> None:
    wired, stepped, general, ex = three_ways(lambda: read(STREAMS[name]))
    assert wired == stepped == general
    assert b"response.output_text.delta" in wired or name in ("nothing",)
    assert ex.output is not None and ex.output["status"] in ("completed", "incomplete")


def test_a_summarized_reasoning_stream_and_a_stored_one_too() -> None:
    items = STREAMS["reasoning then text"]
    wired, stepped, general, _ = three_ways(lambda: read(items), reasoning={"summary": "auto"})
    assert wired == stepped == general
    saved: list[Any] = []
    ex = exchange(True)
    written(ResponseStream(ex, lambda final, **kw: saved.append(final), True).run(read(items)))
    assert [item.get("content", [{}])[0].get("text") for item in saved[0]["output"]] == [
        "let me think more", "The answer", "again", " then"]


def test_the_wired_stream_counts_its_text_for_usage_as_the_general_path() -> None:
    items = STREAMS["no usage (estimated)"]
    exs = []
    for wire in (True, False):
        ex = exchange(wire)
        written(ResponseStream(ex, None, wire).run(read(items)))
        exs.append(ex)
    assert exs[0].usage == exs[1].usage and exs[0].usage_estimated


def test_a_stream_cut_at_what_is_kept_ends_alike() -> None:
    items = texts(*("0123456789" for _ in range(40))) + [event(finish="stop")]

    def cut(wire: bool, stepped: bool = False) -> tuple[bytes, Any]:
        ex = exchange(wire)
        ex.keep = 95
        stream = ResponseStream(ex, None, wire)
        return written(StreamState.run(stream, read(items)) if stepped else stream.run(read(items))), ex

    (wired, ex), (stepped, _), (general, _) = cut(True), cut(True, True), cut(False)
    assert wired == stepped == general and ex.cut and b'"status":"incomplete"' in wired
    assert ex.output["output"][0]["content"][0]["text"] == "0123456789" * 9


def test_a_stream_failing_midway_ends_alike() -> None:
    def failing() -> Iterator[Any]:
        yield from read(texts("before", " the", " break"))
        raise ProxyError(502, "The upstream broke off.", code="upstream_stream_incomplete")

    wired, stepped, general, ex = three_ways(failing)
    assert wired == stepped == general
    assert b"response.failed" in wired and ex.output["output"][0]["content"][0]["text"] == "before the break"


def test_a_text_msgspec_cannot_write_as_utf8_is_written_as_the_general_path_writes_it() -> None:
    def chunks() -> Iterator[Any]:
        yield from read(texts("a"))
        yield "lone \ud800 surrogate"  # no upstream event reads so (plain_chunks leaves it): a str from elsewhere
        yield from read([event(finish="stop")])

    wired, stepped, general, _ = three_ways(chunks)
    assert wired == stepped == general and b"\\ud800" in wired
