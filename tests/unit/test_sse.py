"""SSE splitting: events whole whatever the chunking, CRLF line endings, events without a final blank line."""

import pytest

from argoproxy.sse import EventSplitter, block_data

STREAM = b'data: {"a":1}\n\n: ping\n\ndata: {"b":2}\n\nevent: x\ndata: y\n\ndata: [DONE]\n\n'


@pytest.mark.parametrize("size", [1, 2, 5, 13, 1000])
def test_any_chunking_gives_the_same_events(size):
    splitter = EventSplitter()
    events = []
    for i in range(0, len(STREAM), size):
        events += splitter.feed(STREAM[i:i + size])
    events += splitter.finish()
    assert events == [b'data: {"a":1}\n\n', b": ping\n\n", b'data: {"b":2}\n\n', b"event: x\ndata: y\n\n",
                      b"data: [DONE]\n\n"]


def test_crlf_and_missing_final_blank_line():
    splitter = EventSplitter()
    events = splitter.feed(b'data: {"a":1}\r\n\r\ndata: {"b"') + splitter.feed(b":2}") + splitter.finish()
    assert events == [b'data: {"a":1}\n\n', b'data: {"b":2}\n\n']
    assert block_data(events[1]) == b'{"b":2}'


def test_one_event_per_chunk_passes_as_is():
    chunk = b'data: {"x":"<"}\n\n'
    assert EventSplitter().feed(chunk)[0] is chunk
