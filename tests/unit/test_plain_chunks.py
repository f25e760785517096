"""An upstream event read straight to its text (argoproxy/fronts/plain_chunks.py) only when the general reading
(answer_shape.event_chunk, then plain_text) finds that same text, and nothing serve.FrontAnswers.chunks looks at."""

from __future__ import annotations

import json

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts import plain_chunks
from argoproxy.pipeline import answer_shape

HEAD = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
EVENTS = [
    HEAD + '"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}',
    HEAD + '"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"logprobs":null}],"usage":null}',
    HEAD + '"choices":[{"delta":{"content":"é \\" \\n ✓"}}]}',
    HEAD + '"choices":[{"index":0,"delta":{"content":"a","content":"b"}}]}',  # the last of a repeated key
    HEAD + '"choices":[{"index":0,"delta":{"content":""}}]}',  # no text
    HEAD + '"choices":[{"index":0,"delta":{"role":"assistant"}}]}',
    HEAD + '"choices":[{"index":0,"delta":{"content":"hi","refusal":null}}]}',  # more than text
    HEAD + '"choices":[{"index":0,"delta":{"content":"hi","reasoning_content":null}}]}',
    HEAD + '"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}',
    HEAD + '"choices":[{"index":1,"delta":{"content":"hi"}}]}',
    HEAD + '"choices":[{"index":true,"delta":{"content":"hi"}}]}',
    HEAD + '"choices":[{"index":0.0,"delta":{"content":"hi"}}]}',
    HEAD + '"choices":[{"index":0,"delta":{"content":"hi"}},{"index":1,"delta":{"content":"x"}}]}',
    HEAD + '"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}',
    HEAD + '"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":{}}',
    HEAD + '"choices":[{"index":0,"delta":{"content":"hi"}}],"error":null}',
    HEAD + '"choices":[{"index":0,"delta":{"content":"hi"}}],"error":{"message":"no"}}',
    HEAD + '"choices":[{"index":0,"delta":{"content":"\\ud800"}}]}',  # a lone surrogate: json reads it
    HEAD + '"choices":[{"index":0,"delta":{"content":"hi"}}],"x":NaN}',
    HEAD + '"choices":[{"index":0,"delta":{"content":7}}]}',
    HEAD + '"x":' + "[" * 2000 + "]" * 2000 + ',"choices":[{"index":0,"delta":{"content":"hi"}}]}',
    '"ping"',
    "[DONE]",
    "{",
]


def general(item: bytes) -> str | None:
    chunk = answer_shape.event_chunk(item)
    if chunk is None or "error" in chunk:
        return None
    return answer_shape.plain_text(chunk)


@pytest.mark.parametrize("data", EVENTS)
@pytest.mark.parametrize("frame", ["data: {}\n\n", "data:{}\n\n", "data: {}\r\n\r\n", "event: x\ndata: {}\n\n",
                                   "data: {}\n: note\n\n"])
def test_an_event_is_read_straight_to_its_text_only_as_the_general_reading_would(data: str, frame: str) -> None:
    item = frame.replace("{}", data).encode()
    try:
        expected = general(item)
    except ProxyError:
        expected = None
    assert plain_chunks.plain_text(item) in (expected, None)  # never another text than the general reading's
    if frame == "data: {}\n\n" and expected is not None and "\\ud800" not in data and "NaN" not in data:
        assert plain_chunks.plain_text(item) == expected  # the usual event is read so (JSON msgspec reads)


def test_bytes_that_are_not_utf8_are_left_to_the_general_reading() -> None:
    assert plain_chunks.plain_text(b'data: {"choices":[{"delta":{"content":"\xff"}}]}\n\n') is None
    assert plain_chunks.plain_text(b'data: {"model":"\xff","choices":[{"delta":{"content":"a"}}]}\n\n') is None


# Strings (and things that are not one string) put in the place of a learned event's text.
PUT = ['"other"', '"é \\" \\n ✓ \\u00e9 \\ud83d\\ude00"', '"\\ud800"', '"a","x":1', '"a","content":"b"', ' "a"',
       '"a" ', '"a"\n', '"a\nb"', '"a\rb"', '""', '"\\u0001"', "1", "null", '"a\\\\"', '"a\\"', '"a"},{"x":"b"',
       '"a"}],"usage":{"prompt_tokens":1}', '"a"}],"error":null,"x":"', '"</think>"', '"' + "x" * 300 + '"']


def variants(item: bytes, text: str) -> list[bytes]:
    """The event with each of PUT in the place of its text's last string (and with bytes that are not UTF-8)."""
    token = json.dumps(text, ensure_ascii=False).encode()
    at = item.rfind(token)
    if at < 0:
        token = json.dumps(text).encode()
        at = item.rfind(token)
    assert at >= 0
    puts = [p.encode() for p in PUT] + [b'"\xff"', b'"\xc3"']
    return [item[:at] + put + item[at + len(token):] for put in puts]


def read_with(reader: plain_chunks.PlainReader, item: bytes) -> str | None:
    try:
        return reader.read(item)
    except ProxyError:  # as the general reading would raise (bad JSON) the caller's way
        return None


@pytest.mark.parametrize("data", EVENTS + [HEAD.replace('"m"', '"hi"') + '"choices":[{"delta":{"content":"hi"}}]}',
                                           '{"choices":[{"index":0,"delta":{"content":"hi"}}],"model":"hi"}'])
@pytest.mark.parametrize("frame", ["data: {}\n\n", "data:{}\n\n", "data: {}\r\n\r\n", "data: {}\n: note\n\n"])
def test_a_streams_reader_reads_a_learned_events_like_only_as_the_general_reading_would(data: str,
                                                                                       frame: str) -> None:
    item = frame.replace("{}", data).encode()
    reader = plain_chunks.PlainReader()
    text = read_with(reader, item)
    assert text in (general_or_none(item), None)
    if text is None:
        return
    if frame == "data: {}\n\n" and "\\ud800" not in data:
        assert reader.head is not None  # learned: the usual event's text has a place of its own
    for variant in variants(item, text):
        assert read_with(reader, variant) in (general_or_none(variant), None), variant


def general_or_none(item: bytes) -> str | None:
    try:
        return general(item)
    except ProxyError:
        return None


def test_a_stream_of_usual_events_is_read_through_its_template() -> None:
    def event(text: str, role: bool = False) -> bytes:
        delta = {"role": "assistant", "content": text} if role else {"content": text}
        return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                       "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                                      separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"

    reader = plain_chunks.PlainReader()
    texts = ["Hi", " there", 'a "quote"', "é ✓", "line\nbreak", "\\", "\x01", "</think>"]
    assert [reader.read(event(t, role=i == 0)) for i, t in enumerate(texts)] == texts
    assert reader.head is not None and reader.learns == 0  # learned twice: with the role, then without
    reader.read(b'data: {"choices":[{"index":0,"delta":{"content":"x"}}],"obfuscation":"abc"}\n\n')
    assert reader.head is None  # a text event its template does not fit, no learning left: no template kept
    assert reader.read(event("back")) == "back"
