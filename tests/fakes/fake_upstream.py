"""A fake transport for in-process tests of the pipeline: FakeUpstream is the real upstream client
(argoproxy.upstream.client.Upstream: its retries, replays, URL credentials, trace context and the tracer's hooks
run as they do in the proxy) over FakeTransport, which records each attempt as it would go on the wire and
answers from a queue (an answer, or the exception the attempt raises: a member of the failure family,
argoproxy/upstream/failures.py, as every transport raises) or with an OpenAI-shaped default. No
sockets: a test through the whole door takes about a millisecond."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Iterator

import urllib3

from argoproxy.upstream.client import Upstream
from argoproxy.upstream.wire import UpstreamRequest, UpstreamResponse


class _Raw:
    """The slice of urllib3's response the pipeline touches directly (small pass-through bodies)."""

    def __init__(self, owner: "FakeResponse") -> None:
        self.owner = owner

    def read(self, decode_content: bool = True) -> bytes:
        return b"".join(self.owner.chunks())

    def close(self) -> None:
        self.owner.closed = True


class FakeResponse(UpstreamResponse):
    __slots__ = ("_chunks", "closed")

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


class FakeTransport:
    """A Transport (argoproxy/upstream/transport.py) without a wire: each attempt is kept in `sent` (with the
    deadlines it was given in `timeouts`) and answered by the next of `queue`, raised when it is an exception."""

    def __init__(self, default: Callable[[UpstreamRequest], FakeResponse]) -> None:
        self.sent: list[UpstreamRequest] = []
        self.timeouts: list[tuple[float, float]] = []
        self.queue: list[FakeResponse | BaseException] = []  # an exception: raised as a transport raises it
        self.default = default

    def send(self, req: UpstreamRequest, timeout: tuple[float, float], max_bytes: int) -> UpstreamResponse:
        self.sent.append(req)
        self.timeouts.append(timeout)
        answer = self.queue.pop(0) if self.queue else self.default(req)
        if isinstance(answer, BaseException):
            raise answer
        answer.url = req.url
        answer.max_bytes = max_bytes
        return answer


class FakeUpstream(Upstream):
    """The real client over a FakeTransport; `sent` and `queue` are the transport's."""

    def __init__(self, read_timeout: float = 30.0, max_retries: int = 0) -> None:
        self.fake = FakeTransport(self.default)
        super().__init__(1.0, read_timeout, max_retries, pool_size=1, transport=self.fake_transport)
        self.sent = self.fake.sent
        self.queue = self.fake.queue

    def fake_transport(self, session: object) -> FakeTransport:
        """Every client built with this one's transport (routing's failover client) answers from its queue."""
        return self.fake

    def reply(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.queue.append(FakeResponse("", status, {"Content-Type": "application/json",
                                                    "Content-Length": str(len(data)), **(headers or {})}, [data]))

    def stream(self, chunks: list[bytes]) -> None:
        self.queue.append(FakeResponse("", 200, {"Content-Type": "text/event-stream"}, chunks))

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
