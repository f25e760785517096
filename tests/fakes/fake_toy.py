"""A real server on loopback for the toy protocol (tests/example_provider/cot_proxy_provider_toy): answers with
think-tagged text, whole or as NDJSON tokens; the model `toy-broken` answers 503 with credentials in its
message. Every request must carry `Authorization: Bearer <key>` (401 otherwise), and /generate must have the
toy request's fields with their types (400 otherwise): a backend that sent something else would fail here.

    with FakeToy(key="k") as toy:
        toy.base_url                  # http://127.0.0.1:PORT/
        toy.received[-1]["body"]      # what arrived, with its headers
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.quiet_server import QuietServer

TOKENS = ["<thi", "nk>pondering</think>", "Toy ", "answer"]
FIELDS = {"model": str, "prompt": str, "stream": bool, "max_new_tokens": int, "temperature": (int, float)}


class FakeToy:
    def __init__(self, key: str) -> None:
        self.key = key
        self.received: list[dict[str, Any]] = []
        self.server = QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> FakeToy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def problem(self, headers: Any, body: Any) -> tuple[int, str] | None:
        """Why a request is refused, as the real thing would refuse it."""
        if headers.get("Authorization") != f"Bearer {self.key}":
            return 401, "missing or wrong key"
        if body is None:
            return None
        if not isinstance(body, dict) or set(body) != set(FIELDS):
            return 400, f"expected exactly the fields {sorted(FIELDS)}"
        wrong = [k for k, kind in FIELDS.items() if not isinstance(body[k], kind)]
        return (400, f"wrong type: {wrong[0]}") if wrong else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        toy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                refused = toy.problem(self.headers, None)
                if refused:
                    self._send(refused[0], {"problem": refused[1]})
                elif self.path != "/models":
                    self._send(404, {"problem": f"no route {self.path}"})
                else:
                    self._send(200, {"models": ["toy-small", "toy-large"]})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                toy.received.append({"path": self.path, "body": body, "headers": dict(self.headers.items())})
                refused = (404, f"no route {self.path}") if self.path != "/generate" else toy.problem(self.headers, body)
                if refused:
                    self._send(refused[0], {"problem": refused[1]})
                elif body["model"] == "toy-broken":
                    self._send(503, {"problem": "overloaded; see http://root:hunter2@10.0.0.7:9000/status"})
                elif not body["stream"]:
                    self._send(200, {"text": "".join(TOKENS), "input_tokens": 3, "output_tokens": 4})
                else:
                    self._stream()

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                lines = [{"token": t} for t in TOKENS] + [{"done": True, "input_tokens": 3, "output_tokens": 4}]
                for line in lines:
                    data = json.dumps(line).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        return Handler
