"""Text-written tool calls (text_calls.py) taken out of whole chat completions and out of chat streams.

A whole answer: each message's content is split; the calls join `tool_calls` and finish_reason becomes
"tool_calls". A stream: one scanner per stream follows the content deltas of its (single) choice; text goes
out as soon as it cannot be part of a call, each call goes out as one complete `tool_calls` delta (numbered
after any the upstream sent itself), and the finish_reason "stop" becomes "tool_calls" once a call was
found. Raw SSE events that need no change are relayed as the bytes they were.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from argoproxy.upstream import sse
from argoproxy.providers.argo.text_calls import DEFAULT_LIMIT, TextCallScanner, could_hold_call
from argoproxy.jsonfast import loads

StreamItem = Any  # bytes (a raw SSE event) or a chunk dict, as providers.base.StreamItem


def declared_names(body: dict[str, Any]) -> frozenset[str]:
    """The function names an OpenAI chat body declares in `tools`."""
    names = set()
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return frozenset(names)


def split_text(text: str, names: Iterable[str], limit: int = DEFAULT_LIMIT) -> tuple[str, list[dict[str, Any]]]:
    """Whole-text form: (the text around the calls, the calls in order)."""
    scanner = TextCallScanner(names, limit)
    pieces = scanner.feed(text) + scanner.finish()
    return "".join(p for p in pieces if isinstance(p, str)), [p for p in pieces if isinstance(p, dict)]


def transform_completion(obj: dict[str, Any], names: frozenset[str], limit: int = DEFAULT_LIMIT) -> bool:
    """Move the text-written calls of a chat.completion's messages into tool_calls, in place; True if any."""
    changed = False
    for choice in obj.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if not isinstance(content, str) or not could_hold_call(content):
            continue
        text, calls = split_text(content, names, limit)
        if not calls:
            continue
        listed = message.get("tool_calls")
        existing = listed if isinstance(listed, list) else []
        message["tool_calls"] = existing + calls
        message["content"] = text if text.strip() else None
        if choice.get("finish_reason") in (None, "stop"):
            choice["finish_reason"] = "tool_calls"
        changed = True
    return changed


def transform_body(data: bytes, names: frozenset[str], limit: int = DEFAULT_LIMIT) -> dict[str, Any] | bytes:
    """A whole OpenAI answer as bytes: the changed completion when a call was taken, else the bytes as they were."""
    if not could_hold_call(data.decode("utf-8", "replace")):
        return data
    try:
        obj = loads(data)
    except ValueError:
        return data
    if isinstance(obj, dict) and obj.get("object") == "chat.completion" and transform_completion(obj, names, limit):
        return obj
    return data


class StreamTextCalls:
    """Follows one chat stream's chunks; `chunk` returns what to send for each (None: the chunk unchanged)."""

    def __init__(self, names: frozenset[str], limit: int = DEFAULT_LIMIT) -> None:
        self.scanner = TextCallScanner(names, limit)
        self.next_index = 0  # the tool_calls index the next text-written call takes
        self.template: dict[str, Any] | None = None

    def chunk(self, obj: dict[str, Any]) -> list[dict[str, Any]] | None:
        choices = obj.get("choices")
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
            return None  # usage-only chunks (and n > 1, which ARGO never sends) pass as they are
        choice = choices[0]
        given = choice.get("delta")
        delta: dict[str, Any] = given if isinstance(given, dict) else {}
        if self.template is None:
            self.template = {k: obj[k] for k in ("id", "object", "created", "model") if k in obj}
        upstream_calls = delta.get("tool_calls")
        if upstream_calls:
            self._number_after(upstream_calls)
        content = delta.get("content")
        finish = choice.get("finish_reason")
        if self.scanner.idle and not (isinstance(content, str) and could_hold_call(content)) \
                and not (finish == "stop" and self.scanner.calls):
            return None  # most chunks: nothing held and nothing that could start a call
        return self._rewritten(obj, choice, delta, content, finish)

    def _number_after(self, upstream_calls: Any) -> None:
        """Text-written calls are numbered after the tool_calls the upstream sent itself."""
        for call in upstream_calls:
            if isinstance(call, dict) and isinstance(call.get("index"), int):
                self.next_index = max(self.next_index, call["index"] + 1)

    def _rewritten(self, obj: dict[str, Any], choice: dict[str, Any], delta: dict[str, Any], content: Any,
                   finish: Any) -> list[dict[str, Any]]:
        """The chunks a chunk becomes once the scanner has read its content: [] while all of it is held."""
        pieces = self.scanner.feed(content) if isinstance(content, str) else []
        if finish is not None:
            pieces += self.scanner.finish()
        rest = {k: v for k, v in delta.items() if k != "content"}
        deltas = [self._delta(piece) for piece in pieces] or [rest]
        deltas[0] = {**rest, **deltas[0]}
        if finish == "stop" and self.scanner.calls:
            finish = "tool_calls"
        if not pieces and not rest and finish is None and not obj.get("usage"):
            return []  # everything in it is held
        return _spread(obj, choice, deltas, finish)

    def _delta(self, piece: str | dict[str, Any]) -> dict[str, Any]:
        if isinstance(piece, str):
            return {"content": piece}
        call = {"index": self.next_index, **piece}
        self.next_index += 1
        return {"tool_calls": [call]}

    def flush(self) -> list[dict[str, Any]]:
        """Chunks for what is still held when the stream ended without a finish_reason."""
        pieces = self.scanner.finish()
        if not pieces or self.template is None:
            return []
        return [{**self.template, "choices": [{"index": 0, "delta": self._delta(p), "finish_reason": None}]}
                for p in pieces]


def _spread(obj: dict[str, Any], choice: dict[str, Any], deltas: list[dict[str, Any]],
            finish: Any) -> list[dict[str, Any]]:
    """One chunk per delta, as the upstream's chunk was: the finish_reason (and usage) on the last one only."""
    out = []
    for n, d in enumerate(deltas):
        last = n == len(deltas) - 1
        chunk = {**obj, "choices": [{**choice, "delta": d, "finish_reason": finish if last else None}]}
        if not last and chunk.get("usage"):
            chunk["usage"] = None  # usage belongs to the chunk that ends the answer
        out.append(chunk)
    return out


def stream_items(items: Iterable[StreamItem], names: frozenset[str],
                 limit: int = DEFAULT_LIMIT) -> Iterator[StreamItem]:
    """A chat stream (raw SSE events or chunk dicts) with its text-written calls turned into tool_calls."""
    state = StreamTextCalls(names, limit)
    for item in items:
        obj = _event_object(item) if type(item) is bytes else item
        out = state.chunk(obj) if isinstance(obj, dict) else None
        if out is None:
            yield item
        else:
            yield from out
    yield from state.flush()


def _event_object(item: bytes) -> Any:
    data = sse.block_data(item)
    if data is None or data.startswith(b"[DONE]"):
        return None
    try:
        return loads(data)
    except ValueError:
        return None
