"""A whole request body of known length read from Gunicorn's socket into one buffer
(argoproxy/fastpath/gunicorn_body.py, through edge.client_input.DeadlineBody): the same bytes as Gunicorn's own
reader, whatever Gunicorn already held past the head, in any number of pieces, and the connection's next
request (pipelined behind the body) still parsed by Gunicorn."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import tracemalloc

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from argoproxy.edge import client_input
from argoproxy.edge.client_input import DeadlineBody
from argoproxy.fastpath.gunicorn_body import direct_body


def _request(path: str, body: bytes, chunked: bool = False) -> bytes:
    if chunked:
        return (f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                f"{len(body):X}\r\n").encode() + body + b"\r\n0\r\n\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


@pytest.fixture()
def pair():
    server, client = socket.socketpair()
    server.settimeout(5)
    yield server, client
    server.close()
    client.close()


def _read_body(server: socket.socket, parser: RequestParser, req) -> bytes:
    size = int(req.headers and dict(req.headers)["CONTENT-LENGTH"])
    return DeadlineBody(req.body, server, timeout=30.0, length=size, direct=direct_body).read(size)


def test_a_body_and_the_pipelined_request_behind_it(pair):
    server, client = pair
    first, second = b'{"model": "m", "x": "' + b"a" * 5000 + b'"}', b'{"second": true}'
    client.sendall(_request("/first", first) + _request("/next", second))
    parser = RequestParser(Config(), server, ("127.0.0.1", 1))
    req = next(parser)
    assert direct_body(req.body, len(first)) is not None
    assert _read_body(server, parser, req) == first
    assert req.body.read(10) == b""  # Gunicorn's reader knows the body is consumed
    nxt = next(parser)
    assert nxt.path == "/next" and nxt.body.read() == second


def test_a_body_arriving_in_many_pieces(pair, monkeypatch):
    server, client = pair
    monkeypatch.setattr(client_input, "PIECE", 7)  # many fills, whatever the socket holds at once
    body = bytes(range(256)) * 40
    wire = _request("/p", body)
    client.sendall(wire[:len(wire) - len(body) + 3])  # the head and 3 bytes of the body
    sender = threading.Thread(target=client.sendall, args=(wire[len(wire) - len(body) + 3:],))
    parser = RequestParser(Config(), server, ("127.0.0.1", 1))
    req = next(parser)
    sender.start()
    try:
        assert _read_body(server, parser, req) == body
    finally:
        sender.join()


def test_a_client_that_closes_early_leaves_a_short_body(pair):
    server, client = pair
    body = b'{"model": "m"}'
    client.sendall(_request("/short", body)[:-5])
    client.shutdown(socket.SHUT_WR)
    parser = RequestParser(Config(), server, ("127.0.0.1", 1))
    req = next(parser)
    assert _read_body(server, parser, req) == body[:-5]  # read_request_body answers it with a 400


def test_only_a_whole_unread_body_of_known_length_is_read_directly(pair):
    server, client = pair
    client.sendall(_request("/c", b"chunked body", chunked=True) + _request("/l", b"0123456789"))
    parser = RequestParser(Config(), server, ("127.0.0.1", 1))
    chunked = next(parser)
    assert direct_body(chunked.body, 12) is None
    assert chunked.body.read() == b"chunked body"
    plain = next(parser)
    assert direct_body(plain.body, 9) is None  # not the whole of what is left
    assert plain.body.read(4) == b"0123"
    assert direct_body(plain.body, 6) is None  # partly read through Gunicorn's own buffers
    assert plain.body.read() == b"456789"


def test_the_buffer_grows_with_what_arrives_not_with_the_announced_length(pair):
    """A Content-Length is only what the client announces: a head of a hundred bytes announcing 32 MiB must not
    make the worker allocate (and zero, so make resident) 32 MiB before any of it came."""
    server, client = pair
    announced, sent = 32 * 1024 * 1024, 3 * 1024 * 1024
    rest = b"b" * sent  # made before tracing starts: only what the reader allocates is counted
    client.settimeout(5)  # a failed check below leaves the sender blocked at most that long
    client.sendall(f"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {announced}\r\n\r\n".encode() + b"a" * 100)
    req = next(RequestParser(Config(), server, ("127.0.0.1", 1)))
    tracemalloc.start()
    try:
        body = direct_body(req.body, announced)
        assert bytes(body.fill(client_input.PIECE)) == b"a" * 100
        assert tracemalloc.get_traced_memory()[0] < 1024 * 1024  # not the 32 MiB announced
        sender = threading.Thread(target=client.sendall, args=(rest,))
        sender.start()
        try:
            while body.got < 100 + sent:
                assert body.fill(client_input.PIECE)
                assert tracemalloc.get_traced_memory()[0] < 2 * body.got + 1024 * 1024
        finally:
            sender.join()
    finally:
        tracemalloc.stop()
    assert body.whole() == b"a" * 100 + b"b" * sent


@pytest.fixture()
def tls_pair(tmp_path):
    """A socket pair speaking TLS (the server side as Gunicorn wraps it for --certfile)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname, client_ctx.verify_mode = False, ssl.CERT_NONE
    raw_server, raw_client = socket.socketpair()
    raw_server.settimeout(5)
    raw_client.settimeout(5)
    client = client_ctx.wrap_socket(raw_client, do_handshake_on_connect=False)
    handshake = threading.Thread(target=client.do_handshake)
    handshake.start()
    server = server_ctx.wrap_socket(raw_server, server_side=True)
    handshake.join()
    yield server, client
    server.close()
    client.close()


def test_over_tls_the_pipelined_request_decrypted_with_the_body_goes_back_to_gunicorn(tls_pair):
    """The end of a body and the next request in one TLS record: read exactly to the body's end, the next request
    stayed decrypted inside the TLS layer, where Gunicorn's gthread worker does not look (it checks its own
    buffer, then waits for the socket to be readable): the request waited until keep-alive timed out."""
    server, client = tls_pair
    first, second = b'{"model": "m", "x": "' + b"a" * 300 + b'"}', b'{"second": true}'
    head = _request("/first", first)[:-len(first)]
    client.sendall(head)
    parser = RequestParser(Config(), server, ("127.0.0.1", 1))
    req = next(parser)
    client.sendall(first + _request("/next", second))  # one TLS record: the body's end and the next request
    assert _read_body(server, parser, req) == first
    assert parser.unreader.buf.getvalue(), "the next request is left inside the TLS layer"
    nxt = next(parser)
    assert nxt.path == "/next" and nxt.body.read() == second


def test_over_tls_bytes_held_and_decrypted_past_the_body_stay_in_order(tls_pair):
    """A body ending inside what Gunicorn read with the head, and the next request longer than that read: its
    first bytes are in Gunicorn's buffer, the rest of the TLS record decrypted in the TLS layer. Handed back
    to Gunicorn, they must follow the bytes it holds."""
    server, client = tls_pair
    first, second = b'{"small": 1}', b'{"second": "' + bytes(range(97, 123)) * 400 + b'"}'  # over 8 KiB
    client.sendall(_request("/first", first) + _request("/next", second))  # one TLS record
    parser = RequestParser(Config(), server, ("127.0.0.1", 1))
    req = next(parser)
    assert _read_body(server, parser, req) == first
    nxt = next(parser)
    assert nxt.path == "/next" and nxt.body.read() == second
