"""The body reader's deadline (edge/client_input.py) ends with the body: a request that is slow to answer,
not to send, keeps its connection."""

from __future__ import annotations

import socket

from argoproxy.edge.client_input import DeadlineBody


def test_a_body_read_whole_is_no_longer_under_the_deadline():
    # A non-streamed completion that takes longer than CLIENT_TIMEOUT: its body was read at once, and the
    # Watchdog, at the deadline, shut the read side of its connection; the answer went out as keep-alive and
    # the client's next request on that connection met a closed socket (BrokenPipe / RemoteDisconnected).
    server, client = socket.socketpair()
    try:
        server.settimeout(None)
        body = b'{"model": "m"}'
        client.sendall(body)
        reader = DeadlineBody(server.makefile("rb"), server, timeout=30.0, length=len(body))
        assert reader.read(len(body)) == body
        reader.expire()  # what the Watchdog does at the deadline
        client.sendall(b"GET /next HTTP/1.1\r\n\r\n")  # the next request on the kept-alive connection
        server.settimeout(2)
        assert server.recv(100).startswith(b"GET /next")
    finally:
        server.close()
        client.close()


def test_a_body_still_coming_at_the_deadline_is_cut():
    server, client = socket.socketpair()
    try:
        client.sendall(b'{"mo')
        reader = DeadlineBody(server.makefile("rb"), server, timeout=30.0, length=14)
        assert reader.read(4) == b'{"mo'
        reader.expire()
        try:
            reader.read(10)
        except Exception as exc:  # noqa: BLE001
            assert getattr(exc, "status", None) == 408, exc
        else:
            raise AssertionError("a body cut at its deadline must be a 408")
    finally:
        server.close()
        client.close()
