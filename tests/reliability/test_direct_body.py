"""A whole request body of known length read straight from the socket (FAST_PATH=on,
argoproxy/fastpath/gunicorn_body.py), attacked through the running app: memory follows what a client sent, not
the Content-Length it announced, and over TLS a request pipelined behind a body is answered at once."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import running_proxy
from tests.reliability.support import peak_growth, quick_ok

pytestmark = pytest.mark.timeout(90)

MIB = 1024 * 1024


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def chat(content: str, close: bool = False) -> bytes:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": content}]}).encode()
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
            ).encode() + body


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_announced_lengths_without_bodies_do_not_take_memory(worker_class):
    """Heads announcing MAX_BODY_BYTES each, and no body: a buffer of the announced size was allocated and zeroed
    before a byte of it came, so eight heads of a hundred bytes held 256 MiB until CLIENT_TIMEOUT (a few thousand
    took any worker down)."""
    heads, announced = 8, 32 * MIB
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {announced}\r\n\r\n").encode()
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, WORKER_CLASS=worker_class, WORKERS="1", THREADS="16",
                           FAST_PATH="on", CLIENT_TIMEOUT="1", MAX_BODY_BYTES=str(announced)) as p:
            quick_ok(p, timeout=10)

            def hold_heads() -> list[bytes]:
                conns = [socket.create_connection(("127.0.0.1", p.port), timeout=10) for _ in range(heads)]
                try:
                    for c in conns:
                        c.sendall(head)
                    return [read_until_closed(c) for c in conns]  # each waits for its body until CLIENT_TIMEOUT
                finally:
                    for c in conns:
                        c.close()

            growth, answers = peak_growth(p, hold_heads)
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), [a[:40] for a in answers]
    assert growth < 64 * MIB, f"{growth / MIB:.0f} MiB for {heads} request heads"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_over_tls_a_request_pipelined_behind_a_body_is_answered(certificate, worker_class):
    """The body's end and the next request arrive together: read exactly to the body's end, the next request was
    left decrypted inside the TLS layer, and Gunicorn's gthread worker (which waits for the socket to be readable
    again) let it wait until keep-alive timed out."""
    cert, key = certificate
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, WORKER_CLASS=worker_class, WORKERS="1", FAST_PATH="on",
                           GUNICORN_CMD_ARGS=f"--certfile {cert} --keyfile {key}") as p:
            with context.wrap_socket(socket.create_connection(("127.0.0.1", p.port), timeout=5)) as s:
                s.sendall(chat("x" * 300_000) + chat("second", close=True))
                answer = read_until_closed(s)  # a socket.timeout here is the bug
            posted = [r.json()["messages"][0]["content"] for r in fake.received if r.method == "POST"]
    assert re.findall(rb"HTTP/1.1 (\d+)", answer) == [b"200", b"200"]
    assert posted == ["x" * 300_000, "second"]


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_over_tls_a_body_cut_at_client_timeout_gets_its_408_encrypted(certificate, worker_class):
    """CLIENT_TIMEOUT shuts the read side of a connection whose body stopped coming; the TLS socket's own
    shutdown() also dropped its TLS session, so the 408 left unencrypted and the client saw a TLS error. (With
    FAST_PATH=off a gthread worker's body is read through Gunicorn's reader, which the Watchdog must still cut
    by shutting the socket from its own thread: there the client still gets a TLS error, docs/hardening.md.)"""
    cert, key = certificate
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    body = chat("never finished")
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, WORKER_CLASS=worker_class, WORKERS="1", CLIENT_TIMEOUT="1",
                           FAST_PATH="on", GUNICORN_CMD_ARGS=f"--certfile {cert} --keyfile {key}") as p:
            with context.wrap_socket(socket.create_connection(("127.0.0.1", p.port), timeout=15)) as s:
                s.sendall(body[:-10])  # the head and most of the body: the rest never comes
                answer = read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b'"code":"client_timeout"' in answer.replace(b" ", b"")
