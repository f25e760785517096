"""A real OpenAI-compatible HTTP server on loopback for tests: scripted answers, streams with chosen
chunking and delays, think tags, errors and mid-stream cuts; it records every request it receives.

As strict as the servers it stands for: a JSON body that is not UTF-8 or holds a lone surrogate escape is a
400, as OpenAI, Anthropic and vLLM answer (tests/fakes/strict_json.py); by default it refuses what llama.cpp's
server refuses (a `developer` message, an assistant message with `content: null`, a `response_format` of type
`json_schema`, a replayed tool call whose arguments are not a JSON object: 500, whatever answer is queued) and,
like OpenAI, sends a stream's usage chunk only to a request that asked for it (`stream_options.include_usage`).
Switches: `accepts_lone_surrogates` (a Go server, Ollama's, reads them as U+FFFD), `accepts_developer` /
`accepts_null_content` / `accepts_json_schema` / `accepts_unparsed_arguments` (OpenAI's own API takes them),
`nulls_stream_usage` (OpenAI's API: a stream asked for usage has `"usage":null` on its other
chunks, compact JSON as OpenAI writes it), `sends_stream_usage = False`
(llama.cpp's server ignores include_usage), `streams_auto_tool_calls = False` (llama.cpp's server cannot stream
a tool call its model chose under `tool_choice: auto`: it sends the stream's headers, a keepalive comment when the
prompt took long, then ends it with no data), `wants_alternating_roles = True` (vLLM with a Gemma or Mistral chat
template: two user or two assistant turns in a row are a 400). An answer `held` for N seconds sends nothing, not
even its head, as a local server reading a long prompt does, and like llama.cpp's server stops when its client
leaves meanwhile (`holding`: requests held now; `left`: when their clients left)."""

from __future__ import annotations

import gzip
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from tests.fakes.fake_batches import FakeBatches
from tests.fakes.quiet_server import QuietServer
from tests.fakes.strict_json import json_problem


@dataclass
class Reply:
    """A whole answer: status, headers, body (dict -> JSON)."""
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False
    delay: float = 0.0
    drip: float = 0.0  # seconds between single bytes of the body
    path: str | None = None  # only a request to a path ending so takes it (others pass it by): None, any request
    held: float = 0.0  # seconds the head is held back, the connection watched (FakeOpenAI.hold)


@dataclass
class Stream:
    """An SSE answer: events (dicts -> `data: json`, bytes as is, "[DONE]"), written as separate chunks."""
    events: list[Any]
    delay: float = 0.0  # between events
    first_delay: float = 0.0
    cut_after: int | None = None  # close the connection after this many events (no terminator)
    split: bool = False  # write each event in two halves, splitting its bytes mid-way
    headers: dict[str, str] = field(default_factory=dict)
    pause_at: dict[int, float] = field(default_factory=dict)  # extra sleep before event i (a mid-stream stall)
    drip: float = 0.0  # seconds between single bytes of every event (a slow upstream)
    held: float = 0.0  # seconds the head is held back, the connection watched (FakeOpenAI.hold)


@dataclass
class Huge:
    """A whole answer of `size` bytes written piece by piece (the fake never holds it): `head` first, then
    `fill` repeated."""
    size: int
    head: bytes = b'{"id": "chatcmpl-huge", "object": "chat.completion", "choices": [], "padding": "'
    fill: bytes = b"x" * 65536
    content_type: str = "application/json"


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def chat_completion(content: str, model: str = "fake-model", finish_reason: str = "stop", n: int = 1,
                    usage: bool = True) -> dict:
    obj = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": model,
           "choices": [{"index": i, "message": {"role": "assistant", "content": content}, "logprobs": None,
                        "finish_reason": finish_reason} for i in range(n)]}
    if usage:
        obj["usage"] = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    return obj


