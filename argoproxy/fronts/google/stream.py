"""The internal chat chunks -> GenerateContentResponse chunks (GoogleStream), framed as SSE events or as the
elements of one JSON array (`framed`).
"""

from __future__ import annotations

from typing import Any, Iterator

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import Exchange, PIECE_COST, StreamState, new_id
from argoproxy.fronts.google.answer import (FINISH_REASONS, GoogleExchange, error_object, function_call_part,
                                            response_object, usage_metadata)
from argoproxy.jsonfast import dumps


OUTPUT_LIMIT = 1024 * 1024  # characters of a streamed answer kept for the journal (the rest is counted)
CHUNK_HEAD = b'{"candidates":[{"content":{"role":"model","parts":'  # every stream chunk starts so


class GoogleStream(StreamState):
    """Chat chunks -> GenerateContentResponse chunks: each text or reasoning delta at once; function calls
    whole (Gemini sends a call's args as one object), in the last chunk with the finish reason and usage. What
    it holds is bounded: tool-call arguments up to ARGS_LIMIT bytes, and OUTPUT_LIMIT characters of the answer
    for the journal. A chunk is written as bytes around its parts: the constant rest is encoded once."""

    def __init__(self, ex: Exchange) -> None:
        super().__init__(ex)
        self.response_id = new_id("resp_")
        self.ids = b'"modelVersion":' + dumps(ex.model) + b',"responseId":"' + self.response_id.encode() + b'"}'
        self.kept: list[tuple[bool | None, list[Any]]] = []  # runs for the journal: (thought, pieces), (None, [call])
        self.kept_chars = 0

    def start(self) -> None:
        pass  # a Gemini stream has no opening event

    def emit(self, parts: bytes, finish: str | None = None, usage: dict[str, Any] | None = None) -> None:
        end = b'},"index":0,"finishReason":"' + finish.encode() + b'"}],' if finish else b'},"index":0}],'
        if usage is not None:
            end += b'"usageMetadata":' + dumps(usage) + b","
        self.events.append({"type": "chunk", "data": CHUNK_HEAD + parts + end + self.ids})

    def keep(self, thought: bool, text: str) -> None:
        """Text for the journal's copy of the answer, in runs (joined once, at the end)."""
        room = OUTPUT_LIMIT - self.kept_chars - PIECE_COST
        if room <= 0:
            return
        text = text[:room]
        self.kept_chars += len(text) + PIECE_COST
        if self.kept and self.kept[-1][0] is thought:
            self.kept[-1][1].append(text)
        else:
            self.kept.append((thought, [text]))

    def reasoning(self, text: str) -> None:
        self.keep(True, text)
        self.emit(b'[{"text":' + dumps(text) + b',"thought":true}]')

    def text(self, text: str) -> None:
        self.keep(False, text)
        self.emit(b'[{"text":' + dumps(text) + b"}]")

    def tool_call(self, key: int, fragment: dict[str, Any]) -> None:
        self.wait(key, fragment, fragment.get("function") or {})  # sent whole, in the last chunk

    def finish(self) -> None:
        calls = [function_call_part(call_id or new_id("call_"), name, args) for _, call_id, name, args in self.waited()]
        finish = FINISH_REASONS.get(self.choice.get("finish_reason") or "", "STOP")
        usage = usage_metadata(self.ex.usage)
        # an empty text part, not an empty list: google-genai's chunk.text is None for a chunk without one, and
        # the SDK's own streaming example (print(chunk.text, end="")) printed "None"
        self.emit(dumps(calls) if calls else b'[{"text":""}]', finish, usage)
        parts: list[dict[str, Any]] = [{"text": "".join(pieces), "thought": True} if thought
                                       else {"text": "".join(pieces)} for thought, pieces in self.kept]
        self.ex.output = response_object(parts + calls or [{"text": ""}], self.ex, finish, usage, self.response_id)
        if isinstance(self.ex, GoogleExchange) and self.ex.sse is False:
            self.events.append({"type": "end"})

    def fail(self, err: ProxyError) -> None:
        self.events.append({"type": "error", "data": dumps(error_object(err.status, err.message))})
        if isinstance(self.ex, GoogleExchange) and self.ex.sse is False:
            self.events.append({"type": "end"})


def framed(events: Iterator[dict[str, Any]], array: bool) -> Iterator[dict[str, Any]]:
    """Without `alt=sse` the stream is one JSON array: `[` before the first element, `,` before the others and
    `]` at the end (each event says which it gets, as the front itself is shared by all requests). With it, the
    events as they are (no generator step of its own per event)."""
    return in_array(events) if array else events


def in_array(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    first = True
    for event in events:
        if event["type"] == "end":
            yield {**event, "frame": b"[]" if first else b"]"}
            return
        yield {**event, "frame": b"[" if first else b",\r\n"}
        first = False
