"""The upstream connections (argoproxy.fastpath) against a real socket server on loopback: a request's head
and body leave in one send, pooled connections the server closed are noticed, large bodies arrive whole, and
the fast header parser gives exactly what http.client's own parser gives."""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argoproxy.fastpath.headers import parse_headers
from argoproxy.fastpath.transport import FastTransport  # FAST_PATH=on's (serve/build.py hands it)
from argoproxy.errors import ProxyError
from argoproxy.upstream.client import Upstream
from argoproxy.upstream.wire import UpstreamRequest, read_chunks

ORIGINAL_PARSE_HEADERS = http.client.parse_headers


class RawServer:
    """Answers each request with a small JSON body; records the bytes of each request's first recv()."""

    def __init__(self, close_after_each: bool = False, wrap=None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.first_reads: list[bytes] = []
        self.requests: list[bytes] = []
        self.connections = 0
        self.close_after_each = close_after_each
        self.wrap = wrap  # e.g. an SSLContext's server-side wrap_socket
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.wrap is not None:
                conn = self.wrap(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                first = True
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(1 << 20)
                    if not data:
                        return
                    if first:
                        self.first_reads.append(data)
                        first = False
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buf) < length:
                    buf += conn.recv(1 << 20)
                self.requests.append(head + b"\r\n\r\n" + buf[:length])
                buf = buf[length:]
                body = b'{"ok": true}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Folded: a\r\n b\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                if self.close_after_each:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server():
    s = RawServer()
    yield s
    s.close()


def post(upstream: Upstream, port: int, body: bytes) -> tuple[int, bytes, dict]:
    with upstream.send(UpstreamRequest("POST", f"http://127.0.0.1:{port}/v1/chat/completions",
                                       {"Content-Type": "application/json"}, body)) as resp:
        return resp.status_code, resp.content, dict(resp.headers)


def test_small_request_leaves_in_one_send_and_the_connection_is_reused(server) -> None:
    upstream = Upstream(connect_timeout=5, read_timeout=5, max_retries=0, transport=FastTransport)
    body = b'{"model": "m", "messages": []}'
    for _ in range(3):
        status, content, headers = post(upstream, server.port, body)
        assert status == 200 and content == b'{"ok": true}'
        assert headers["X-Folded"] == "a b"  # a folded header goes through the email parser (urllib3 unfolds it)
    assert server.connections == 1
    assert len(server.first_reads) == 3
    for first in server.first_reads:  # head and body in the first read: one send
        assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n") and first.endswith(body)


def test_a_body_read_as_it_arrives_leaves_the_connection_reusable(server) -> None:
    """read_chunks (the path of every proxied answer) must end the response so the connection is pooled:
    a connection closed after each answer costs a connect and a DNS lookup per request."""
    upstream = Upstream(connect_timeout=5, read_timeout=5, max_retries=0, transport=FastTransport)
    for _ in range(3):
        with upstream.send(UpstreamRequest("POST", f"http://127.0.0.1:{server.port}/v1/chat/completions",
                                           {"Content-Type": "application/json"}, b"{}")) as resp:
            assert b"".join(read_chunks(resp)) == b'{"ok": true}'
    assert server.connections == 1


def test_large_body_arrives_whole(server) -> None:
    upstream = Upstream(connect_timeout=5, read_timeout=5, max_retries=0, transport=FastTransport)
    body = b'{"x": "' + b"a" * (3 << 20) + b'"}'
    assert post(upstream, server.port, body)[0] == 200
    assert server.requests[-1].endswith(body)


def test_a_pooled_connection_the_server_closed_is_replaced() -> None:
    server = RawServer(close_after_each=True)
    try:
        upstream = Upstream(connect_timeout=5, read_timeout=5, max_retries=0, transport=FastTransport)
        for _ in range(3):
            assert post(upstream, server.port, b"{}")[0] == 200
            time.sleep(0.05)  # the server's FIN arrives while the connection sits in the pool
        assert server.connections == 3
    finally:
        server.close()


HEADS = [b"Content-Type: application/json\r\nContent-Length: 12\r\n\r\n",
         b"Content-Type:application/json\r\nX-A:  b c \r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
         b"X-Folded: a\r\n b\r\nY: z\r\n\r\n", b"\r\n", b"Bad line\r\nX: y\r\n\r\n", b"X: y\n\n", b"X:\r\n\r\n",
         b"X: \xe9\xff\r\n\r\n", b"From nobody\r\nX: y\r\n\r\n", b"X: a\rb\r\n\r\n", b":x\r\n\r\n",
         b"X: a\r\r\n\r\n", b"X: a\t\r\n\r\n", b"X\t: a\r\n\r\n", b"", b"X: y\r\n", b"X: y"]


def same_message(head: bytes) -> None:
    ours, theirs = parse_headers(io.BytesIO(head)), ORIGINAL_PARSE_HEADERS(io.BytesIO(head))
    assert type(ours) is type(theirs)
    assert ours.items() == theirs.items()
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]
    assert ours.get_payload() == theirs.get_payload()
    assert ours.get_content_type() == theirs.get_content_type()


