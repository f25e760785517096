"""A loopback HTTP/1.1 upstream that answers each request with the next script of raw bytes, keeping its
connections alive between requests, and records every request as it came off the wire."""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass

# A script's pieces: bytes are sent as they are; CLOSE closes the connection there; RESET resets it (a TCP RST);
# STALL sends nothing more until the server is closed (or STALL_MOST seconds), then closes the connection.
CLOSE = "close"
RESET = "reset"
STALL = "stall"
STALL_MOST = 5.0

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Received:
    head: bytes
    body: bytes
    connection: int  # which connection it came on, counted from 1

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: str) -> list[bytes]:
        lines = self.head.split(b"\r\n")[1:]
        return [line.split(b":", 1)[1].strip() for line in lines if line.split(b":", 1)[0].lower() == name.encode()]


class WireUpstream:
    def __init__(self) -> None:
        self.scripts: list[list[bytes | str]] = []
        self.received: list[Received] = []
        self.connections = 0
        self.closing = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/v1/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, *pieces: bytes | str) -> None:
        """The answer to a request still to come (after those added before): its pieces in order."""
        self.scripts.append(list(pieces))

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn:
            try:
                self._answer(conn, number)
            except OSError:  # the client dropped the connection
                pass

    def _answer(self, conn: socket.socket, number: int) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            self.received.append(Received(head, buf[:length], number))
            buf = buf[length:]
            for piece in self.scripts.pop(0) if self.scripts else [OK]:
                if piece == STALL:
                    self.closing.wait(STALL_MOST)
                    return
                if piece == CLOSE:
                    return
                if piece == RESET:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                assert isinstance(piece, bytes)
                conn.sendall(piece)

    def close(self) -> None:
        self.closing.set()
        self.listener.close()


def chunked(*chunks: bytes, last: bytes = b"0\r\n\r\n") -> bytes:
    """A chunked body of these chunks, ended by `last` (the zero-size chunk)."""
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + last


def head(status: str = "200 OK", **headers: str) -> bytes:
    lines = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 {status}\r\n{lines}\r\n".encode()
