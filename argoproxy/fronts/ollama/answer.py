"""The internal answer as Ollama's: a whole chat.completion as one `/api/chat` or `/api/generate` object, its
chunks as NDJSON lines (`done: false` while it runs, a last line with `done: true`, `done_reason`, token counts and
durations in nanoseconds), embeddings as `/api/embed`'s or `/api/embeddings`' object. An error after the first
line is Ollama's own last line, `{"error": "..."}`.

Ollama sends a tool call whole, its arguments as an object: the calls' fragments are held (within ARGS_LIMIT) and
sent in one line before the last one. Durations: the time from the request's translation to the first answer
text is `prompt_eval_duration`, from there to the end `eval_duration` (a whole answer's time is split by the two
token counts); `load_duration` is 0 (nothing is loaded here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import Exchange, Pieces, StreamState, embedding_vectors, new_id, whole_answer
from argoproxy.jsonfast import dumps
from argoproxy.pipeline.answer_shape import bounded_loads

DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "function_call": "stop",
                "content_filter": "stop"}


def rfc3339(when: float | None = None) -> str:
    """A time as Ollama writes `created_at` (RFC 3339, UTC)."""
    moment = datetime.fromtimestamp(time.time() if when is None else when, timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class OllamaExchange(Exchange):
    """An Ollama request: which route it came by (chat, generate, embed, embeddings) and when it began."""
    route: str = "chat"
    started: int = field(default_factory=time.perf_counter_ns)
    first: int | None = None  # when the first answer text came (a stream)


def durations(ex: OllamaExchange, usage: dict[str, Any] | None) -> dict[str, Any]:
    """Token counts and durations in nanoseconds, as the last line (or a whole answer) carries them."""
    now = time.perf_counter_ns()
    total = max(now - ex.started, 1)
    prompt_tokens, output_tokens = counts(usage)
    if ex.first is not None:
        prompt_time = ex.first - ex.started
    else:  # a whole answer: split by the token counts (a model reads a prompt faster than it writes)
        tokens = prompt_tokens + output_tokens
        prompt_time = total * prompt_tokens // tokens if tokens else 0
    return {"total_duration": total, "load_duration": 0, "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": prompt_time, "eval_count": output_tokens, "eval_duration": total - prompt_time}


def counts(usage: Any) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return 0, 0
    prompt, output = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (prompt if isinstance(prompt, int) else 0), (output if isinstance(output, int) else 0)


def head(ex: OllamaExchange) -> dict[str, Any]:
    return {"model": ex.model, "created_at": rfc3339()}


def ollama_call(position: int, call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    """A tool call as Ollama writes it: its arguments an object (text that is no JSON object: under `input`)."""
    try:
        value = bounded_loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        value = {"input": arguments}
    if not isinstance(value, dict):
        value = {"input": value}
    call: dict[str, Any] = {"function": {"index": position, "name": name, "arguments": value}}
    if call_id:
        call["id"] = call_id
    return call


def whole(completion: dict[str, Any], ex: OllamaExchange) -> dict[str, Any]:
    """A whole chat.completion as /api/chat's or /api/generate's object."""
    if ex.route in ("embed", "embeddings"):
        return embeddings(completion, ex)
    answer = whole_answer(completion, ex)
    text = answer.text or answer.refusal or ""
    obj = head(ex)
    if ex.route == "generate":
        obj["response"] = text
        if answer.reasoning:
            obj["thinking"] = answer.reasoning
    else:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if answer.reasoning:
            message["thinking"] = answer.reasoning
        if answer.calls:
            message["tool_calls"] = [ollama_call(n, c.get("id"), (c.get("function") or {}).get("name") or "",
                                                 (c.get("function") or {}).get("arguments"))
                                     for n, c in enumerate(answer.calls)]
        obj["message"] = message
    obj["done"] = True
    obj["done_reason"] = DONE_REASONS.get(answer.choice.get("finish_reason") or "stop", "stop")
    obj.update(durations(ex, ex.usage))
    return obj


def embeddings(result: dict[str, Any], ex: OllamaExchange) -> dict[str, Any]:
    """An embeddings list as /api/embed's object (`embeddings`, in input order) or /api/embeddings' (`embedding`)."""
    vectors = embedding_vectors(result, ex)
    if ex.route == "embeddings":
        return {"embedding": vectors[0] if vectors else []}
    stats = durations(ex, ex.usage)
    return {"model": ex.model, "embeddings": vectors, "total_duration": stats["total_duration"], "load_duration": 0,
            "prompt_eval_count": stats["prompt_eval_count"]}


class OllamaStream(StreamState):
    """Chat chunks -> Ollama's NDJSON lines: each text or reasoning delta at once; tool calls whole, in one line
    before the last. Kept for the journal's copy of the answer: the text within ex.keep."""

    def __init__(self, ex: OllamaExchange) -> None:
        super().__init__(ex)
        self.oex = ex
        self.generate = ex.route == "generate"
        self.texts: dict[str, Pieces] = {"content": Pieces(), "thinking": Pieces()}

    def start(self) -> None:
        pass  # an Ollama stream has no opening line

    def line(self, key: str, text: str) -> None:
        ex = self.oex
        if ex.first is None:
            ex.first = time.perf_counter_ns()
        if self.keeping(len(text)):
            self.texts[key].append(text)
        obj = head(ex)
        if self.generate:
            obj["response"] = text if key == "content" else ""
            if key == "thinking":
                obj["thinking"] = text
        else:
            message = {"role": "assistant", "content": text if key == "content" else ""}
            if key == "thinking":
                message["thinking"] = text
            obj["message"] = message
        obj["done"] = False
        self.events.append({"type": "line", "data": obj})

    def text(self, text: str) -> None:
        self.line("content", text)

    def reasoning(self, text: str) -> None:
        self.line("thinking", text)

    def tool_call(self, key: Any, fragment: dict[str, Any]) -> None:
        self.wait(key, fragment, fragment.get("function") or {})  # sent whole, in the line before the last

    def finish(self) -> None:
        ex = self.oex
        calls = [ollama_call(n, call_id or new_id("call_"), name, args)
                 for n, (_, call_id, name, args) in enumerate(self.waited())]
        if calls:
            obj = head(ex)
            obj["message"] = {"role": "assistant", "content": "", "tool_calls": calls}
            obj["done"] = False
            self.events.append({"type": "line", "data": obj})
        last = head(ex)
        if self.generate:
            last["response"] = ""
        else:
            last["message"] = {"role": "assistant", "content": ""}
        last["done"] = True
        last["done_reason"] = DONE_REASONS.get(self.choice.get("finish_reason") or "stop", "stop")
        last.update(durations(ex, ex.usage))
        self.events.append({"type": "line", "data": last})
        self.ex.output = self.output(last, calls)

    def output(self, last: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
        """The whole answer the stream made, for the journal."""
        out = dict(last)
        content, thinking = "".join(self.texts["content"]), "".join(self.texts["thinking"])
        if self.generate:
            out["response"] = content
            if thinking:
                out["thinking"] = thinking
        else:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = calls
            out["message"] = message
        return out

    def fail(self, err: ProxyError) -> None:
        self.events.append({"type": "error", "data": {"error": err.message}})


def keepalive_line(ex: OllamaExchange) -> bytes:
    """What SSE_KEEPALIVE sends while the upstream is silent: a line with no text (Ollama's clients parse every
    line as JSON, so a blank line or a comment would break them)."""
    obj = head(ex)
    if ex.route == "generate":
        obj["response"] = ""
    else:
        obj["message"] = {"role": "assistant", "content": ""}
    obj["done"] = False
    return dumps(obj) + b"\n"
