"""An upstream event read straight to its text (argoproxy/fronts/plain_chunks.py) only when the general reading
(answer_shape.event_chunk, then plain_text) finds that same text, and nothing serve.FrontAnswers.chunks looks at."""

from __future__ import annotations

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
