"""Reasoning-tag handling: a streaming-safe splitter of `<think>...</think>` text, and the response transforms built on it.

ThinkSplitter sees assistant content as it arrives (any chunking, tags split anywhere) and separates
reasoning from answer. It holds back only a tail that could still begin a tag, so text that cannot be a
tag is never delayed. Models whose template opens the block themselves start inside reasoning; if such a
stream ends without `</think>`, the held text was the answer after all and is released as content.

Reasoning an upstream sends apart under `reasoning` (vLLM 0.10+, OpenRouter) is also given under
`reasoning_content`, where chat clients (and DeepSeek's API) have it: the transforms copy it, in every mode
but keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator


@dataclass(frozen=True)
class ThinkConfig:
    mode: str = "strip"  # strip | reasoning | keep
    start: str = "<think>"
    end: str = "</think>"
    starts_inside: bool = False

    @property
    def active(self) -> bool:
        return self.mode != "keep"


def for_client(cfg: ThinkConfig | None, asks_reasoning: bool) -> ThinkConfig | None:
    """The mode for one client: under strip, `<think>` text leaves the answer's text on every door; a client that
    asked for reasoning in its API's own way (Messages `thinking`, Google `includeThoughts`, Responses
    `reasoning.summary`) gets it as reasoning instead of losing it."""
    if cfg is not None and asks_reasoning and cfg.mode == "strip":
        return replace(cfg, mode="reasoning")
    return cfg


def name_reasoning(holder: dict[str, Any]) -> bool:
    """Reasoning under `reasoning` (vLLM 0.10+, OpenRouter) given under `reasoning_content` too, where chat
    clients read it; True when it was copied."""
    value = holder.get("reasoning")
    if isinstance(value, str) and value and "reasoning_content" not in holder:
        holder["reasoning_content"] = value
        return True
    return False


_NON_SPACE = re.compile(r"\S")
# Strip mode, inside a block the model never opened: characters held in case the answer ends without the end
# tag (then they were the answer). Past this the text is taken for reasoning for good and no longer held, so an
# unclosed block of any length costs at most this much (real reasoning is tens of KB).
IMPLICIT_HOLD = 4 * 1024 * 1024


def _held_prefix(text: str, tag: str) -> int:
    """Length of the longest tail of text that is a proper prefix of tag (what must wait for more text)."""
    first = tag[0]
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text[-k] == first and tag.startswith(text[-k:]):
            return k
    return 0


class ThinkSplitter:
    """Splits one choice's content stream into (answer, reasoning) pieces."""

    __slots__ = ("cfg", "inside", "pending", "implicit", "implicit_text", "held", "lstrip")

    def __init__(self, cfg: ThinkConfig) -> None:
        self.cfg = cfg
        self.inside = cfg.starts_inside
        self.implicit = cfg.starts_inside  # inside a block we never saw open
        self.implicit_text: list[str] = []
        self.held = 0  # characters in implicit_text
        self.pending = ""
        self.lstrip = cfg.starts_inside  # a model may still open with an explicit tag after whitespace

    @property
    def idle(self) -> bool:
        """True when nothing is held and text without '<' would pass straight through."""
        return not (self.inside or self.pending or self.lstrip)

    def feed(self, text: str) -> tuple[str, str]:
        # Walks the text with an index (`pos`): slicing off what was consumed at every tag copied the rest of
        # the text each time, quadratic in an answer of many short blocks (1 MB of them took 2 s).
        buf = self.pending + text
        self.pending = ""
        answer: list[str] = []
        reasoning: list[str] = []
        start, end = self.cfg.start, self.cfg.end
        pos, size = 0, len(buf)
        while pos < size:
            if self.implicit and self.lstrip:  # only at the very start of an answer
                stripped = buf[pos:].lstrip()
                if not stripped:
                    self._hold(buf[pos:])
                    return "", ""
                if start.startswith(stripped[: len(start)]) and len(stripped) < len(start):
                    self.pending = buf[pos:]  # could still be the explicit opening tag
                    return "", ""
                self.lstrip = False
                if stripped.startswith(start):
                    buf, pos = stripped, len(start)
                    size = len(buf)
                    self.implicit = False
                continue
            if self.inside:
                i = buf.find(end, pos)
                if i < 0:
                    hold = _held_prefix(buf[max(pos, size - len(end)):], end)
                    self._reason(buf[pos: size - hold], reasoning)
                    self.pending = buf[size - hold:]
                    break
                self._reason(buf[pos:i], reasoning)
                pos = i + len(end)
                self.inside = self.implicit = False
                self.implicit_text = []
                self.lstrip = True
                continue
            if self.lstrip:
                found = _NON_SPACE.search(buf, pos)
                if found is None:
                    break
                pos = found.start()
                self.lstrip = False
            i = buf.find(start, pos)
            if i < 0:
                hold = _held_prefix(buf[max(pos, size - len(start)):], start)
                answer.append(buf[pos: size - hold])
                self.pending = buf[size - hold:]
                break
            answer.append(buf[pos:i])
            pos = i + len(start)
            self.inside = True
        return "".join(answer), "".join(reasoning)

    def _reason(self, text: str, reasoning: list[str]) -> None:
        if not text:
            return
        if self.implicit:
            self._hold(text)
        if self.cfg.mode == "reasoning":
            reasoning.append(text)

    def _hold(self, text: str) -> None:
        """Keep implicit reasoning for finish() (strip mode only: reasoning mode has sent it already), up to
        IMPLICIT_HOLD characters; past that the block is reasoning for good."""
        if self.cfg.mode != "strip":
            return
        self.held += len(text)
        if self.held > IMPLICIT_HOLD:
            self.implicit, self.implicit_text = False, []
            return
        self.implicit_text.append(text)

    def finish(self) -> tuple[str, str]:
        """Release what is held at the end of the answer."""
        pending, self.pending = self.pending, ""
        if self.implicit:
            # Never closed: in strip mode the held text was the answer; in reasoning mode it was already sent.
            held = "".join(self.implicit_text) + pending
            self.implicit_text = []
            return (held, "") if self.cfg.mode == "strip" else ("", pending)
        if self.inside:  # an unclosed block (cut by max_tokens) is reasoning
            return "", pending if self.cfg.mode == "reasoning" else ""
        return pending, ""


