"""upstream/relay.py relay_sse: an OpenAI stream's events as they come, whatever lines an event carries."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.upstream.relay import relay_sse
from argoproxy.upstream.wire import UpstreamResponse

DONE_CHUNK = b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'


class Scripted(UpstreamResponse):
    """An upstream stream given as its bytes; records whether the relay drained its end."""

    def __init__(self, body: bytes) -> None:
        super().__init__("http://upstream.test/v1/chat/completions")
        self.body = body
        self.drained = False

    def chunks(self, decode: bool = True):
        yield from (self.body[i:i + 7] for i in range(0, len(self.body), 7))  # events split across reads

    def drain(self, seconds: float) -> None:
        self.drained = True

    def close(self) -> None:
        pass


def relayed(body: bytes) -> tuple[list[bytes], Scripted]:
    resp = Scripted(body)
    return list(relay_sse(resp, read_timeout=5)), resp


def test_events_with_event_and_id_lines_are_data_and_their_done_ends_the_stream():
    body = (b'event: chunk\nid: 1\ndata: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
            b"event: chunk\ndata: " + DONE_CHUNK + b"\n\nevent: done\ndata: [DONE]\n\n")
    events, resp = relayed(body)
    assert len(events) == 2 and events[1].rstrip(b"\n").endswith(DONE_CHUNK)
    assert resp.drained


def test_a_finished_stream_with_event_lines_and_no_done_is_complete():
    events, _ = relayed(b"event: chunk\ndata: " + DONE_CHUNK + b"\n\n")
    assert len(events) == 1


def test_an_unfinished_stream_with_event_lines_is_incomplete():
    with pytest.raises(ProxyError) as caught:
        relayed(b'event: chunk\ndata: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n')
    assert caught.value.code == "upstream_stream_incomplete"


def test_comments_before_the_first_data_are_dropped_and_after_it_relayed():
    events, resp = relayed(b": ping\n\ndata: {\"choices\":[]}\n\n: ping\n\ndata: " + DONE_CHUNK + b"\n\ndata: [DONE]\n\n")
    assert [e.rstrip(b"\n") for e in events] == [b'data: {"choices":[]}', b": ping", b"data: " + DONE_CHUNK]
    assert resp.drained


@pytest.mark.parametrize("end", [b"data: [DONE]", b"data:  [DONE]", b"data:[DONE]\ndata: more", b"id: 9\ndata: [DONE]",
                                 b"id: 9\ndata:  [DONE]", b"id: 9\ndata: [DONE]\ndata: more", b"event: end\ndata:[DONE]x",
                                 b"data: [DONE]x"])
def test_the_end_marker_ends_the_stream_whichever_line_comes_first(end):
    """One rule for [DONE] (the data starts with it, blanks before it allowed), whether the event's data line
    comes first or after `id:`/`event:` lines: it ended the stream one way and was relayed as data the other,
    ending a finished stream in a false upstream_stream_incomplete."""
    events, resp = relayed(b"data: " + DONE_CHUNK + b"\n\n" + end + b"\n\n")
    assert [e.rstrip(b"\n") for e in events] == [b"data: " + DONE_CHUNK]
    assert resp.drained
