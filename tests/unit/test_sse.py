"""SSE splitting: events whole whatever the chunking, CRLF line endings, events without a final blank line."""

import pytest
from hypothesis import given, settings, strategies as st

from argoproxy.upstream.sse import EventSplitter, block_data, split_events

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


def test_a_big_event_in_small_reads_and_many_events_in_one_read_take_linear_time():
    # Both were quadratic: the unfinished event was copied and searched whole on every read (a 4 MB event in
    # 1 KB reads took over 30 s), and every event of a chunk searched the rest for a blank line kind the
    # upstream never used (20,000 `\r\n`-framed events in one read: 13 s).
    import time
    from argoproxy.upstream.sse import split_events
    started = time.perf_counter()
    (event,) = split_events(iter([b"data: "] + [b"x" * 1024] * 4096 + [b"\n\n"]), 30.0, 64 << 20)
    assert len(event) == 6 + 4096 * 1024 + 2
    events = list(split_events(iter([b"".join(b"data: %d\r\n\r\n" % i for i in range(50_000))]), 30.0))
    assert len(events) == 50_000 and events[-1] == b"data: 49999\n\n"
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("cut", range(1, 12))
def test_a_blank_line_cut_between_reads_still_ends_the_event(cut):
    from argoproxy.upstream.sse import split_events
    stream = b"data: 1\r\n\r\ndata: 22\r\n\r\n"
    assert list(split_events(iter([stream[:cut], stream[cut:]]), 30.0)) == [b"data: 1\n\n", b"data: 22\n\n"]


def test_events_read_one_byte_at_a_time():
    from argoproxy.upstream.sse import split_events
    stream = b"data: 1\r\n\r\ndata: 22\n\ndata: 3\r\r: c\n\n"
    events = list(split_events(iter([stream[i:i + 1] for i in range(len(stream))]), 30.0))
    assert events == [b"data: 1\n\n", b"data: 22\n\n", b"data: 3\n\n", b": c\n\n"]


@pytest.mark.parametrize("cut", range(0, 14))
def test_many_lf_framed_events_in_one_read_come_out_as_the_line_splitter_gives_them(cut):
    # Reads that hold several events take a shorter way when no \r is in them (the chunked reader gives
    # every chunk of one read at once); stray blank lines between events, and one begun in the read before,
    # come out exactly as the line splitter makes them.
    stream = b"data: 1\n\n\ndata: 22\n\n\n\n: c\nevent: e\ndata: 3\n\n\n\ndata: 4"
    splitter = EventSplitter()
    events = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:]) + splitter.finish()
    assert events == [b"data: 1\n\n", b"data: 22\n\n", b": c\nevent: e\ndata: 3\n\n", b"data: 4\n\n"]


def _object_the_long_way(item: bytes):
    from argoproxy.jsonfast import loads
    from argoproxy.upstream.sse import event_data
    data = event_data([line for line in item.split(b"\n") if line])
    try:
        obj = loads(data) if data is not None else None
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


@pytest.mark.parametrize("item", [b'data: {"a": 1}\n\n', b'data:{"a": 1}\n\n', b'data: {"a": 1}\r\n\n',
                                  b'data: {"a":\ndata: 1}\n\n', b'data: {"a": 1}\n', b'data: {"a": 1}\n\n\n',
                                  b'event: x\ndata: {"a": 1}\n\n', b'data: [DONE]\n\n', b'data: \n\n', b': c\n\n',
                                  b'data: {"a": "\\u000a"}\n\n', b'data: {"a": 1}\n\ndata: {"b": 2}\n\n',
                                  b'data:  {"a": 1}\n\n', b'data: 7\n\n', b'data: {"a": 1\n\n', b'data: \xff\n\n'])
def test_an_event_object_is_what_the_general_path_reads(item):
    from argoproxy.upstream.sse import sse_object
    assert sse_object(item) == _object_the_long_way(item)


@given(st.binary(max_size=40).map(lambda b: b"data: " + b + b"\n\n") | st.binary(max_size=40))
def test_any_event_object_is_what_the_general_path_reads(item):
    from argoproxy.upstream.sse import sse_object
    assert sse_object(item) == _object_the_long_way(item)


LINE_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def framed_streams(draw):
    """Events as their lines, and a stream of them with every line end drawn from CRLF, LF and CR (the SSE
    grammar's three) and each event ended by one more; a CR is never followed by an LF meant as a line end of
    its own (the two read as one CRLF)."""
    events = draw(st.lists(st.lists(st.sampled_from([b"data: 1", b"data: {\"a\":2}", b": c", b"event: x", b"id: 7"]),
                                    min_size=1, max_size=3), min_size=1, max_size=6))
    out, last = [], b""
    for lines in events:
        for line in lines + [b""]:
            end = draw(LINE_ENDS)
            if last == b"\r" and end == b"\n":
                end = b"\r\n"
            out.append(line + end)
            last = end
    return events, b"".join(out)


@settings(max_examples=500)
@given(framed=framed_streams(), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_events_end_at_every_blank_line_whatever_the_line_ends_and_the_reads(framed, cuts):
    events, stream = framed
    splitter, got, at = EventSplitter(), [], 0
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        got += splitter.feed(stream[at:cut]) if cut > at else []
        at = cut
    got += splitter.finish()
    assert [[line for line in event.split(b"\n") if line] for event in got] == events


@pytest.mark.parametrize("reads", [[b"\xef\xbb\xbfdata: 1\n\n"], [b"\xef", b"\xbb", b"\xbfdata: 1\n\n"], [b"", b"\xef\xbb\xbf", b"data: 1\n\n"]])
def test_a_stream_opening_with_a_byte_order_mark_loses_no_event(reads):
    assert list(split_events(iter(reads + [b"data: 2\n\n"]), 30.0)) == [b"data: 1\n\n", b"data: 2\n\n"]


def test_a_byte_order_mark_later_in_the_stream_is_left_as_it_is():
    assert list(split_events(iter([b"data: 1\n\n", b"\xef\xbb\xbfdata: 2\n\n"]), 30.0))[1].startswith(b"\xef")
