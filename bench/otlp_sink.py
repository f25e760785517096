"""A local OTLP/HTTP sink for the tracing section: takes `POST /v1/traces` (protobuf) and answers 200 with an empty
ExportTraceServiceResponse, as a collector does, without decoding (its CPU is not the proxy's, and is kept small).
`GET /count` says how many exports and bytes arrived. Prints `READY <port>` once it listens."""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"exports": 0, "bytes": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/traces":
            return self.answer(404, b"", "text/plain")
        with lock:
            counts["exports"] += 1
            counts["bytes"] += len(body)
        self.answer(200, b"", "application/x-protobuf")  # an empty ExportTraceServiceResponse

    def do_GET(self) -> None:
        with lock:
            self.answer(200, json.dumps(counts).encode(), "application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
