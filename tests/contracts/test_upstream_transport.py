"""The upstream transport's contract, for the stock transport (FAST_PATH=off) and the fast path's (on), each
through the real client's policy against a loopback server that sends scripted bytes: a request goes out as it
was given; an answer's body is read to the end its framing says (Content-Length, chunked to its last chunk,
or the connection's close) and a body cut short is an error, never a shorter answer; the response head is
parsed as http.client parses it; the read deadline bounds the wait for the head and each wait mid-body; a
connection whose answer was read goes back to the pool and is used again, one left mid-body is not, and a
request marked for a connection of its own gets one; a kept-alive connection closed unanswered is met by a
replay only for a request that may be sent twice (the policy reading the transport's failure); and every
failure, at the request or mid-body, is raised as the upstream failure family (argoproxy/upstream/failures.py)
with the library's own exception as its cause."""

from __future__ import annotations

import gzip
import socket
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest

from argoproxy.errors import ProxyError
from argoproxy.upstream import failures
from argoproxy.upstream.client import Upstream, stream_error
from argoproxy.upstream.relay import upstream_error
from argoproxy.upstream.stock import make_session
from argoproxy.upstream.transport import TransportFactory
from argoproxy.upstream.wire import UpstreamRequest, read_chunks
from tests.contracts.wire_upstream import CLOSE, RESET, STALL, WireUpstream, chunked, head

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
    with pytest.raises(failures.Disconnected) as err:
        body(client, get(wire))
    assert_the_librarys_cause(err.value)


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
        with pytest.raises(failures.ReadTimeout) as err:
            b"".join(read_chunks(resp))
    assert_the_librarys_cause(err.value)
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


# ---- failures: each one raised as the failure family, whichever library the transport uses


PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "NO_PROXY")
QUICK = (0.3, 0.3)  # connect and read deadlines of the failures that wait for one


def assert_the_librarys_cause(failure: BaseException) -> None:
    cause = failure.__cause__
    assert cause is not None and not isinstance(cause, failures.UpstreamFailure), repr(cause)


def attempt(transport: TransportFactory, url: str, timeout: tuple[float, float] = (5, 5)) -> failures.UpstreamFailure:
    """The failure one attempt raises, straight from the transport (no policy in between)."""
    with pytest.raises(failures.UpstreamFailure) as err:
        transport(make_session(4)).send(UpstreamRequest("GET", url, {}), timeout, 1000)
    assert_the_librarys_cause(err.value)
    return err.value


def free_port() -> int:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return closed.getsockname()[1]


@contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: a new connection's handshake is never answered (a connect timeout)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    waiting = []
    try:
        for _ in range(4):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(listener.getsockname())
            waiting.append(sock)
        yield listener.getsockname()[1]
    finally:
        for sock in waiting:
            sock.close()
        listener.close()


@contextmanager
def plain_speaker() -> Iterator[int]:
    """A port whose server answers a TLS handshake with plain HTTP bytes at once."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.recv(1024)
    threading.Thread(target=answer, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment with exactly the proxy variables a test sets."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_refused_port_is_connect_refused(transport):
    assert type(attempt(transport, f"http://127.0.0.1:{free_port()}/v1/x")) is failures.ConnectRefused


def test_a_handshake_never_answered_is_a_connect_timeout(transport):
    with full_backlog() as port:
        assert type(attempt(transport, f"http://127.0.0.1:{port}/v1/x", QUICK)) is failures.ConnectTimeout


def test_a_host_without_an_address_is_name_not_resolved(transport, monkeypatch):
    def no_address(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", no_address)
    assert type(attempt(transport, "http://upstream.invalid/v1/x")) is failures.NameNotResolved


@pytest.mark.parametrize("answer, kind", [
    ([STALL], failures.ReadTimeout),
    ([CLOSE], failures.ClosedUnanswered),
    ([b"HTTP/1.1 200 OK\r\nX-Begun: 1\r\n", RESET], failures.ClosedUnanswered),
    ([b"GARBAGE\r\n\r\n", CLOSE], failures.BadAnswer),
    ([b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n\r\n"], failures.BadAnswer),
], ids=["no answer", "closed unanswered", "reset mid-head", "garbage", "a header line too long"])
def test_an_answer_that_never_comes_whole_is_its_failure(transport, wire, answer, kind):
    wire.add(*answer)
    assert type(attempt(transport, wire.url(), QUICK)) is kind


def test_tls_spoken_to_a_plain_server_is_a_tls_failure(transport):
    with plain_speaker() as port:
        assert type(attempt(transport, f"https://127.0.0.1:{port}/v1/x")) is failures.TlsFailure


def test_a_refused_proxy_is_proxy_refused(transport, proxy_env):
    proxy_env.setenv("HTTPS_PROXY", f"http://user:pw@127.0.0.1:{free_port()}")
    assert type(attempt(transport, "https://api.example/v1/x")) is failures.ProxyRefused


@pytest.mark.parametrize("answer, kind, detail", [
    ("407 Proxy Authentication Required", failures.ProxyAuthRequired, ""),
    ("502 Bad Gateway", failures.ProxyTunnelFailed, "502 Bad Gateway"),
], ids=["407", "502"])
def test_a_proxy_refusing_the_tunnel_is_named(transport, wire, proxy_env, answer, kind, detail):
    proxy_env.setenv("HTTPS_PROXY", wire.url(""))
    wire.add(head(answer, Content_Length="0"))
    failure = attempt(transport, "https://api.example/v1/x")
    assert type(failure) is kind and failure.detail == detail
    assert wire.received[0].request_line.startswith(b"CONNECT api.example:443 HTTP/")


def test_a_plain_http_proxys_407_is_proxy_auth_required(transport, wire, proxy_env):
    proxy_env.setenv("HTTP_PROXY", wire.url(""))
    wire.add(head("407 Proxy Authentication Required", Content_Length="0"))
    with pytest.raises(failures.ProxyAuthRequired):
        transport(make_session(4)).send(UpstreamRequest("GET", "http://api.example/v1/x", {}), (5, 5), 1000)


def test_a_proxy_of_a_scheme_not_spoken_is_proxy_unsupported(transport, proxy_env):
    proxy_env.setenv("HTTPS_PROXY", "socks5://user:pw@127.0.0.1:1080")
    assert type(attempt(transport, "https://api.example/v1/x")) is failures.ProxyUnsupported


def test_a_stream_broken_mid_body_is_disconnected(client, wire):
    wire.add(head(Transfer_Encoding="chunked"), chunked(b"begun", last=b""), RESET)
    with client.send(get(wire)) as resp:
        with pytest.raises(failures.Disconnected) as err:
            b"".join(read_chunks(resp))
    assert type(err.value) is failures.Disconnected  # not ClosedUnanswered: the answer had begun
    assert_the_librarys_cause(err.value)


def test_an_error_whose_body_breaks_off_is_told_by_its_status(client, wire):
    wire.add(head("500 Internal Server Error", Content_Length="100"), b'{"error": ', CLOSE)
    with client.send(get(wire)) as resp:
        error = upstream_error(resp)  # the body's failure is the family's, which the reader of an error expects
    assert (error.status, error.code) == (500, "upstream_500")
