"""The upstream transport's contract, for the stock transport (FAST_PATH=off) and the fast path's (on), each
through the real client's policy against a loopback server that sends scripted bytes: a request goes out as it
was given; an answer's body is read to the end its framing says (Content-Length, chunked to its last chunk,
or the connection's close) and a body cut short is an error, never a shorter answer; the response head is
parsed as http.client parses it; the read deadline bounds the wait for the head and each wait mid-body; a
connection whose answer was read goes back to the pool and is used again, one left mid-body is not, and a
request marked for a connection of its own gets one; a kept-alive connection closed unanswered is met by a
replay only for a request that may be sent twice (the policy reading the transport's failure)."""

from __future__ import annotations

import gzip
import socket

import pytest

from argoproxy.errors import ProxyError
from argoproxy.upstream.client import READ_ERRORS, Upstream, stream_error
from argoproxy.upstream.wire import UpstreamRequest, read_chunks
from tests.contracts.wire_upstream import CLOSE, STALL, WireUpstream, chunked, head

STALLED_READ = 0.3  # the read deadline of the tests that stall (the server holds its answer for seconds)


def body(client: Upstream, req: UpstreamRequest) -> bytes:
    with client.send(req) as resp:
        return b"".join(read_chunks(resp))


def get(wire: WireUpstream, **fields) -> UpstreamRequest:
    return UpstreamRequest("GET", wire.url(), {}, **fields)


# ---- framing: the request as it goes


def test_a_request_goes_out_as_it_was_given(client, wire):
    req = UpstreamRequest("POST", wire.url("/v1/chat/completions?q=1"),
                          {"Content-Type": "application/json", "X-Trace": "a b"}, b'{"a": 1}')
    assert body(client, req) == b"ok"
    [got] = wire.received
    assert got.request_line == b"POST /v1/chat/completions?q=1 HTTP/1.1"
    assert got.body == b'{"a": 1}' and got.header("content-length") == [b"8"]
    assert got.header("x-trace") == [b"a b"] and got.header("content-type") == [b"application/json"]
    assert got.header("host") == [f"127.0.0.1:{wire.port}".encode()]
    assert not got.header("cookie") and not got.header("authorization")  # nothing the Session would add


# ---- framing: the answer's body


def test_a_body_of_known_length_is_read_to_its_end(client, wire):
    wire.add(head(Content_Length="11"), b"hello", b" world")
    assert body(client, get(wire)) == b"hello world"


