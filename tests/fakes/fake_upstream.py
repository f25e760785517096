"""A fake upstream object for in-process tests of the pipeline: it stands where argoproxy.upstream.client.Upstream
stands (send(UpstreamRequest) -> UpstreamResponse), records what was sent, and answers from a queue or with
an OpenAI-shaped default. No sockets: a test through the whole door takes about a millisecond."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping

import requests
import urllib3

from argoproxy.upstream.trace_context import trace_context_carried
from argoproxy.upstream.wire import DEFAULT_MAX_RESPONSE, UpstreamRequest, UpstreamResponse


class _Raw:
    """The slice of urllib3's response the pipeline touches directly (small pass-through bodies)."""

    def __init__(self, owner: "FakeResponse") -> None:
        self.owner = owner

    def read(self, decode_content: bool = True) -> bytes:
        return b"".join(self.owner.chunks())

    def close(self) -> None:
        self.owner.closed = True


class FakeResponse(UpstreamResponse):
    __slots__ = ("status_code", "reason", "headers", "raw", "_chunks", "closed")

    def __init__(self, url: str, status: int, headers: dict[str, str], chunks: Iterable[bytes],
                 max_bytes: int = 0) -> None:
        super().__init__(url, max_bytes)
        self.status_code, self.reason = status, "OK" if status < 400 else "Error"
        self.headers = urllib3.HTTPHeaderDict(headers)
        self.raw = _Raw(self)
        self._chunks = list(chunks)
        self.closed = False

    def chunks(self, decode: bool = True) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        self.closed = True


def chat_completion(content: str, model: str = "fake-model") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}


def sse_chunks(pieces: list[str], model: str = "fake-model") -> list[bytes]:
    """The SSE events of a streamed chat answer made of these content pieces, one event per chunk."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    events = [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def interleaved_tool_calls(model: str = "fake-model") -> list[dict[str, Any]]:
    """Chat chunks of two parallel tool calls whose argument pieces come interleaved (0, 1, 0, 1), then the
    finish: call_0 is f0({"a": 1}), call_1 is f1({"b": 2})."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}

    def piece(index: int, args: str, head: bool = False) -> dict[str, Any]:
        fragment: dict[str, Any] = {"index": index, "function": {"arguments": args}}
        if head:
            fragment.update(id=f"call_{index}", type="function")
            fragment["function"]["name"] = f"f{index}"
        return {**base, "choices": [{"index": 0, "delta": {"tool_calls": [fragment]}, "finish_reason": None}]}

    finish = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    return [piece(0, '{"a"', True), piece(1, '{"b"', True), piece(0, ": 1}"), piece(1, ": 2}"), finish]


class FakeUpstream:
    def __init__(self, read_timeout: float = 30.0) -> None:
        self.session = requests.Session()  # /health's probe would use it; in-process tests do not probe
        self.connect_timeout, self.read_timeout, self.max_retries = 1.0, read_timeout, 0
        self.max_response_bytes = DEFAULT_MAX_RESPONSE
        self.sent: list[UpstreamRequest] = []
        self.queue: list[FakeResponse] = []
        self.tracer: Any = None  # the real client's AttemptTracer (TRACING on), set by build_proxy

    def reply(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.queue.append(FakeResponse("", status, {"Content-Type": "application/json",
                                                    "Content-Length": str(len(data)), **(headers or {})}, [data]))

    def stream(self, chunks: list[bytes]) -> None:
        self.queue.append(FakeResponse("", 200, {"Content-Type": "text/event-stream"}, chunks))

    def send(self, req: UpstreamRequest, budget: object = None, call: object = None,
             client_headers: Mapping[str, str] | None = None) -> UpstreamResponse:
        if client_headers is not None:  # the client's trace context, carried as the real client carries it
            req = trace_context_carried(req, client_headers)
        traced = self.tracer is not None and call is not None  # one attempt, traced as the real client's are
        if traced:
            req = self.tracer.attempt(call, req)
        self.sent.append(req)
        answer = self.queue.pop(0) if self.queue else self.default(req)
        answer.url = req.url
        answer.max_bytes = self.max_response_bytes
        if traced:
            self.tracer.answered(call, answer.status_code)
        return answer

    def default(self, req: UpstreamRequest) -> FakeResponse:
        body = json.loads(req.body) if req.body and req.body[:1] == b"{" else {}
        if req.url.endswith("/chat/completions"):
            if body.get("stream"):
                return FakeResponse(req.url, 200, {"Content-Type": "text/event-stream"}, sse_chunks(["Hel", "lo"]))
            data = json.dumps(chat_completion("Hello", body.get("model", "fake-model"))).encode()
        elif req.url.endswith("/models"):
            data = json.dumps({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "x"}
                                                          for m in ("gpt-4o", "evil")]}).encode()
        else:
            data = json.dumps({"method": req.method, "url": req.url}).encode()
        return FakeResponse(req.url, 200, {"Content-Type": "application/json", "Content-Length": str(len(data))},
                            [data])
