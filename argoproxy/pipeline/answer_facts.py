"""What an upstream's answer says of itself, read for tracing (TRACING on; tracing/tracer.py): its id, the model
that answered, each choice's finish reason, and, only when TRACING_CONTENT is on, its messages (bounded).

A stream is read as its events pass (an item filter, pipeline/filters.py): events are parsed until one gives
the id and model, then only those that name a finish reason; the others pass as they came. With content every
event is parsed, and the text kept up to CONTENT_CHARS. A whole answer is read once (`whole_facts`), its usage in
the same pass (`usage`: the answer encoder takes it instead of looking for it again). Pure: no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from argoproxy.jsonfast import loads
from argoproxy.upstream import sse

CONTENT_CHARS = 64 * 1024  # the most answer text (all choices, reasoning and tool arguments) a span records
TEXT_MOST = 256  # the most of an answer's id or model, and of a client's model or stop sequence, a span records
_FINISH = b'"finish_reason"'
NOT_READ: Any = object()  # AnswerFacts.usage of an answer whose usage was not read with its facts


class AnswerFacts(msgspec.Struct):
    """What an answer says of itself (made in C: one per traced answer)."""
    id: str | None = None
    model: str | None = None
    finish_reasons: list[str] = msgspec.field(default_factory=list)
    output: list[dict[str, Any]] | None = None  # the GenAI conventions' output messages (TRACING_CONTENT on)
    usage: Any = NOT_READ  # a whole answer's top-level `usage` object (None: none, or not an object)


class Choice:
    """One choice's answer assembled from a stream's deltas, within the reader's bound."""

    __slots__ = ("role", "text", "reasoning", "calls", "finish")

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}  # by the fragment's index
        self.finish: str | None = None

    def message(self) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if self.reasoning:
            parts.append({"type": "reasoning", "content": "".join(self.reasoning)})
        if self.text:
            parts.append({"type": "text", "content": "".join(self.text)})
        for call in self.calls.values():
            parts.append({"type": "tool_call", "id": call.get("id"), "name": call.get("name"),
                          "arguments": "".join(call["arguments"])})
        out: dict[str, Any] = {"role": self.role, "parts": parts}
        if self.finish is not None:
            out["finish_reason"] = self.finish
        return out


class FactsReader:
    """The facts of a streamed answer, read event by event (`item`), then `result()`."""

    __slots__ = ("facts", "content", "choices", "left", "headed")

    def __init__(self, content: bool = False) -> None:
        self.facts = AnswerFacts()
        self.content = content
        self.choices: dict[int, Choice] = {}
        self.left = CONTENT_CHARS
        self.headed = False  # an event gave the answer's id and model

    def item(self, item: bytes | dict[str, Any]) -> None:
        if isinstance(item, bytes):
            if self.headed and not self.content and (_FINISH not in item or not _names_finish(item)):
                return
            chunk = sse.sse_object(item)
            if chunk is None:
                return
        else:
            chunk = item
        if not self.headed:
            self.head(chunk)
        for choice in _choices(chunk):
            at = choice.get("index", 0)
            finish = choice.get("finish_reason")
            if isinstance(finish, str):
                self.facts.finish_reasons.append(finish)
            if self.content:
                self.add(self.choices.setdefault(at if type(at) is int else 0, Choice()), choice, finish)

    def head(self, chunk: dict[str, Any]) -> None:
        self.headed = True
        facts = self.facts
        facts.id, facts.model = _text(chunk.get("id")), _text(chunk.get("model"))

    def add(self, into: Choice, choice: dict[str, Any], finish: Any) -> None:
        if isinstance(finish, str):
            into.finish = finish
        delta = choice.get("delta")
        if not isinstance(delta, dict):  # a legacy completion's stream: its text in the choice
            self.kept(into.text, choice.get("text"))
            return
        if isinstance(delta.get("role"), str):
            into.role = delta["role"]
        self.kept(into.text, delta.get("content"))
        self.kept(into.reasoning, delta.get("reasoning_content") or delta.get("reasoning"))
        for fragment in delta.get("tool_calls") or ():
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index", len(into.calls))
            call = into.calls.setdefault(index if type(index) is int else 0, {"arguments": []})
            if isinstance(fragment.get("id"), str):
                call["id"] = fragment["id"]
            function = fragment.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["name"] = function["name"]
                self.kept(call["arguments"], function.get("arguments"))

    def kept(self, pieces: list[str], text: Any) -> None:
        if isinstance(text, str) and text and self.left > 0:
            pieces.append(text[:self.left])
            self.left -= len(pieces[-1])

    def result(self) -> AnswerFacts:
        facts = self.facts
        if self.content:
            facts.output = [self.choices[i].message() for i in sorted(self.choices)]
        return facts


class _FinishedChoice(msgspec.Struct):
    finish_reason: str | None = None


class _AnswerHead(msgspec.Struct):
    """What the facts of a whole answer need of its text: the rest (messages, embeddings) is skipped unread. An
    answer whose members have other types is read whole (`whole_facts`), as one that is not JSON, and so is one whose
    id or model is longer than a span keeps (TEXT_MOST: cut there, off the common answer's path)."""
    id: Annotated[str, msgspec.Meta(max_length=TEXT_MOST)] | None = None
    model: Annotated[str, msgspec.Meta(max_length=TEXT_MOST)] | None = None
    choices: list[_FinishedChoice] | None = None
    usage: dict[str, Any] | None = None


_HEAD = msgspec.json.Decoder(_AnswerHead)


def whole_facts(payload: dict[str, Any] | bytes, content: bool = False) -> AnswerFacts:
    """The facts of a whole answer (a completion, a legacy completion or an embeddings list)."""
    if not content and not isinstance(payload, dict):
        try:
            head = _HEAD.decode(payload)
        except (msgspec.DecodeError, ValueError):  # not this shape (or what only `json` reads): read whole
            pass
        else:
            choices = head.choices
            return AnswerFacts(head.id or None, head.model or None,
                               [c.finish_reason for c in choices if c.finish_reason is not None] if choices else [],
                               None, head.usage)
    obj = payload if isinstance(payload, dict) else _parsed(payload)
    if obj is None:
        return AnswerFacts()
    facts = AnswerFacts(_text(obj.get("id")), _text(obj.get("model")))
    reader = FactsReader(content)
    for choice in _choices(obj):
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            facts.finish_reasons.append(finish)
        if content:
            message = choice.get("message")
            delta = {"delta": message} if isinstance(message, dict) else choice
            at = choice.get("index", 0)
            reader.add(reader.choices.setdefault(at if type(at) is int else 0, Choice()), delta, finish)
    if content:
        facts.output = reader.result().output
    return facts


def _names_finish(item: bytes) -> bool:
    """Does an event give a finish reason (a string after "finish_reason", not null)?"""
    at = item.find(_FINISH) + len(_FINISH)
    while at > len(_FINISH) - 1:
        value = item[at:at + 8].lstrip(b" :")
        if value.startswith(b'"'):
            return True
        at = item.find(_FINISH, at) + len(_FINISH)  # another choice's, further on
    return False


def _choices(obj: dict[str, Any]) -> list[dict[str, Any]]:
    choices = obj.get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def _text(value: Any) -> str | None:
    """An answer's id or model as a span keeps it: its first TEXT_MOST characters (an upstream echoing a client's
    model, as llama.cpp's server does, echoes one of any length)."""
    if isinstance(value, str) and value:
        return value if len(value) <= TEXT_MOST else value[:TEXT_MOST]
    return None


def _parsed(payload: bytes) -> dict[str, Any] | None:
    try:
        obj = loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None