def test_a_chunked_body_is_read_to_its_last_chunk(client, wire):
    data = chunked(b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n")
    wire.add(head(Transfer_Encoding="chunked"), data[:7], data[7:30], data[30:])
    assert body(client, get(wire)) == b"data: one\n\ndata: two\n\ndata: [DONE]\n\n"


def test_a_chunked_body_with_trailers_is_read_whole(client, wire):
    wire.add(head(Transfer_Encoding="chunked") + chunked(b"abc", b"def", last=b"0\r\nX-Sum: 1\r\n\r\n"))
    assert body(client, get(wire)) == b"abcdef"
    assert body(client, get(wire)) == b"ok"  # and the connection is read to its end: the next answer is whole


def test_a_body_that_ends_with_the_connection_is_read_to_the_close(client, wire):
    wire.add(head(), b"until ", b"the close", CLOSE)
    assert body(client, get(wire)) == b"until the close"


def test_a_gzip_body_is_decoded_or_relayed_as_it_came(client, wire):
    packed = gzip.compress(b"x" * 5000)
    for _ in range(2):
        wire.add(head(Content_Encoding="gzip", Content_Length=str(len(packed))), packed)
    assert body(client, get(wire)) == b"x" * 5000
    with client.send(get(wire)) as resp:
        assert b"".join(read_chunks(resp, decode=False)) == packed


@pytest.mark.parametrize("answer", [
    [head(Content_Length="10"), b"short", CLOSE],
    [head(Transfer_Encoding="chunked"), chunked(b"begun", last=b""), CLOSE],
    [head(Transfer_Encoding="chunked"), b"5\r\nab", CLOSE],
], ids=["shorter than its length", "chunked without its last chunk", "chunked cut mid-chunk"])
def test_a_body_cut_short_is_an_error_not_a_shorter_answer(client, wire, answer):
    wire.add(*answer)
    with pytest.raises(READ_ERRORS):
        body(client, get(wire))


# ---- the response head, as http.client parses it


def test_the_answers_head_is_parsed_as_http_client_parses_it(client, wire):
    wire.add(b"HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\nX-Empty:\r\nset-cookie: b=2\r\nX-Latin: caf\xe9\r\n"
             b"X-Spaced:   v  \r\nContent-Length: 0\r\n\r\n")
    with client.send(get(wire)) as resp:
        assert resp.status_code == 201 and resp.reason == "Created"
        assert resp.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
        assert resp.headers["X-Empty"] == "" and resp.headers["X-Latin"] == "caf\xe9"
        assert resp.headers["X-Spaced"].strip() == "v"


def test_a_head_with_a_folded_line_is_parsed_as_http_client_parses_it(client, wire):
    wire.add(b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\nX-After: 1\r\nContent-Length: 0\r\n\r\n")
    with client.send(get(wire)) as resp:
        assert resp.headers["X-Folded"].split() == ["one", "two"] and resp.headers["X-After"] == "1"


# ---- deadlines


def test_an_answer_that_never_comes_is_a_timeout(client, wire):
    wire.add(STALL)
    with pytest.raises(ProxyError) as err:
        client.send(get(wire, timeout=STALLED_READ))
    assert err.value.status == 504 and err.value.code == "upstream_timeout"
    assert len(wire.received) == 1  # a request that may have reached the model is not asked again


@pytest.mark.parametrize("answer", [
    [head(Content_Length="100"), b"begun"],
    [head(Transfer_Encoding="chunked"), chunked(b"begun", last=b"")],
], ids=["known length", "chunked"])
def test_a_body_that_stalls_is_a_timeout_mid_body(client, wire, answer):
    wire.add(*answer, STALL)
    with client.send(get(wire, timeout=STALLED_READ)) as resp:
        with pytest.raises(READ_ERRORS) as err:
            b"".join(read_chunks(resp))
    assert stream_error(err.value, resp.url, STALLED_READ).code == "upstream_timeout"


def test_a_refused_connection_is_said_so(client):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ProxyError) as err:
        client.send(UpstreamRequest("GET", f"http://127.0.0.1:{port}/v1/models", {}))
    assert err.value.status == 502 and err.value.code == "upstream_connection_refused"


# ---- connection reuse


def test_a_connection_whose_answer_was_read_is_used_again(client, wire):
    wire.add(head(Content_Length="3"), b"one")
    wire.add(head(Transfer_Encoding="chunked"), chunked(b"two"))
    wire.add(head(Content_Length="5"), b"three")
    assert [body(client, get(wire)) for _ in range(3)] == [b"one", b"two", b"three"]
    assert [r.connection for r in wire.received] == [1, 1, 1]


def test_a_connection_left_mid_body_is_not_used_again(client, wire):
    wire.add(head(Content_Length="100"), b"begun", STALL)
    with client.send(get(wire)) as resp:
        next(iter(read_chunks(resp)))  # the client reads a little, then leaves
    assert body(client, get(wire)) == b"ok"
    assert [r.connection for r in wire.received] == [1, 2]


def test_a_request_marked_fresh_gets_a_connection_of_its_own(client, wire):
    assert body(client, get(wire)) == b"ok"
    assert body(client, get(wire, fresh_connection=True)) == b"ok"
    assert body(client, get(wire)) == b"ok"
    assert [r.connection for r in wire.received] == [1, 2, 1]  # the pooled one kept for the others


# ---- a kept-alive connection closed unanswered: the policy reading the transport's failure


@pytest.mark.parametrize("method, headers, again", [
    ("GET", {}, True),
    ("POST", {"Idempotency-Key": "k1"}, True),
    ("POST", {}, False),
], ids=["a GET", "a keyed POST", "a POST"])
def test_a_request_met_by_a_closed_connection_is_sent_again_only_when_it_may_be(client, wire, method, headers,
                                                                                 again):
    assert body(client, get(wire)) == b"ok"  # connection 1, pooled
    wire.add(CLOSE)  # the server closes it as the next request arrives, without answering
    req = UpstreamRequest(method, wire.url(), headers, b"{}" if method == "POST" else None)
    if again:
        assert body(client, req) == b"ok"
        assert [r.connection for r in wire.received] == [1, 1, 2]  # sent again, on a connection of its own
    else:
        with pytest.raises(ProxyError) as err:
            client.send(req)
        assert err.value.status == 502 and err.value.code == "upstream_disconnected"
        assert len(wire.received) == 2  # the request may have been processed: sent once