def split_text(text: str, cfg: ThinkConfig) -> tuple[str, str]:
    """Whole-text form: (answer, reasoning)."""
    splitter = ThinkSplitter(cfg)
    a1, r1 = splitter.feed(text)
    a2, r2 = splitter.finish()
    return a1 + a2, r1 + r2


def _could_hold_tags(text: Any, cfg: ThinkConfig) -> bool:
    return isinstance(text, str) and (cfg.starts_inside or cfg.end in text or cfg.start in text)


def transform_completion(obj: dict[str, Any], cfg: ThinkConfig) -> bool:
    """Apply the think mode to a chat.completion or text_completion in place; True when something changed."""
    changed = False
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        holder, key = (message, "content") if isinstance(message, dict) else (choice, "text")
        if holder is message:
            changed = name_reasoning(message) or changed
        text = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(text, str) or not _could_hold_tags(text, cfg):
            continue
        answer, reasoning = split_text(text, cfg)
        if answer == text and not reasoning:
            continue
        holder[key] = answer
        if reasoning and cfg.mode == "reasoning":
            previous = holder.get("reasoning_content") or ""
            holder["reasoning_content"] = previous + reasoning
        changed = True
    return changed


class StreamThink:
    """Applies the think mode to a stream of chat.completion.chunk / text_completion chunk dicts, per choice."""

    def __init__(self, cfg: ThinkConfig) -> None:
        self.cfg = cfg
        self.splitters: dict[int, ThinkSplitter] = {}
        self.template: dict[str, Any] | None = None

    @property
    def idle(self) -> bool:
        if self.cfg.starts_inside and not self.splitters:
            return False
        return all(s.idle for s in self.splitters.values())

    def _splitter(self, index: int) -> ThinkSplitter:
        splitter = self.splitters.get(index)
        if splitter is None:
            splitter = self.splitters[index] = ThinkSplitter(self.cfg)
        return splitter

    def chunk(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Transform one chunk in place; None when nothing is left worth sending."""
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            return obj
        if self.template is None:
            self.template = {k: obj[k] for k in ("id", "object", "created", "model") if k in obj}
        keep = False
        for choice in choices:
            if isinstance(choice, dict):
                keep = self._choice(choice) or keep
        return obj if keep or obj.get("usage") else None

    def _choice(self, choice: dict[str, Any]) -> bool:
        index = choice.get("index", 0)
        delta = choice.get("delta")
        holder, key = (delta, "content") if isinstance(delta, dict) else (choice, "text")
        if holder is delta:
            name_reasoning(delta)
        text = holder.get(key)
        splitter = self._splitter(index)
        answer, reasoning = splitter.feed(text) if isinstance(text, str) else ("", "")
        if choice.get("finish_reason") is not None:
            tail_answer, tail_reasoning = splitter.finish()
            answer += tail_answer
            reasoning += tail_reasoning
        if isinstance(text, str) or answer:
            holder[key] = answer
        if reasoning and self.cfg.mode == "reasoning":
            holder["reasoning_content"] = (holder.get("reasoning_content") or "") + reasoning
        return bool(answer or (self.cfg.mode == "reasoning" and reasoning) or _has_more_than_text(choice, holder, key))

    def flush(self) -> dict[str, Any] | None:
        """A final chunk with what is still held when the stream ended without finish_reason."""
        pieces = []
        for index, splitter in self.splitters.items():  # as the choices came (an index of any type)
            answer, reasoning = splitter.finish()
            if answer or (reasoning and self.cfg.mode == "reasoning"):
                pieces.append((index, answer, reasoning))
        if not pieces or self.template is None:
            return None
        chat = self.template.get("object") == "chat.completion.chunk"
        choices = []
        for index, answer, reasoning in pieces:
            if chat:
                delta: dict[str, Any] = {"content": answer}
                if reasoning and self.cfg.mode == "reasoning":
                    delta["reasoning_content"] = reasoning
                choices.append({"index": index, "delta": delta, "finish_reason": None})
            else:
                choices.append({"index": index, "text": answer, "finish_reason": None})
        return {**self.template, "choices": choices}


def _has_more_than_text(choice: dict[str, Any], holder: dict[str, Any], key: str) -> bool:
    if choice.get("finish_reason") is not None:
        return True
    if holder is choice:
        return False
    return any(v not in (None, "", []) for k, v in holder.items() if k != key)


def transform_chunks(chunks: Iterable[dict[str, Any]], cfg: ThinkConfig) -> Iterator[dict[str, Any]]:
    """Iterator form for backends that produce chunk dicts."""
    stream = StreamThink(cfg)
    for obj in chunks:
        out = stream.chunk(obj)
        if out is not None:
            yield out
    tail = stream.flush()
    if tail is not None:
        yield tail
