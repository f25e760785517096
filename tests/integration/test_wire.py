"""What crosses the wire through the running app, read with raw sockets: a small answer's head and body leave
in one send, head-only answers are complete, streams keep their framing, X-Request-ID is the client's (never
the upstream's), and headers the client names in Connection do not go upstream."""

from __future__ import annotations

import json
import socket
import time

from tests.fakes.fake_openai import Reply, Stream, chat_chunks
from tests.proxy_process import running_proxy


def raw_exchange(proxy, request: bytes, settle: float = 0.3, until: bytes = b"") -> tuple[bytes, bytes]:
    """(the first recv after sending, everything the proxy sent before closing or going quiet); with `until`,
    read until what came ends with it (a busy machine may keep the end back longer than `settle`)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(request)
        first = s.recv(1 << 20)
        data = first
        s.settimeout(30 if until else settle)
        try:
            while not (until and data.endswith(until)) and (chunk := s.recv(1 << 20)):
                data += chunk
        except socket.timeout:
            pass
    return first, data


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_small_answer_arrives_head_and_body_together(upstream):
    # Gunicorn's response coalescing is part of the fast path: stock Gunicorn sends the head on its own.
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with running_proxy(TARGET_BASE_URL=upstream.base_url, FAST_PATH="on") as proxy:
        first, _ = raw_exchange(proxy, post("/v1/chat/completions", body))
    head, _, rest = first.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    assert len(rest) == length and json.loads(rest)["choices"][0]["message"]["content"]


def test_head_only_answers_are_complete(proxy, upstream):
    upstream.add(Reply(b"", status=204))
    _, data = raw_exchange(proxy, b"DELETE /v1/files/f1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 204") and data.endswith(b"\r\n\r\n")
    upstream.add(Reply({"x": 1}, headers={"ETag": '"v1"'}))
    _, data = raw_exchange(proxy, b"HEAD /v1/files HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and b'etag: "v1"' in data.lower() and data.endswith(b"\r\n\r\n")


def test_stream_framing_is_intact_and_headers_come_first(proxy, upstream):
    upstream.add(Stream(chat_chunks(["a", "b", "c"]) + ["[DONE]"], first_delay=0.3, delay=0.05))
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
    started = time.monotonic()
    first, data = raw_exchange(proxy, post("/v1/chat/completions", body), until=b"0\r\n\r\n")
    assert time.monotonic() - started >= 0.3
    assert first.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in first.lower()
    assert data.endswith(b"0\r\n\r\n")  # the chunked body is terminated
    assert data.count(b"data: ") >= 4 and b"data: [DONE]" in data and b'"content":"c"' in data.replace(b" ", b"")


def test_request_id_is_the_clients_and_connection_listed_headers_stay_here(proxy, upstream):
    upstream.add(Reply({"object": "list", "data": []}, headers={"X-Request-ID": "upstream-id"}))
    _, data = raw_exchange(proxy, b"GET /v1/files HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: client-id\r\n"
                                  b"Connection: keep-alive, X-Private\r\nX-Private: secret\r\nX-Public: 1\r\n\r\n")
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert head.count(b"x-request-id") == 1 and b"x-request-id: client-id" in head
    assert b"x-upstream-request-id: upstream-id" in head  # what the upstream's vendor asks for, kept apart
    got = upstream.received[-1]
    assert got.headers.get("X-Public") == "1" and "X-Private" not in got.headers


def test_a_body_shorter_than_its_content_length_is_a_400_and_is_not_forwarded(proxy, upstream):
    before = len(upstream.received)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"model\": \"m\"}")
        s.shutdown(socket.SHUT_WR)  # the client gives up after 14 of its 100 bytes
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    err = json.loads(body)["error"]
    assert err["code"] == "invalid_request" and "Content-Length" in err["message"]
    assert len(upstream.received) == before
