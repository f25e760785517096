"""A fake ARGO gateway: a real HTTP server on 127.0.0.1 speaking ARGO's legacy wire formats.

    with FakeArgo() as argo:
        argo.base_url                     # "http://127.0.0.1:<port>/argoapi"
        argo.reply = "Hello ü"            # what chat and streamchat answer (str, or dict for tool answers)
        argo.reply = lambda body: ...     # or a function of the request's JSON body returning one of those
        argo.reply_with_text_tool_calls("Let me look.", ("bash", {"command": "ls"}))  # a leaked Claude call
        argo.stream_chunk_size = 1        # bytes per streamed chunk (1 splits every multi-byte char)
        argo.respond_with(500, {"detail": "boom"})   # next request only (optionally path=...)
        ...
        argo.requests[-1].json            # every request is recorded: method, path, headers, body, json

Routes (trailing slashes required, as on the FastAPI gateway; without one the fake answers 404 so
the mistake shows):
  POST {base}/api/v1/resource/chat/       -> {"response": reply}
  POST {base}/api/v1/resource/streamchat/ -> reply as text/plain, chunked, in `stream_chunk_size`
                                             byte chunks with `stream_delay` seconds between them;
                                             gzip (streamed, sync-flushed) when `stream_gzip` is set
                                             and the request's Accept-Encoding allows it
  POST {base}/api/v1/resource/embed/      -> {"embedding": [[...], ...]}, deterministic vectors
                                             (`FakeArgo.vector(text, model)`); >16 prompts -> 400
  GET  {base}/api/v1/models/              -> `models_payload` (new-shape list by default; also /v1/models)
and ARGO's native APIs (the model as ARGO names it, e.g. claudeopus46, gpt5):
  POST {base}/v1/chat/completions         -> an OpenAI chat completion (SSE with "stream": true) of `reply`
  POST {base}/v1/messages                 -> an Anthropic message (SSE events with "stream": true) of `reply`
  POST {base}/v1/messages/count_tokens    -> {"input_tokens": n}
Every chat route refuses what real ARGO refuses for the model (tests/fakes/argo_rules.py: gpt-5's temperature,
Claude's thinking.type enabled, both sampling parameters on Claude 4.5+...), with ARGO's status and shape; the
Anthropic endpoint also what the client's anthropic-version refuses (2026-10-21 on: any sampling parameter).
A JSON body that is not UTF-8 or holds a lone surrogate escape gives 400 (tests/fakes/strict_json.py: in
`{"detail": ...}`, or the native API's shape). A `user` missing from a chat/embed body gives 422; with
`registered_users` set, an unknown user gets ARGO's 200 "AUTHENTICATION NOTICE FROM ARGO" text. GET on a POST route gives 405 {"detail": ...}.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from tests.fakes import argo_rules
from tests.fakes.quiet_server import QuietServer
from tests.fakes.strict_json import json_problem

PREFIX = "/argoapi"
CHAT_PATH = "/api/v1/resource/chat/"
STREAM_PATH = "/api/v1/resource/streamchat/"
EMBED_PATH = "/api/v1/resource/embed/"
MODELS_PATH = "/api/v1/models/"
NATIVE_CHAT_PATH = "/v1/chat/completions"
NATIVE_MESSAGES_PATH = "/v1/messages"
NATIVE_MODELS_PATH = "/v1/models"
NATIVE_COUNT_PATH = "/v1/messages/count_tokens"
POST_PATHS = (CHAT_PATH, STREAM_PATH, EMBED_PATH)
NATIVE_PATHS = (NATIVE_CHAT_PATH, NATIVE_MESSAGES_PATH, NATIVE_COUNT_PATH)

MAX_EMBED_PROMPTS = 16
EMBED_DIMENSIONS = {"ada002": 1536, "v3small": 1536, "v3large": 3072}
AUTH_NOTICE_TEXT = (
    "AUTHENTICATION NOTICE FROM ARGO: the user you supplied is not registered to use Argo. "
    "Please contact the CELS Helpdesk to request access."
)
DEFAULT_MODELS_PAYLOAD = {
    "object": "list",
    "data": [
        {"id": "GPT-4o", "internal_id": "gpt4o", "object": "model", "created": 1700000000, "owned_by": "openai"},
        {"id": "o3-mini", "internal_id": "gpto3mini", "object": "model", "created": 1700000000, "owned_by": "openai"},
        {"id": "Claude Sonnet 4.6", "internal_id": "claudesonnet46", "object": "model", "created": 1700000000, "owned_by": "anthropic"},
        {"id": "Gemini 2.5 Pro", "internal_id": "gemini25pro", "object": "model", "created": 1700000000, "owned_by": "google"},
    ],
}


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the /argoapi prefix and without the query string
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    json: Any = None


@dataclass
class CannedResponse:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None


DEFAULT_REPLY = "Hello from fake ARGO."  # what a new fake answers


class FakeArgo:
    """The fake gateway; use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        self.reply: str | dict[str, Any] | Callable[[dict[str, Any]], str | dict[str, Any]] = DEFAULT_REPLY
        self.stream_chunk_size: int | None = None  # None: the whole body in one chunk
        self.stream_delay: float = 0.0
        self.stream_gzip: bool = False
        self.delay: float = 0.0  # before answering any request (for timeout tests)
        self.embedding_dimensions: int | None = None  # None: the model's real size
        self.registered_users: set[str] | None = None  # None: every user is accepted
        self.models_payload: Any = DEFAULT_MODELS_PAYLOAD
        self.requests: list[RecordedRequest] = []
        self._canned: list[CannedResponse] = []
        self._lock = threading.Lock()
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeArgo:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-argo", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeArgo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses

    @property
    def port(self) -> int:
        assert self._server, "FakeArgo is not running"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """Like https://apps-dev.inside.anl.gov/argoapi (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    @property
    def chat_url(self) -> str:
        return self.base_url + CHAT_PATH

    @property
    def stream_url(self) -> str:
        return self.base_url + STREAM_PATH

    @property
    def embed_url(self) -> str:
        return self.base_url + EMBED_PATH

    @property
    def native_base_url(self) -> str:
        """ARGO's OpenAI-compatible base (NATIVE_OPENAI_BASE_URL); {native_base_url}messages is the Anthropic one."""
        return self.base_url + "/v1/"

    @property
    def models_url(self) -> str:
        return self.base_url + MODELS_PATH

    # -- test controls

    def respond_with(
        self,
        status: int = 200,
        body: str | bytes | dict[str, Any] | list[Any] | None = None,
        *,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        path: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests (to `path`, e.g. CHAT_PATH, when given) with this status and body.

        A dict/list body is sent as JSON, a str/bytes body as text/plain unless `content_type` says otherwise.
        """
        if isinstance(body, (dict, list)):
            raw, default_type = json.dumps(body).encode(), "application/json"
        elif isinstance(body, str):
            raw, default_type = body.encode(), "text/plain; charset=utf-8"
        else:
            raw, default_type = body or b"", "text/plain; charset=utf-8"
        canned = CannedResponse(status, raw, content_type or default_type, dict(headers or {}), path)
        with self._lock:
            self._canned.extend([canned] * times)

    def reply_with_text_tool_calls(self, text: str, *calls: tuple[str, dict[str, Any]]) -> None:
        """Answer as ARGO's gateway does when a Claude tool call leaks into the text: `content` is the text
        followed by the Python repr of each tool_use block, `tool_calls` is empty (streamchat sends the text)."""
        self.reply = {"content": text + "".join(leaked_tool_use(name, arguments, f"toolu_vrtx_0{n}Fake")
                                                for n, (name, arguments) in enumerate(calls)), "tool_calls": []}

    def respond_with_auth_notice(self, *, path: str | None = None) -> None:
        """Answer the next request as ARGO does for an unregistered username: 200 with the notice text."""
        self.respond_with(200, AUTH_NOTICE_TEXT, path=path)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests for one route path, e.g. CHAT_PATH."""
        return [r for r in self.requests if r.path == path]

    def reply_for(self, body: dict[str, Any]) -> str | dict[str, Any]:
        """The `response` value for this request body: `reply`, or what it returns when it is a function."""
        return self.reply(body) if callable(self.reply) else self.reply

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._canned.clear()

    @staticmethod
    def vector(text: str, model: str = "v3small", dimensions: int | None = None) -> list[float]:
        """The deterministic embedding the fake returns for `text`."""
        size = dimensions or EMBED_DIMENSIONS.get(model, 1536)
        rng = random.Random(hashlib.sha256(f"{model}\0{text}".encode()).digest())
        return [round(rng.uniform(-1, 1), 6) for _ in range(size)]

    # -- used by the handler

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_canned(self, path: str) -> CannedResponse | None:
        with self._lock:
            for i, canned in enumerate(self._canned):
                if canned.path in (None, path):
                    return self._canned.pop(i)
        return None


class _Server(QuietServer):
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    fake: FakeArgo
    protocol_version = "HTTP/1.1"  # chunked responses and keep-alive, like the real gateway

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # -- dispatch

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        path = path[len(PREFIX):] if path.startswith(PREFIX) else path
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(RecordedRequest(method, path, headers, raw, parsed))
        if self.fake.delay:
            time.sleep(self.fake.delay)
        canned = self.fake._take_canned(path)
        if canned:
            return self._send(canned.status, canned.body, canned.content_type, canned.headers)
        problem = json_problem(raw) if method == "POST" else None
        if problem is not None:  # ARGO's own shape on its routes, the native APIs' on theirs
            return self._send_json(400, self._invalid_json(path, f"The request body is not valid JSON: {problem}."))
        if method == "GET" and path in (MODELS_PATH, NATIVE_MODELS_PATH):  # the same data on both (argo-proxy.md 1.5)
            return self._send_json(200, self.fake.models_payload)
        if method == "POST" and path in NATIVE_PATHS:
            return self._native(path, parsed, headers.get("anthropic-version"))
        if path not in (*POST_PATHS, MODELS_PATH):
            return self._send_json(404, {"detail": "Not Found"})
        if (path == MODELS_PATH) != (method == "GET"):
            return self._send_json(405, {"detail": "Method Not Allowed"})
        if not isinstance(parsed, dict):
            return self._send_json(422, {"detail": [{"loc": ["body"], "msg": "a JSON object is required", "type": "value_error"}]})
        if not parsed.get("user"):
            return self._send_json(422, {"detail": [{"loc": ["body", "user"], "msg": "field required", "type": "value_error.missing"}]})
        if self.fake.registered_users is not None and parsed["user"] not in self.fake.registered_users:
            return self._send(200, AUTH_NOTICE_TEXT.encode(), "text/plain; charset=utf-8")
        refused = argo_rules.refusal("standard", parsed) if path in (CHAT_PATH, STREAM_PATH) else None
        if refused is not None:
            return self._send_json(*refused)
        if path == CHAT_PATH:
            return self._send_json(200, {"response": self.fake.reply_for(parsed)})
        if path == STREAM_PATH:
            return self._stream(self._reply_text(parsed))
        return self._embed(parsed)

    @staticmethod
    def _invalid_json(path: str, message: str) -> dict[str, Any]:
        if path == NATIVE_CHAT_PATH:
            return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        if path in NATIVE_PATHS:
            return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        return {"detail": message}

    # -- routes

    def _native(self, path: str, body: Any, version: str | None) -> None:
        """ARGO's OpenAI-compatible and Anthropic endpoints: the reply as a chat completion or a message
        (`version`: the client's anthropic-version, relayed by ARGO to Anthropic's API)."""
        if not isinstance(body, dict):
            return self._send_json(400, {"error": {"message": "a JSON object is required", "type": "BadRequestError"}})
        endpoint = "openai" if path == NATIVE_CHAT_PATH else "anthropic"
        refused = argo_rules.model_refusal(endpoint, body.get("model"))
        if path == NATIVE_COUNT_PATH:
            refused = refused or argo_rules.version_refusal(body, version)
            if refused is None:
                return self._send_json(200, {"input_tokens": len(json.dumps(body.get("messages"))) // 4})
        refused = refused or argo_rules.refusal(endpoint, body, version)
        if refused is not None:
            return self._send_json(*refused)
        text, model = self._reply_text(body), str(body.get("model"))
        if path == NATIVE_CHAT_PATH:
            events = native_chat_events(text, model) if body.get("stream") else None
            whole = {"id": "chatcmpl-argo", "object": "chat.completion", "created": 1700000000, "model": model,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
        else:
            events = native_message_events(text, model) if body.get("stream") else None
            whole = {"id": "msg_vrtx_fake", "type": "message", "role": "assistant", "model": model,
                     "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                     "usage": {"input_tokens": 5, "output_tokens": 7}}
        if events is None:
            return self._send_json(200, whole)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self._write_chunk(event)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _reply_text(self, body: dict[str, Any]) -> str:
        reply = self.fake.reply_for(body)
        if isinstance(reply, dict):  # streamchat cannot do tools: only the text streams
            return str(reply.get("content") or "")
        return reply

    def _embed(self, body: dict[str, Any]) -> None:
        prompts = body.get("prompt")
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            return self._send_json(422, {"detail": "prompt must be a list of strings"})
        if len(prompts) > MAX_EMBED_PROMPTS:
            return self._send_json(400, {"detail": f"At most {MAX_EMBED_PROMPTS} prompts are allowed per request, got {len(prompts)}."})
        model = str(body.get("model") or "v3small")
        vectors = [FakeArgo.vector(p, model, self.fake.embedding_dimensions) for p in prompts]
        return self._send_json(200, {"embedding": vectors})

    def _stream(self, text: str) -> None:
        data = text.encode("utf-8")
        size = self.fake.stream_chunk_size or max(len(data), 1)
        pieces = [data[i:i + size] for i in range(0, len(data), size)]
        use_gzip = self.fake.stream_gzip and "gzip" in (self.headers.get("Accept-Encoding") or "")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        if use_gzip:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        compressor = zlib.compressobj(wbits=31) if use_gzip else None  # 31: gzip container
        for i, piece in enumerate(pieces):
            if i and self.fake.stream_delay:
                time.sleep(self.fake.stream_delay)
            if compressor:
                # a sync flush per piece keeps the gzip stream incremental, as a streaming server's is
                piece = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
            self._write_chunk(piece)
        if compressor:
            self._write_chunk(compressor.flush())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- output

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


def leaked_tool_use(name: str, arguments: dict[str, Any], call_id: str = "toolu_vrtx_01Fake") -> str:
    """A Claude tool_use block as ARGO leaks it into text (argo-proxy's captured cases): its Python repr."""
    return repr({"id": call_id, "input": arguments, "name": name, "type": "tool_use", "cache_control": None})


def native_chat_events(text: str, model: str) -> list[bytes]:
    base = {"id": "chatcmpl-argo", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
              {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}]
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def native_message_events(text: str, model: str) -> list[bytes]:
    message = {"id": "msg_vrtx_fake", "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 0}}
    events = [("message_start", {"type": "message_start", "message": message}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": text}}),
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                 "usage": {"output_tokens": 7}}),
              ("message_stop", {"type": "message_stop"})]
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


def gunzip(data: bytes) -> bytes:
    """Decompress a gzip body (for tests that read the raw stream)."""
    return gzip.decompress(data)
