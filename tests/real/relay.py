"""A loopback HTTP relay in front of a real server that counts the generation requests inside it at once, for
tests that must show what the proxy sent a server whose own queue they cannot see (llama-server takes as many
requests as come and queues the ones its slots cannot run).

Every request is relayed as it came, answers streamed piece by piece. A POST counts from its arrival until the
server's answer has been read to its end; the relay holds back the last piece it read until then, so whoever
sent the request learns of the end only after the count went down (no overlap that the server never saw)."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.fake_slots import write_chunk

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
              "host", "content-length"}


class CountingRelay:
    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.host, self.port_to = parts.hostname or "127.0.0.1", parts.port or 80
        self.lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.posts = 0
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                relay.relay(self, counted=False)

            def do_POST(self) -> None:
                relay.relay(self, counted=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def relay(self, h: BaseHTTPRequestHandler, counted: bool) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if counted:
            with self.lock:
                self.inside += 1
                self.posts += 1
                self.most_inside = max(self.most_inside, self.inside)
        held = b""
        upstream = http.client.HTTPConnection(self.host, self.port_to, timeout=600)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(h.command, h.path, body=body, headers=headers)
            answer = upstream.getresponse()
            h.send_response(answer.status)
            for k, v in answer.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    h.send_header(k, v)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            while piece := answer.read1(65536):
                if held:
                    write_chunk(h, held)
                held = piece
        finally:
            upstream.close()  # a client that left ends the server's work too, as a closed connection does
            if counted:
                with self.lock:
                    self.inside -= 1
        if held:
            write_chunk(h, held)
        write_chunk(h, b"")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "CountingRelay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