@pytest.mark.parametrize("head", HEADS)
def test_header_parser_matches_http_client(head: bytes) -> None:
    same_message(head)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")) |
                st.sampled_from([b"Content-Type: text/plain", b"X-Y:z", b" folded", b"\tfolded", b"From x"]),
                max_size=6))
def test_header_parser_matches_http_client_on_any_head(lines: list[bytes]) -> None:
    same_message(b"".join(line + b"\r\n" for line in lines) + b"\r\n")


def test_tls_upstream_one_send_and_reuse(tmp_path) -> None:
    """The same connection class over TLS (every hosted upstream is HTTPS): request head and body in one
    TLS record, pooled connection reused, liveness check on an SSL socket."""
    import shutil
    import ssl
    import subprocess

    import urllib3

    from argoproxy.fastpath.connections import LeanHTTPSConnection

    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = RawServer(wrap=lambda conn: ctx.wrap_socket(conn, server_side=True))
    try:
        pool = urllib3.HTTPSConnectionPool("127.0.0.1", server.port, cert_reqs="CERT_REQUIRED", ca_certs=str(cert))
        pool.ConnectionCls = LeanHTTPSConnection
        body = b'{"model": "m"}'
        for _ in range(3):
            r = pool.urlopen("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"},
                             retries=False)
            assert r.status == 200 and r.data == b'{"ok": true}'
        assert server.connections == 1
        assert all(first.endswith(body) for first in server.first_reads)
    finally:
        server.close()


def test_an_ip_address_is_connected_without_a_resolver_call(server, monkeypatch) -> None:
    """Under gevent every getaddrinfo goes through a thread pool; an address literal needs none."""
    resolved: list[str] = []
    real = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        resolved.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    upstream = Upstream(connect_timeout=5, read_timeout=5, max_retries=0, transport=FastTransport)
    assert post(upstream, server.port, b"{}")[0] == 200
    assert resolved == []
    with upstream.send(UpstreamRequest("GET", f"http://localhost:{server.port}/v1/models", {}, b"")) as resp:
        assert resp.status_code == 200
    assert resolved == ["localhost"]  # names still go through the resolver


def test_an_ipv6_address_literal_connects() -> None:
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    threading.Thread(target=answer, daemon=True).start()
    upstream = Upstream(connect_timeout=5, read_timeout=5, max_retries=0, transport=FastTransport)
    try:
        with upstream.send(UpstreamRequest("GET", f"http://[::1]:{port}/v1/models", {}, b"")) as resp:
            assert resp.status_code == 200 and resp.content == b"ok"
    finally:
        listener.close()


def test_a_refused_ip_address_is_the_proxys_refused_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        upstream = Upstream(connect_timeout=5, read_timeout=5, max_retries=0, transport=FastTransport)
        with pytest.raises(ProxyError) as caught:
            upstream.send(UpstreamRequest("GET", f"http://127.0.0.1:{port}/v1/models", {}, b""))
    assert (caught.value.status, caught.value.code) == (502, "upstream_connection_refused")
