"""The answer transforms as ordered lists of filters, each applied to a call's answer in list order.

Item filters run on the decoded upstream stream (OpenAI chunk dicts or raw SSE events), before the door's
encoder: the journal's copy of the upstream's own answer is taken first (and tracing's facts of it), then the
think transform.

Byte filters run on the bytes that go to the client, after the encoder, streamed (`stream`) or whole
(`whole`): a routed fallback's answer names the model the client asked for, then configured secrets are
replaced, then the journal's tap measures what the client got (answers.py's OutputTap). A filter that does
not apply to a call returns its input as it is (no wrapper, no cost per chunk). Filters write no Outcome: what
one finds goes to the answer side that owns it (a `keep` callback, answers.py's note_* methods).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Iterator, Protocol

from argoproxy.upstream.body_tap import BodyTap
from argoproxy.pipeline.answer_facts import FactsReader
from argoproxy.pipeline import streamconv
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.call_keys import CallKeys
from argoproxy.pipeline.think import StreamThink, ThinkConfig
from argoproxy.pipeline.backend import StreamItem
from argoproxy.redaction import Secrets
from argoproxy.upstream import sse

_MODEL_FIELD = re.compile(rb'"model"(\s*):(\s*)"(?:[^"\\]|\\.)*"')


# ---------------------------------------------------------------- items (before the encoder)
class ItemFilter(Protocol):
    def __call__(self, call: Call, items: Iterator[StreamItem]) -> Iterator[StreamItem]: ...


# What a filter found, handed to the answer side to record (call, value).
Keep = Callable[[Call, object], None]


def upstream_copy(journal_bytes: int, keep: Keep | None = None) -> ItemFilter:
    """Journals: the upstream's own answer assembled as it passes, while its bytes (the tap on the upstream
    response) stay under JOURNAL_BODY_BYTES; `keep(call, answer)` records it (answers.py's note_upstream_output)."""
    def apply(call: Call, items: Iterator[StreamItem]) -> Iterator[StreamItem]:
        return _captured(call, items, keep) if journal_bytes and keep is not None else items
    return apply


def think_tags(call: Call, items: Iterator[StreamItem]) -> Iterator[StreamItem]:
    """THINK_MODE over a stream (strip, or move to reasoning_content); no configuration: as it is."""
    think = call.planned.think
    return think_items(items, think) if think is not None else items


def tool_call_indexes(call: Call, items: Iterator[StreamItem]) -> Iterator[StreamItem]:
    """Parallel tool calls numbered apart (call_keys.py): a server that numbers every call 0, or gives no index,
    has each call's chunk given an index of its own, as the OpenAI SDK and agents accumulate calls by index; a
    call's id and name repeated on its later fragments are left out of them. Only for a request that offers
    tools; raw events that carry no tool call pass without being parsed."""
    body = call.planned.body
    if not (body.get("tools") or body.get("functions")):
        return items
    return _renumbered(items)


def _renumbered(items: Iterator[StreamItem]) -> Iterator[StreamItem]:
    keys: dict[int, CallKeys] = {}  # by choice index
    for item in items:
        if isinstance(item, bytes):
            if b'"tool_calls"' not in item:
                yield item
                continue
            parsed = sse.sse_object(item)
            if parsed is None or not _numbered(parsed, keys):
                yield item
                continue
            yield parsed
        else:
            _numbered(item, keys)
            yield item


def _numbered(chunk: dict, keys: dict[int, CallKeys]) -> bool:
    """Give the chunk's tool-call fragments the indexes of their calls; whether any changed."""
    changed = False
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        at = choice.get("index", 0)
        if not isinstance(calls, list) or type(at) is not int:  # the shape check refuses such a chunk later
            continue
        choice_keys = keys.setdefault(at, CallKeys())
        for position, fragment in enumerate(calls):
            if isinstance(fragment, dict) and type(fragment.get("index", 0)) is int:
                key = choice_keys.key(position, fragment)
                index = choice_keys.index(key)
                if fragment.get("index") != index:
                    fragment["index"] = index
                    changed = True
                if choice_keys.repeats(key, fragment):
                    _without_head(fragment)
                    changed = True
    return changed


def _without_head(fragment: dict) -> None:
    """A later fragment of a call without the id, type and name its first fragment gave."""
    for name in ("id", "type"):
        fragment.pop(name, None)
    function = fragment.get("function")
    if isinstance(function, dict):
        function.pop("name", None)


def answer_facts(keep: Keep, content: bool) -> ItemFilter:
    """Tracing: what the upstream's stream says of itself (pipeline/answer_facts.py), read as its events pass;
    `keep(call, facts)` records it (answers.py's note_facts) once the stream ends."""
    def apply(call: Call, items: Iterator[StreamItem]) -> Iterator[StreamItem]:
        return _read(call, items, keep, content)
    return apply


def _read(call: Call, items: Iterable[StreamItem], keep: Keep, content: bool) -> Iterator[StreamItem]:
    reader = FactsReader(content)
    yield from _tapped(call, items, reader.item, reader.result, keep)


def _tapped(call: Call, items: Iterable[StreamItem], add: Callable[[StreamItem], Any], result: Callable[[], Any],
            keep: Keep) -> Iterator[StreamItem]:
    """The items passed on as they come, each shown to `add`; `keep` gets `result()` however the stream ends."""
    try:
        for item in items:
            add(item)
            yield item
    finally:
        keep(call, result())


def item_filters(journal_bytes: int, keep: Keep | None = None, facts: Keep | None = None,
                 content: bool = False) -> list[ItemFilter]:
    """The item filters in order: the upstream's own answer (the journal's copy; tracing's facts, when `facts`
    records them), parallel tool calls numbered apart, think tags."""
    read = [answer_facts(facts, content)] if facts is not None else []
    return [upstream_copy(journal_bytes, keep), *read, tool_call_indexes, think_tags]


def _captured(call: Call, items: Iterable[StreamItem], keep: Keep) -> Iterator[StreamItem]:
    capture = StreamCapture(call.outcome.upstream_tap)  # made at the first item: the tap is set by then
    yield from _tapped(call, items, capture.add, capture.result, keep)


def think_items(items: Iterable[StreamItem], cfg: ThinkConfig) -> Iterator[StreamItem]:
    """The think transform over a stream; raw events that cannot hold a tag, nor reasoning spelled `reasoning`,
    pass without being parsed."""
    state = StreamThink(cfg)
    idle = state.idle  # changes only when a chunk goes through the state machine
    for item in items:
        if isinstance(item, bytes):
            if idle and b"<" not in item and b"\\u003c" not in item and b'"reasoning"' not in item:
                yield item
                continue
            parsed = sse.sse_object(item)
            if parsed is None:
                yield item
                continue
            out = state.chunk(parsed)
        else:
            out = state.chunk(item)
        idle = state.idle
        if out is not None:
            yield out
    tail = state.flush()
    if tail is not None:
        yield tail


class StreamCapture:
    """A stream's answer assembled for a journal as its chunks pass, given up (and its memory freed) once the
    tap on the same bytes passes its limit: the journal then records the tap's prefix, length and hash."""

    __slots__ = ("tap", "fold")

    def __init__(self, tap: BodyTap | None) -> None:
        self.tap = tap
        self.fold: streamconv.Fold | None | bool = True  # True: no chunk yet; None: given up

    def add(self, item: StreamItem) -> None:
        if self.fold is None:
            return
        if self.tap is not None and self.tap.over:
            self.fold = None
            return
        chunk = sse.sse_object(item) if isinstance(item, bytes) else item
        if not isinstance(chunk, dict):
            return
        try:
            if self.fold is True:
                self.fold = streamconv.Fold.for_chunk(chunk)
            if isinstance(self.fold, streamconv.Fold):
                self.fold.add(chunk)
        except Exception:  # noqa: BLE001 - an error event or a chunk it cannot fold: no copy, the stream goes on
            self.fold = None

    def result(self) -> dict | None:
        fold, self.fold = self.fold, None
        if not isinstance(fold, streamconv.Fold):
            return None
        try:
            return fold.result()
        except Exception:  # noqa: BLE001 - a journal's copy never breaks the answer
            return None


# ---------------------------------------------------------------- bytes (after the encoder)
class ByteFilter(Protocol):
    def stream(self, call: Call, chunks: Iterable[bytes]) -> Iterable[bytes]: ...

    def whole(self, call: Call, data: bytes) -> bytes: ...


class ModelName:
    """An answer served by a routed fallback names the model the client asked for (every `"model": "..."`
    field: in JSON text a quote inside a string is escaped, so the pattern only meets real keys)."""

    def stream(self, call: Call, chunks: Iterable[bytes]) -> Iterable[bytes]:
        asked = call.outcome.renamed_to
        return _mapped(chunks, _renamer(asked)) if asked is not None else chunks

    def whole(self, call: Call, data: bytes) -> bytes:
        asked = call.outcome.renamed_to
        return _renamer(asked)(data) if asked is not None else data


class ScrubSecrets:
    """Configured secrets (keys, URL credentials) never reach a client, whatever the answer quotes; a stream is
    scrubbed safely when a chunk boundary splits a secret."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets

    def stream(self, call: Call, chunks: Iterable[bytes]) -> Iterable[bytes]:
        scrubber = self.secrets.scrubber()
        return scrubber.scrub(chunks) if scrubber is not None else chunks

    def whole(self, call: Call, data: bytes) -> bytes:
        return self.secrets.data(data) if self.secrets.blobs else data


def _renamer(asked: str) -> Callable[[bytes], bytes]:
    value = json.dumps(asked).encode()
    return lambda data: _MODEL_FIELD.sub(lambda m: b'"model"' + m.group(1) + b":" + m.group(2) + value, data)


def _mapped(chunks: Iterable[bytes], change: Callable[[bytes], bytes]) -> Iterator[bytes]:
    try:
        for chunk in chunks:
            yield change(chunk)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
