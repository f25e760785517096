"""Bounds on what the proxy reads or keeps (issue 12, item 6), in-process: whole bodies at max_bytes, SSE events
at their maximum size and stall deadline (every stream decoder), caches keyed by client input."""

from __future__ import annotations

import time

import pytest

from argoproxy.fronts.serve import FrontAnswers
from argoproxy.pipeline import gateway, planning
from argoproxy.upstream import sse, client as upstream, wire
from argoproxy.errors import ProxyError
from argoproxy.fastpath import pool


class Raw:
    """The slice of a urllib3 response read_chunks uses: an unchunked identity body served in pieces."""

    def __init__(self, pieces: list[bytes], headers: dict[str, str] | None = None) -> None:
        self.pieces = list(pieces)
        self.headers = headers or {}
        self.chunked = False
        self.closed = False
        self.status, self.reason = 200, "OK"
        self.connection = None  # the connection the answer came on (none here)
        self._fp = self
        self._connection = None  # urllib3's connection under the response (none here: no socket to time)

    def read1(self, size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    @property
    def length(self) -> int | None:
        return None

    def read(self) -> bytes:
        return b""

    def close(self) -> None:
        self.closed = True


def response(pieces: list[bytes], limit: int, headers: dict[str, str] | None = None) -> wire.UpstreamResponse:
    return pool.PooledResponse(Raw(pieces, headers), "http://up.example/v1/x", limit)


def test_content_stops_at_max_bytes_with_a_502_naming_the_setting():
    resp = response([b"a" * 600] * 10, limit=1000)
    with pytest.raises(ProxyError) as caught:
        resp.content
    assert caught.value.status == 502 and "MAX_RESPONSE_BYTES" in caught.value.message and resp.raw.closed
    assert response([b"a" * 500, b"b" * 500], limit=1000).content == b"a" * 500 + b"b" * 500


def test_declared_length_over_the_limit_is_refused_before_reading():
    resp = response([b"x"], limit=10, headers={"Content-Length": "11"})
    with pytest.raises(ProxyError):
        resp.content
    assert resp.raw.pieces == [b"x"]  # nothing was read


def test_streams_relayed_as_they_arrive_are_not_bounded_but_aggregated_ones_are():
    resp = response([b"a" * 600] * 3, limit=1000)
    assert sum(map(len, wire.read_chunks(resp))) == 1800
    resp = response([b"a" * 600] * 3, limit=1000)
    resp.bounded = True
    with pytest.raises(ProxyError):
        list(wire.read_chunks(resp))


def test_sse_event_over_the_maximum_is_an_error():
    splitter = sse.EventSplitter(max_event=100)
    assert splitter.feed(b"data: 1\n\n") == [b"data: 1\n\n"]
    splitter.feed(b"data: " + b"x" * 60)
    with pytest.raises(ProxyError) as caught:
        splitter.feed(b"x" * 60)
    assert "MAX_SSE_EVENT_BYTES" in caught.value.message


@pytest.mark.parametrize("chunk", [
    b"data: " + b"x" * 200 + b"\n\n",  # one whole event in one chunk
    b"data: 1\n\ndata: " + b"x" * 200 + b"\n\ndata: 2\n\n",  # beside others
    b"data: 1\r\n\r\ndata: " + b"x" * 200 + b"\r\n\r\n",  # CRLF framing
])
def test_a_whole_event_over_the_maximum_in_one_chunk_is_an_error_too(chunk):
    """A chunk's size is the upstream's: an event that came whole in one is held to the limit as one that
    never ends is."""
    with pytest.raises(ProxyError) as caught:
        sse.EventSplitter(max_event=100).feed(chunk)
    assert caught.value.code == "upstream_event_too_large"
    small = sse.EventSplitter(max_event=100)
    assert small.feed(b"data: 1\n\n" * 40) == [b"data: 1\n\n"] * 40  # a long chunk of short events passes


def test_the_events_ahead_of_one_too_large_in_its_chunk_still_go_out():
    got = []
    with pytest.raises(ProxyError) as caught:
        for event in sse.split_events([b"data: 1\n\ndata: 2\n\ndata: " + b"x" * 200 + b"\n\ndata: 3\n\n"], 10, 100):
            got.append(event)
    assert got == [b"data: 1\n\n", b"data: 2\n\n"] and caught.value.code == "upstream_event_too_large"


@pytest.mark.parametrize("lead", [b"", b"\n", b"\n\n\n"])
def test_an_event_of_exactly_the_limit_passes_however_the_blank_lines_fall(lead):
    event = b"data: " + b"x" * 94  # 100 bytes
    for chunks in ([lead + event + b"\n\n"], [lead + event, b"\n\n"], [b"data: 0\n\n" + lead + event + b"\n\n"]):
        assert list(sse.split_events(chunks, 10, 100))[-1] == event + b"\n\n", chunks


def test_split_events_stall_deadline_counts_only_time_without_a_whole_event():
    def drip():
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"
        for _ in range(25):
            time.sleep(0.2)
            yield b"x"  # bytes, but never a whole event, for 5 s

    events = sse.split_events(drip(), stall_seconds=1.0)
    assert next(events) == b"data: 1\n\n"
    time.sleep(1.5)  # the consumer is slow: not the upstream's fault
    assert next(events) == b"data: 2\n\n"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        list(events)
    assert time.monotonic() - started < 3.5  # cut at the deadline (1 s), not at the end of the drip (5 s)


@pytest.mark.parametrize("backend", ["dashscope", "openai"])
def test_every_sse_decoder_has_the_event_cap(backend):
    from argoproxy.providers import create_backend
    from argoproxy.pipeline.call import Call, Planned
    from argoproxy.config.settings import load_settings

    settings = load_settings(environ={"BACKEND": backend, "MAX_SSE_EVENT_BYTES": "1000", "TIMEOUT": "5"})
    be = create_backend(settings, upstream.Upstream(1, 5, 0))
    call = Call.of("chat", "POST", "v1/chat/completions", request_id="t")
    call.plan.model = "m"
    call.planned = Planned({"model": "m", "messages": []}, client_stream=True)
    resp = response([b"data: {" + b"x" * 600] * 3, limit=10 ** 9)
    with pytest.raises(ProxyError) as caught:
        list(be.decode_stream(call, resp))
    assert "MAX_SSE_EVENT_BYTES" in caught.value.message


def test_think_cache_is_bounded():
    from argoproxy.config.settings import load_settings
    from argoproxy.providers import create_backend

    settings = load_settings(environ={"THINK_MODE": "strip"})
    up = upstream.Upstream(1, 5, 0)
    gw = gateway.Gateway(settings, create_backend(settings, up), up, FrontAnswers)
    for i in range(planning.THINK_CACHE * 4):
        assert gw.planner.think_config(f"model-{i}", f"model-{i}") is not None
    assert len(gw.planner._think_cache) <= planning.THINK_CACHE


def test_timeout_cache_is_bounded():
    up = pool.DirectPools(upstream.make_session(1))  # the fast path's timeout objects (the stock path makes none)
    for i in range(pool.TIMEOUT_CACHE * 4):
        assert up.timeout_object((1.0, float(i + 1))).read_timeout == float(i + 1)
    assert len(up._timeouts) <= pool.TIMEOUT_CACHE
