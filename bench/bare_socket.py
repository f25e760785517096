"""Third calibration target: Gunicorn's own floor. A WSGI app under the same Gunicorn gevent workers that sends
the request upstream over a raw keep-alive socket and relays the answer with the least HTTP/1.1 it can: no
HTTP client library, no checks, no Flask. What it adds over direct is what Gunicorn, gevent and one more
loopback hop cost on this machine before any HTTP client or any of a proxy's work. Not the product: it trusts
the upstream completely (the bench's fake) and would be wrong against anything else.

Run by bench/run.py as ``gunicorn -k gevent -w 2 bare_socket:app`` with BARE_TARGET=http://127.0.0.1:PORT.
"""

from __future__ import annotations

import os
import socket
from typing import Iterator

_HOST, _PORT = os.environ["BARE_TARGET"].rsplit("/", 1)[-1].rsplit(":", 1)
UPSTREAM = (_HOST, int(_PORT))
DROPPED = {"transfer-encoding", "connection", "content-length", "keep-alive"}
idle: list[socket.socket] = []  # one worker's kept-alive upstream sockets


class Reader:
    """Buffered reads from one upstream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def until(self, mark: bytes) -> bytes:
        while mark not in self.buf:
            self.fill()
        out, _, self.buf = self.buf.partition(mark)
        return out

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def fill(self) -> None:
        more = self.sock.recv(65536)
        if not more:
            raise ConnectionError("the upstream closed the connection")
        self.buf += more


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    sock = idle.pop() if idle else socket.create_connection(UPSTREAM)
    head = (f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '/')} HTTP/1.1\r\nHost: {_HOST}\r\n"
            f"Content-Type: {environ.get('CONTENT_TYPE') or 'application/json'}\r\nContent-Length: {len(body)}\r\n\r\n")
    sock.sendall(head.encode("latin-1") + body)
    reader = Reader(sock)
    status_line, *lines = reader.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in lines]
    names = {k.lower(): v for k, v in headers}
    start_response(status_line.split(" ", 1)[1], [(k, v) for k, v in headers if k.lower() not in DROPPED])
    if names.get("transfer-encoding", "").lower() == "chunked":
        return chunks(reader, sock)
    whole = reader.exactly(int(names.get("content-length", 0)))
    idle.append(sock)
    return [whole]


def chunks(reader: Reader, sock: socket.socket) -> Iterator[bytes]:
    while size := int(reader.until(b"\r\n").split(b";", 1)[0], 16):
        piece = reader.exactly(size + 2)
        yield piece[:-2]
    reader.until(b"\r\n")
    idle.append(sock)
