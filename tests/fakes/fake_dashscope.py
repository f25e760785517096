"""A real DashScope-native HTTP server on loopback for tests.

Speaks the native protocol (not compatible mode): text generation (JSON, or SSE with
``X-DashScope-SSE: enable``: ``id:N`` / ``event:result`` / ``:HTTP_STATUS/200`` / ``data:{...}``,
cumulative usage, ``finish_reason`` "null" until the end, incremental_output honoured, optional
reasoning_content and tool calls) and text embedding. Checks ``Authorization: Bearer <key>``,
enforces DashScope's thinking rules, records every request, and can be told to fail.

    with FakeDashScope(api_key="k") as ds:
        url = ds.base_url + dashscope.TEXT_GENERATION_PATH
        ds.fail_next("Throttling.RateQuota", 429)         # next request -> flat error
        ds.error_mid_stream(after=2)                      # next stream -> event:error after 2 events
        ds.tool_calls = True                              # answer requests that carry tools with a tool call
        ds.received[-1].json                              # what arrived
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.quiet_server import QuietServer
from tests.fakes.strict_json import json_problem

GENERATION = "/api/v1/services/aigc/text-generation/generation"
EMBEDDING = "/api/v1/services/embeddings/text-embedding/text-embedding"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Failure:
    code: str
    status: int
    message: str
    after: int | None = None  # None: fail the request; N: event:error after N stream events


class DashScopeError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeDashScope:
    """``with FakeDashScope(api_key="k") as ds:`` -> ``ds.base_url`` is ``http://127.0.0.1:PORT/api/v1/``."""

    def __init__(self, api_key: str = "test-dashscope-key", *, piece_size: int = 4, delay: float = 0.0) -> None:
        self.api_key = api_key
        self.reply = "Hello from fake DashScope!"
        self.reasoning = "Let me think about it."
        self.tool_calls = False  # when True and the request has tools: call the first tool
        self.tool_arguments = '{"location": "Paris", "unit": "celsius"}'
        self.piece_size = piece_size  # characters per stream event
        self.delay = delay  # seconds between stream events
        self.embedding_dimension = 8
        self.max_batch = 10
        self.cut_after: int | None = None  # the next stream ends cleanly after this many events, unfinished
        self.received: list[Received] = []
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self.server = QuietServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.root_url = f"http://127.0.0.1:{self.port}/"
        self.base_url = self.root_url + "api/v1/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- scripting
    def fail_next(self, code: str = "InternalError", status: int = 500, message: str | None = None) -> None:
        """The next request is answered with a flat DashScope error."""
        with self._lock:
            self._failures.append(Failure(code, status, message or f"fake {code}"))

    def error_mid_stream(self, after: int = 1, code: str = "InternalError", status: int = 500,
                         message: str | None = None) -> None:
        """The next streamed request sends ``after`` normal events, then an ``event:error`` frame."""
        with self._lock:
            self._failures.append(Failure(code, status, message or f"fake {code}", after=after))

    def _take_failure(self) -> Failure | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    # -- lifecycle
    def __enter__(self) -> "FakeDashScope":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- HTTP
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.received.append(Received("POST", self.path, dict(self.headers.items()), body))
                fake._serve(self, body)

            def do_GET(self) -> None:
                fake.received.append(Received("GET", self.path, dict(self.headers.items()), b""))
                fake._send_json(self, 404, _error_body("InvalidURL", "Requested URL does not exist."))

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        stream = (h.headers.get("X-DashScope-SSE") or "").lower() == "enable" or \
            "text/event-stream" in (h.headers.get("Accept") or "")
        try:
            self._check_auth(h)
            request = _parse_json(body)
            failure = self._take_failure()
            if failure is not None and (failure.after is None or not stream):
                raise DashScopeError(failure.status, failure.code, failure.message)
            path = h.path.partition("?")[0]
            if path == GENERATION:
                self._generation(h, request, stream, failure)
            elif path == EMBEDDING:
                self._send_json(h, 200, self._embeddings(request))
            else:
                raise DashScopeError(404, "InvalidURL", "Requested URL does not exist.")
        except DashScopeError as err:
            if stream:
                self._send_stream_error(h, err)
            else:
                self._send_json(h, err.status, _error_body(err.code, err.message))

    def _check_auth(self, h: BaseHTTPRequestHandler) -> None:
        auth = h.headers.get("Authorization")
        if not auth:
            raise DashScopeError(401, "InvalidApiKey", "No API-key provided.")
        if auth != f"Bearer {self.api_key}":
            raise DashScopeError(401, "InvalidApiKey", "Invalid API-key provided.")

    # -- text generation
    def _generation(self, h: BaseHTTPRequestHandler, req: dict[str, Any], stream: bool, failure: Failure | None) -> None:
        params = req.get("parameters") or {}
        messages = (req.get("input") or {}).get("messages")
        if not req.get("model"):
            raise DashScopeError(400, "InvalidParameter", "Model not specified.")
        if not messages and not (req.get("input") or {}).get("prompt"):
            raise DashScopeError(400, "InvalidParameter", "Input messages or prompt is required.")
        thinking = bool(params.get("enable_thinking"))
        incremental = bool(params.get("incremental_output"))
        # The real service's rules for thinking models (see peers.md 2.3).
        if thinking and not stream:
            raise DashScopeError(400, "InvalidParameter",
                                 "parameter.enable_thinking must be set to false for non-streaming calls")
        if thinking and not incremental:
            raise DashScopeError(400, "InvalidParameter",
                                 'The incremental_output parameter must be "true" when enable_thinking is true')
        plan = self._plan(req, thinking)
        if stream:
            self._stream_generation(h, plan, params.get("result_format"), incremental, failure)
        else:
            self._send_json(h, 200, self._result(plan, plan["content"], plan["reasoning"], plan["arguments"],
                                                 plan["finish"], params.get("result_format"), plan["output_tokens"]))

    def _plan(self, req: dict[str, Any], thinking: bool) -> dict[str, Any]:
        """What the answer will be: text or a tool call, optional reasoning, token counts."""
        params = req.get("parameters") or {}
        tools = params.get("tools") or []
        tool = None
        if self.tool_calls and tools:
            tool = (tools[0].get("function") or {}).get("name")
        content = "" if tool else self.reply
        reasoning = self.reasoning if thinking else ""
        arguments = self.tool_arguments if tool else ""
        prompt_chars = len(json.dumps((req.get("input") or {}), ensure_ascii=False))
        return {
            "request_id": str(uuid.uuid4()),
            "content": content, "reasoning": reasoning, "tool": tool, "arguments": arguments,
            "call_id": f"call_{uuid.uuid4().hex[:24]}",
            "finish": "tool_calls" if tool else "stop",
            "input_tokens": max(1, prompt_chars // 4),
            "output_tokens": _tokens(content + reasoning + arguments),
            "reasoning_tokens": _tokens(reasoning),
        }

    def _result(self, plan: dict[str, Any], content: str, reasoning: str, arguments: str, finish: str,
                result_format: str | None, output_tokens: int, first_tool_fragment: bool = True) -> dict[str, Any]:
        usage: dict[str, Any] = {"input_tokens": plan["input_tokens"], "output_tokens": output_tokens,
                                 "total_tokens": plan["input_tokens"] + output_tokens}
        if plan["reasoning"]:
            usage["output_tokens_details"] = {"reasoning_tokens": min(plan["reasoning_tokens"], output_tokens)}
        if result_format != "message":  # DashScope's default result_format is "text"
            return {"output": {"text": content, "finish_reason": finish}, "usage": usage, "request_id": plan["request_id"]}
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if plan["reasoning"]:
            message["reasoning_content"] = reasoning
        if plan["tool"] and (arguments or first_tool_fragment):
            function: dict[str, Any] = {"arguments": arguments}
            if first_tool_fragment:
                function["name"] = plan["tool"]
            # DashScope repeats index/type on every fragment and sends an empty id after the first.
            message["tool_calls"] = [{"index": 0, "id": plan["call_id"] if first_tool_fragment else "",
                                      "type": "function", "function": function}]
        return {"output": {"choices": [{"finish_reason": finish, "message": message}]}, "usage": usage,
                "request_id": plan["request_id"]}

    def _stream_events(self, plan: dict[str, Any], result_format: str | None, incremental: bool) -> list[dict[str, Any]]:
        """The data objects of a stream: reasoning pieces, then content (or tool argument) pieces, then the end."""
        size = self.piece_size
        steps: list[tuple[str, str]] = [("reasoning", plan["reasoning"][i:i + size])
                                        for i in range(0, len(plan["reasoning"]), size)]
        body_kind, body = ("arguments", plan["arguments"]) if plan["tool"] else ("content", plan["content"])
        steps += [(body_kind, body[i:i + size]) for i in range(0, len(body), size)]
        sent = {"reasoning": "", "content": "", "arguments": ""}
        events = []
        for kind, piece in steps:
            sent[kind] += piece
            view = {k: (v if not incremental else (piece if k == kind else "")) for k, v in sent.items()}
            first_tool = not incremental or (kind == "arguments" and sent["arguments"] == piece)
            events.append(self._result(plan, view["content"], view["reasoning"], view["arguments"], "null",
                                       result_format, _tokens("".join(sent.values())), first_tool))
        # The last event carries the finish reason; incremental streams send no new text with it.
        last = sent if not incremental else {"reasoning": "", "content": "", "arguments": ""}
        events.append(self._result(plan, last["content"], last["reasoning"], last["arguments"], plan["finish"],
                                   result_format, plan["output_tokens"], not incremental))
        return events

    def _stream_generation(self, h: BaseHTTPRequestHandler, plan: dict[str, Any], result_format: str | None,
                           incremental: bool, failure: Failure | None) -> None:
        self._start_stream(h)
        cut, self.cut_after = self.cut_after, None
        try:
            for number, event in enumerate(self._stream_events(plan, result_format, incremental), start=1):
                if cut is not None and number > cut:  # the body ends well framed, the answer does not
                    break
                if failure is not None and number > failure.after:
                    self._write_event(h, number, "error", failure.status,
                                      _error_body(failure.code, failure.message, plan["request_id"]))
                    break
                if number > 1 and self.delay:
                    time.sleep(self.delay)
                self._write_event(h, number, "result", 200, event)
            self._end_stream(h)
        except OSError:
            pass  # the client went away

    # -- embeddings
    def _embeddings(self, req: dict[str, Any]) -> dict[str, Any]:
        texts = (req.get("input") or {}).get("texts")
        if isinstance(texts, str):
            texts = [texts]
        if not req.get("model"):
            raise DashScopeError(400, "InvalidParameter", "Model not specified.")
        if not texts or not all(isinstance(t, str) for t in texts):
            raise DashScopeError(400, "InvalidParameter", "input.texts should be a list of strings")
        if len(texts) > self.max_batch:
            raise DashScopeError(400, "InvalidParameter", f"batch size is invalid, it should not be larger than {self.max_batch}.")
        dimension = (req.get("parameters") or {}).get("dimension") or self.embedding_dimension
        return {
            "output": {"embeddings": [{"text_index": i, "embedding": _vector(t, dimension)} for i, t in enumerate(texts)]},
            "usage": {"total_tokens": sum(_tokens(t) for t in texts)},
            "request_id": str(uuid.uuid4()),
        }

    # -- writing
    def _send_json(self, h: BaseHTTPRequestHandler, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        try:
            h.wfile.write(data)
        except OSError:
            pass

    def _start_stream(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

    def _write_event(self, h: BaseHTTPRequestHandler, number: int, event: str, status: int, data: dict[str, Any]) -> None:
        frame = f"id:{number}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{json.dumps(data, ensure_ascii=False)}\n\n"
        raw = frame.encode()
        h.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
        h.wfile.flush()

    def _end_stream(self, h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def _send_stream_error(self, h: BaseHTTPRequestHandler, err: DashScopeError) -> None:
        # A streamed request that fails up front: the real service answers with the error status
        # and a single event:error frame.
        h.send_response(err.status)
        h.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        try:
            self._write_event(h, 1, "error", err.status, _error_body(err.code, err.message))
            self._end_stream(h)
        except OSError:
            pass


def _error_body(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": request_id or str(uuid.uuid4())}


def _parse_json(body: bytes) -> dict[str, Any]:
    problem = json_problem(body)  # not UTF-8, or a lone surrogate: a strict reader's refusal
    if problem is not None:
        raise DashScopeError(400, "InvalidParameter", f"The request body is not valid JSON: {problem}.")
    try:
        obj = json.loads(body or b"")
    except ValueError:
        raise DashScopeError(400, "InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(obj, dict):
        raise DashScopeError(400, "InvalidParameter", "The request body must be a JSON object.")
    return obj


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _vector(text: str, dimension: int) -> list[float]:
    """Deterministic pseudo-embedding: the same text always gives the same vector."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(int(dimension))]