def chat_chunks(pieces: list[str], model: str = "fake-model", n: int = 1, usage: bool = False) -> list[Any]:
    """The events of a streamed chat completion whose content arrives in these pieces."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    events: list[Any] = []
    for i in range(n):
        events.append({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                            "finish_reason": None}]})
    for piece in pieces:
        for i in range(n):
            events.append({**base, "choices": [{"index": i, "delta": {"content": piece}, "finish_reason": None}]})
    for i in range(n):
        events.append({**base, "choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        events.append({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})
    events.append("[DONE]")
    return events


SELF_ID_PATHS = {"/props": "llama.cpp", "/version": "vLLM", "/api/version": "Ollama"}
SELF_ID_ANSWERS = {  # as each server answers (llama.cpp's /props abridged)
    "/props": {"default_generation_settings": {"n_ctx": 4096, "params": {"temperature": 0.8}}, "total_slots": 1,
               "model_path": "models/gemma-3-270m-q4_k_m.gguf", "chat_template": "", "build_info": "b6000"},
    "/version": {"version": "0.11.0"},
    "/api/version": {"version": "0.12.3"},
}


class _Server(QuietServer):
    request_queue_size = 1024  # the default backlog of 5 drops connections under load tests


class FakeOpenAI:
    """`with FakeOpenAI() as fake:` -> fake.base_url ("http://127.0.0.1:PORT/v1/"); queue answers with fake.add()."""

    def __init__(self, refuse: Callable[[str, bytes], tuple[int, Any] | None] | None = None,
                 says: str | None = None) -> None:
        self.refuse = refuse  # (path, body) -> (status, body) the real server answers instead (argo_rules)
        # What it answers when asked what it is (GET /props, /version, /api/version: the price rule's question,
        # argoproxy/upstream/local_server.py): None as OpenAI's API (404s), or "llama.cpp", "vLLM", "Ollama" as
        # those servers answer. The questions are kept apart from `received` (the API calls a test looks at).
        self.says = says
        self.asked_what_it_is: list[str] = []
        self.received: list[Received] = []
        self.queue: list[Reply | Stream] = []
        self.default_content = "Hello from the fake upstream!"
        self.usage = dict(USAGE)  # the usage of default answers
        self.accepts_developer = False  # OpenAI's own API takes the role; llama.cpp's server answers 500
        self.accepts_null_content = False  # llama.cpp: 500 "Input should be a valid string"
        self.accepts_json_schema = False  # llama.cpp: 500 "Input should be 'text' or 'json_object'"
        # llama.cpp's server: a history whose tool call has arguments that are not JSON is a 500 (OpenAI takes it)
        self.accepts_unparsed_arguments = False
        self.sends_stream_usage = True  # False: include_usage ignored, as llama.cpp's server does
        self.nulls_stream_usage = False  # True: `"usage":null` on a stream's other chunks when asked, as OpenAI's
        self.streams_auto_tool_calls = True  # False: such a stream ends before its first event, as llama.cpp's
        # True: two user or two assistant turns in a row are refused, as vLLM answers for a model whose chat
        # template wants roles to alternate (Gemma's, Mistral's): 400 "Conversation roles must alternate"
        self.wants_alternating_roles = False
        # True: a JSON body that is not UTF-8 or holds a lone surrogate is read anyway, as a Go server (Ollama's)
        # reads it (each as U+FFFD); OpenAI, Anthropic and vLLM answer 400
        self.accepts_lone_surrogates = False
        self.open_connections = 0
        self.hung_up = 0  # requests met by a connection closed without an answer (hang_up_next)
        self.batches = FakeBatches()  # /v1/files, /v1/batches, /v1/messages/batches
        self.closed_streams = 0
        self.holding = 0  # requests whose answer is held now (`held`: a long prompt being read)
        self.left: list[float] = []  # when (time.monotonic()) a held request's client closed its connection
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake.open_connections += 1

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with fake._lock:
                        fake.open_connections -= 1

            hang_up_next = False  # this connection's handler failed mid-answer: the next request gets no answer

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.hang_up_next:  # as uvicorn closes a connection whose handler failed, after a moment
                    with fake._lock:
                        fake.hung_up += 1
                    self.close_connection = True
                    return
                path, _, query = self.path.partition("?")
                if self.command == "GET" and path in SELF_ID_PATHS:
                    fake.asked_what_it_is.append(path)
                    return fake._write_reply(self, fake.self_id(path))
                fake.received.append(Received(self.command, path, query, dict(self.headers.items()), body))
                refused = fake.refusal(self.command, path, body)
                with fake._lock:
                    answer = refused or fake.next_answer(self.command, path)
                if answer is None and path.endswith("/echo-headers"):  # a careless upstream: repeats what it got
                    got = dict(self.headers.items())
                    answer = Reply({"received_headers": got},
                                   headers={"X-Echo-Authorization": got.get("Authorization", "")})
                if answer is None:
                    found = fake.batches.answer(self.command, path, body, self.headers)
                    if found is not None:
                        answer = Reply(found[1], status=found[0], headers={} if isinstance(found[1], dict) else
                                       {"Content-Type": "application/octet-stream"})
                if answer is None:
                    answer = fake.default_answer(self.command, path, body)
                if getattr(answer, "held", 0) and not fake.hold(self, answer.held):
                    return  # the client left while its prompt was read: no answer, as llama.cpp's server stops
                if isinstance(answer, Stream) and fake.cannot_stream(answer, body):
                    # its keepalive while it read the prompt, then nothing: llama-cpp-python's handler raised after
                    # the headers; uvicorn ends the body, then closes the connection once its error handling is
                    # done, milliseconds later, when a client that reused it at once has sent its next request
                    # there (here: the next request on it is always met so, _write_stream's hang_up_next)
                    fake._write_stream(self, Stream([LLAMA_PING]))
                elif isinstance(answer, Stream):
                    fake._write_stream(self, answer, fake.usage_asked(body))
                elif isinstance(answer, Huge):
                    fake._write_huge(self, answer)
                else:
                    fake._write_reply(self, answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

            def do_HEAD(self) -> None:
                self._handle()

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.root_url = f"http://127.0.0.1:{self.port}/"
        self.base_url = self.root_url + "v1/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- scripting
    def reset(self) -> None:
        """Forget the answers still queued and the requests received (between tests sharing one fake)."""
        with self._lock:
            self.queue.clear()
        self.received.clear()

    def self_id(self, path: str) -> Reply:
        if SELF_ID_PATHS[path] == self.says:
            return Reply(SELF_ID_ANSWERS[path])
        return Reply({"error": {"message": f"Invalid URL (GET {path})", "type": "invalid_request_error",
                                "param": None, "code": None}}, status=404)  # OpenAI's answer

    def add(self, *answers: Reply | Stream | Huge) -> None:
        with self._lock:
            self.queue.extend(answers)

    def next_answer(self, method: str, path: str) -> Reply | Stream | Huge | None:
        """The first queued answer this request may take (called with the lock held). The proxy's health probe
        (a GET of the base URL, made whenever /health or /ui/data is read) takes only an answer that names its
        path: the answers a test queues are its API calls'."""
        probe = method == "GET" and path.rstrip("/") in ("", "/v1")
        for i, answer in enumerate(self.queue):
            wanted = getattr(answer, "path", None)
            if (wanted is None and not probe) or (wanted is not None and path.endswith(wanted)):
                return self.queue.pop(i)
        return None

    def refusal(self, method: str, path: str, body: bytes) -> Reply | None:
        """What the server this fake stands for refuses (`refuse`, e.g. ARGO's rules), then what llama.cpp's server
        refuses in a chat request (a 500, as it answers), unless switched off. First of all, a body a strict JSON
        reader refuses (tests/fakes/strict_json.py): a 400, in Anthropic's shape on its routes."""
        problem = json_problem(body) if method in ("POST", "PUT", "PATCH") and not self.accepts_lone_surrogates \
            else None
        if problem is not None:
            message = f"The request body is not valid JSON: {problem}."
            anthropic = "/messages" in path  # Anthropic's API (ARGO's native one, a relayed door)
            return Reply({"type": "error", "error": {"type": "invalid_request_error", "message": message}} if anthropic
                         else {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                         "code": None}}, status=400)
        if self.refuse is not None and method == "POST":
            own = self.refuse(path, body)
            if own is not None:
                return Reply(own[1], status=own[0])
        if method != "POST" or not path.endswith("/chat/completions"):
            return None
        try:
            request = json.loads(body or b"{}")
            messages = request.get("messages")
        except (ValueError, AttributeError):
            return None
        model = request.get("model")
        if isinstance(model, str) and model.startswith(("gpt-4o", "gpt-4.1")) and "reasoning_effort" in request:
            return Reply({"error": {"message": "Unsupported parameter: 'reasoning_effort' is not supported with this "
                                    "model.", "type": "invalid_request_error", "param": "reasoning_effort",
                                    "code": "unsupported_parameter"}}, status=400)  # as OpenAI's API answers
        fmt = request.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") not in (None, "text", "json_object") and not self.accepts_json_schema:
            ctx = {"expected": "'text' or 'json_object'"}
            return Reply(_server_error(
                "1 validation error:\n  " + repr({"type": "literal_error", "loc": ("body", "response_format", "type"),
                                                  "msg": "Input should be 'text' or 'json_object'",
                                                  "input": fmt.get("type"), "ctx": ctx})), status=500)
        if self.wants_alternating_roles and not _roles_alternate(messages):
            return Reply({"object": "error", "message": "Conversation roles must alternate user/assistant/user/"
                          "assistant/...", "type": "BadRequestError", "param": None, "code": 400}, status=400)
        for i, m in enumerate(messages if isinstance(messages, list) else ()):
            if not isinstance(m, dict):
                continue
            if m.get("role") == "developer" and not self.accepts_developer:
                return Reply(_server_error(f"messages.{i}.role: Input should be 'system', 'user', 'assistant', "
                                           "'tool' or 'function'"), status=500)
            if m.get("role") == "assistant" and "content" in m and m["content"] is None \
                    and not self.accepts_null_content:
                return Reply(_server_error(f"messages.{i}.content: Input should be a valid string"), status=500)
            for call in m.get("tool_calls") or () if not self.accepts_unparsed_arguments else ():
                arguments = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
                if isinstance(arguments, str) and not _json_object(arguments):
                    return Reply(_server_error(f"Failed to parse tool call arguments as JSON: {arguments}"), status=500)
        return None

    def cannot_stream(self, answer: "Stream", body: bytes) -> bool:
        """A streamed tool call the model chose by itself (`tool_choice` absent or auto), where this server
        cannot stream one (llama.cpp's chatml-function-calling handler raises after the headers are sent)."""
        if self.streams_auto_tool_calls:
            return False
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return False
        calls = any(isinstance(e, dict) and any((c.get("delta") or {}).get("tool_calls") for c in e.get("choices") or ())
                    for e in answer.events)
        return calls and bool(request.get("tools")) and request.get("tool_choice", "auto") == "auto"

    def usage_asked(self, body: bytes) -> bool:
        """Does a request get a stream's usage chunk (it asked, and this server sends one)?"""
        try:
            options = json.loads(body or b"{}").get("stream_options")
        except (ValueError, AttributeError):
            return False
        return self.sends_stream_usage and isinstance(options, dict) and options.get("include_usage") is True

    def default_answer(self, method: str, path: str, body: bytes) -> Reply | Stream:
        if path.endswith("/chat/completions") and method == "POST":
            req = json.loads(body or b"{}")
            if req.get("stream"):
                events = chat_chunks([self.default_content[:5], self.default_content[5:]],
                                     model=req.get("model", "fake-model"), usage=True)
                events[-2]["usage"] = dict(self.usage)  # sent when asked (_write_stream)
                return Stream(events)
            answer = chat_completion(self.default_content, model=req.get("model", "fake-model"))
            answer["usage"] = dict(self.usage)
            return Reply(answer)
        if path.endswith("/models"):
            return Reply({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0,
                                                      "owned_by": "fake"}]})
        if path.endswith("/embeddings"):
            return Reply({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                          "model": "fake-embed", "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        # Anything else: describe what arrived, so tests can see what was forwarded.
        return Reply({"method": method, "path": path, "body_length": len(body)},
                     headers={"X-Fake-Echo": "yes"})

    def hold(self, h: BaseHTTPRequestHandler, seconds: float) -> bool:
        """Hold the answer's head back for `seconds`, as a local server reading a long prompt sends nothing (the
        head comes with the first token), while watching the connection as llama.cpp's server does: a client
        that closes it ends the hold (noted in `left`) and gets no answer. False then."""
        with self._lock:
            self.holding += 1
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if select.select([h.connection], [], [], 0.02)[0]:
                    try:
                        closed = not h.connection.recv(1, socket.MSG_PEEK)
                    except OSError:
                        closed = True
                    if closed:
                        with self._lock:
                            self.left.append(time.monotonic())
                        h.close_connection = True
                        return False
                    time.sleep(0.02)  # bytes of a next request: not a departure
            return True
        finally:
            with self._lock:
                self.holding -= 1

    # -- writing
    def _write_reply(self, h: BaseHTTPRequestHandler, r: Reply) -> None:
        time.sleep(r.delay)
        data = r.body if isinstance(r.body, bytes) else json.dumps(r.body).encode()
        if r.gzip:
            data = gzip.compress(data)
        h.send_response(r.status)
        headers = {"Content-Type": "application/json", **r.headers}
        if r.gzip:
            headers["Content-Encoding"] = "gzip"
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command == "HEAD":
            return
        try:
            if r.drip:
                for i in range(len(data)):
                    h.wfile.write(data[i:i + 1])
                    h.wfile.flush()
                    time.sleep(r.drip)
            else:
                h.wfile.write(data)
        except OSError:
            pass

    def _write_huge(self, h: BaseHTTPRequestHandler, r: Huge) -> None:
        h.send_response(200)
        h.send_header("Content-Type", r.content_type)
        h.send_header("Content-Length", str(r.size))
        h.end_headers()
        try:
            h.wfile.write(r.head)
            left = r.size - len(r.head)
            while left > 0:
                piece = r.fill[:left]
                h.wfile.write(piece)
                left -= len(piece)
        except OSError:
            h.close_connection = True

    def _write_stream(self, h: BaseHTTPRequestHandler, s: Stream, usage: bool = True) -> None:
        """Write a stream; without `usage` its usage chunk is left out (and `usage` keys of other chunks)."""
        if not usage:
            s = replace(s, events=[_without_usage(e) for e in s.events if not _usage_only(e)])
        if self.nulls_stream_usage:  # OpenAI writes every chunk compact; asked for usage, `"usage":null` last
            s = replace(s, events=[_compact({**e, "usage": e.get("usage")} if usage else e) if isinstance(e, dict)
                                   else e for e in s.events])
        h.send_response(200)
        for k, v in {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked", **s.headers}.items():
            h.send_header(k, v)
        h.end_headers()
        time.sleep(s.first_delay)
        said = False  # any event with data: one ended without is a handler that failed after the headers
        try:
            for i, event in enumerate(s.events):
                if s.cut_after is not None and i >= s.cut_after:
                    h.close_connection = True
                    h.wfile.flush()
                    h.connection.shutdown(socket.SHUT_RDWR)
                    return
                if i and s.delay:
                    time.sleep(s.delay)
                if i in s.pause_at:
                    time.sleep(s.pause_at[i])
                data = _event_bytes(event)
                said = said or b"data:" in data
                parts = [data[: len(data) // 2], data[len(data) // 2:]] if s.split else [data]
                if s.drip:
                    parts = [data[j:j + 1] for j in range(len(data))]
                for part in parts:
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    h.wfile.flush()
                    if s.drip:
                        time.sleep(s.drip)
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
            if not said and "ndjson" not in s.headers.get("Content-Type", ""):  # as uvicorn does after such a
                # handler (see hang_up_next); an NDJSON stream (Ollama's) has no `data:` lines to say
                h.hang_up_next = True  # type: ignore[attr-defined]
        except OSError:
            with self._lock:
                self.closed_streams += 1

    # -- lifecycle
    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


USAGE = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
LLAMA_PING = b": ping - 2026-11-23 23:44:40.000000+00:00\n\n"  # sse_starlette's, every 15 s of a llama.cpp stream


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _roles_alternate(messages: Any) -> bool:
    roles = [m.get("role") for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    return all(not (a == b and a in ("user", "assistant")) for a, b in zip(roles, roles[1:]))


def _server_error(message: str) -> dict:
    return {"error": {"message": message, "type": "internal_server_error", "param": None, "code": None}}


def _usage_only(event: Any) -> bool:
    return isinstance(event, dict) and "usage" in event and not event.get("choices")


def _without_usage(event: Any) -> Any:
    return {k: v for k, v in event.items() if k != "usage"} if isinstance(event, dict) else event


def _compact(event: dict) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _event_bytes(event: Any) -> bytes:
    if isinstance(event, bytes):
        return event
    if event == "[DONE]":
        return b"data: [DONE]\n\n"
    return b"data: " + json.dumps(event).encode() + b"\n\n"
