"""A fake llama.cpp server with slots, on loopback: it serves at most `slots` requests at once (the rest wait in
its own queue, first come first served, as llama-server's do), says so in GET /props (`total_slots`) and
GET /slots, and keeps a prompt cache the way llama-server does without `--cache-ram`:

- each slot keeps the prompt it last read (in 4-character tokens), and nothing else;
- a request takes the free slot whose kept prompt shares the longest prefix with its own, when that prefix is
  over half of what the slot keeps (llama-server's --slot-prompt-similarity, 0.5 by default), else the free
  slot used least recently (its prompt then mostly read again);
- it reads what its slot did not hold: `prefill` seconds per token, one prompt at a time on the whole server
  (reading a prompt is compute-bound: two slots reading at once each take twice as long), then answers at
  `per_token` seconds per output token, slots alongside (decoding is memory-bound and batched).

On a GPU, a 1-8B model reads a prompt 20 to 50 times faster per token than it writes one (the benchmark's
0.5 ms against 20 ms); on a CPU, about 10 times. `gated`: a test closes a gate to hold every answer (or,
with `held_if`, those whose last message holds that text) in its slot until it lets them go (`let_go(n)`),
and reads who runs (`running`, `most_running`), how many it holds, running or queued (`inside`,
`most_inside`), in which order requests took a slot (`served`) and the prompt tokens it read uncached
(`uncached_tokens`).

As llama-server does, it answers chat completions whole (its usage saying the prompt tokens its slot held
already: `prompt_tokens_details.cached_tokens`) or streamed (no usage chunk when not asked), and refuses what
it refuses (a `developer` message: 500)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.quiet_server import QuietServer

CHARS_PER_TOKEN = 4
SIMILARITY = 0.5  # llama-server's --slot-prompt-similarity default


class Slot:
    __slots__ = ("prompt", "used", "busy")

    def __init__(self) -> None:
        self.prompt = ""  # what it read last
        self.used = 0.0  # when it was last given a request
        self.busy = False


class FakeSlots:
    def __init__(self, slots: int = 2, prefill: float = 0.0, per_token: float = 0.0, answer_tokens: int = 8,
                 gated: bool = False, says_slots: bool = True, held_if: str = "") -> None:
        self.slots, self.prefill, self.per_token, self.answer_tokens = slots, prefill, per_token, answer_tokens
        self.says_slots = says_slots
        self.slot_list = [Slot() for _ in range(slots)]
        self.lock = threading.Condition()
        self.queue: list[object] = []  # requests waiting for a slot, first come first served
        self.compute = threading.Lock()  # one prompt read at a time
        self.running = 0
        self.most_running = 0
        self.inside = 0  # requests the server holds: running or waiting in its own queue
        self.most_inside = 0
        self.served: list[dict[str, Any]] = []  # each chat request's body, in the order it took a slot
        self.uncached_tokens = 0
        self.gate = threading.Semaphore(0) if gated or held_if else None
        self.held_if = held_if
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/props" and fake.says_slots:
                    fake.send(self, 200, {"default_generation_settings": {"n_ctx": 4096, "params": {}},
                                          "total_slots": fake.slots, "model_path": "fake.gguf"})  # llama-server's
                elif self.path == "/slots" and fake.says_slots:  # llama-server's fields, when its slots are idle
                    fake.send(self, 200, [{"id": i, "n_ctx": 4096, "speculative": False, "is_processing": s.busy}
                                          for i, s in enumerate(fake.slot_list)])
                elif self.path.rstrip("/") in ("/v1/models", "/v1"):
                    fake.send(self, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
                else:
                    fake.send(self, 404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    return fake.send(self, 404, {"error": {"code": 404, "message": "File Not Found"}})
                if any(m.get("role") == "developer" for m in body.get("messages", [])):
                    return fake.send(self, 500, {"error": {"code": 500, "message": "Invalid role: developer"}})
                with fake.lock:
                    fake.inside += 1
                    fake.most_inside = max(fake.most_inside, fake.inside)
                try:
                    with fake.slot(body) as (prompt_tokens, cached):
                        if fake.gate is not None and fake.held(body):
                            fake.gate.acquire()
                        with fake.compute:
                            time.sleep((prompt_tokens - cached) * fake.prefill)
                        fake.answer(self, body, prompt_tokens, cached)
                finally:
                    with fake.lock:
                        fake.inside -= 1

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 1024
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def held(self, body: dict[str, Any]) -> bool:
        if not self.held_if:
            return True
        messages = body.get("messages") or [{}]
        return self.held_if in str(messages[-1].get("content"))

    def let_go(self, n: int = 1) -> None:
        assert self.gate is not None
        for _ in range(n):
            self.gate.release()

    def slot(self, body: dict[str, Any]):
        """A context manager: a slot taken in queue order, as llama-server picks one; yields (the prompt's
        tokens, those its slot held already)."""
        fake = self

        class Taking:
            slot: Slot

            def __enter__(self) -> tuple[int, int]:
                prompt = json.dumps(body.get("messages", []))
                me = object()
                with fake.lock:
                    fake.queue.append(me)
                    fake.lock.wait_for(lambda: fake.queue[0] is me and any(not s.busy for s in fake.slot_list))
                    fake.queue.pop(0)
                    self.slot, shared = fake.pick(prompt)
                    self.slot.busy, self.slot.prompt, self.slot.used = True, prompt, time.monotonic()
                    fake.lock.notify_all()  # the next in the queue may find another free slot
                    fake.running += 1
                    fake.most_running = max(fake.most_running, fake.running)
                    fake.served.append(body)
                    tokens, cached = len(prompt) // CHARS_PER_TOKEN, shared // CHARS_PER_TOKEN
                    fake.uncached_tokens += tokens - cached
                return tokens, cached

            def __exit__(self, *exc: Any) -> None:
                with fake.lock:
                    fake.running -= 1
                    self.slot.busy = False
                    fake.lock.notify_all()
        return Taking()

    def pick(self, prompt: str) -> tuple[Slot, int]:
        """(the free slot llama-server gives this prompt, the characters of it that slot holds already)."""
        free = [s for s in self.slot_list if not s.busy]
        best, best_shared = None, 0
        for s in free:
            shared = _common(prompt, s.prompt) if s.prompt else 0
            if shared > best_shared and shared / len(s.prompt) > SIMILARITY:
                best, best_shared = s, shared
        if best is None:  # the least recently used one; what it holds serves as far as it matches
            best = min(free, key=lambda s: s.used)
            best_shared = _common(prompt, best.prompt)
        return best, best_shared

    def answer(self, h: BaseHTTPRequestHandler, body: dict[str, Any], prompt_tokens: int, cached: int) -> None:
        tokens = min(int(body.get("max_tokens") or self.answer_tokens), self.answer_tokens)
        created = int(time.time())
        if not body.get("stream"):
            time.sleep(tokens * self.per_token)
            return self.send(h, 200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": created,
                                      "model": body.get("model", "fake"), "choices": [{"index": 0, "finish_reason":
                                      "stop", "message": {"role": "assistant", "content": "word " * tokens}}],
                                      "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                                                "total_tokens": prompt_tokens + tokens,
                                                "prompt_tokens_details": {"cached_tokens": cached}}})
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i in range(tokens + 1):
            delta = {"content": "word "} if i < tokens else {}
            event = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                     "model": body.get("model", "fake"),
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None if i < tokens else "stop"}]}
            write_chunk(h, b"data: " + json.dumps(event).encode() + b"\n\n")
            if i < tokens:
                time.sleep(self.per_token)
        write_chunk(h, b"data: [DONE]\n\n")
        write_chunk(h, b"")

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def close(self) -> None:
        if self.gate is not None:
            self.let_go(1000)
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeSlots":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_chunk(h: BaseHTTPRequestHandler, data: bytes) -> None:
    """One piece of a chunked answer (tests/real/relay.py writes its answers so too)."""
    h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    h.wfile.flush()


def _common(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    step = 1024
    while i < n and a[i:i + step] == b[i:i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return min(i, n)
