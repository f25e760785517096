"""What a request reserves of a token limit while it runs (team keys and key_limits): its counted input plus the
most it may answer."""

from __future__ import annotations

from typing import Any, TypeGuard

from argoproxy.pipeline.stream_usage import prompt_tokens
from argoproxy.pipeline.tokens import count_texts

DEFAULT_ANSWER_TOKENS = 4096  # reserved for the answer of a request that sets no max_tokens (docs/teams.md)
ANSWER_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
CHAT_TEXTS = ("messages", "prompt", "input", "system", "instructions")  # where prompt_tokens reads a prompt


def reservation(body: dict[str, Any] | None) -> int:
    """A request's reservation: its counted input plus the most it may answer (max_tokens, max_completion_tokens
    or max_output_tokens; DEFAULT_ANSWER_TOKENS when it sets none). A body in no chat shape (a door's own, such
    as Google's `contents`) is counted by all its strings: more than its prompt, never less."""
    if not isinstance(body, dict):
        return DEFAULT_ANSWER_TOKENS
    answer = next((v for v in map(body.get, ANSWER_LIMITS) if _positive(v)), DEFAULT_ANSWER_TOKENS)
    try:
        chat_shaped = any(map(body.__contains__, CHAT_TEXTS))
        counted = prompt_tokens(body) if chat_shaped else count_texts(_strings(body))
    except Exception:  # noqa: BLE001 - a body the counter cannot read: nothing counted, the answer reserved
        counted = 0
    return counted + min(answer, 2**40)


def door_limit(body: dict[str, Any], answer_at: str | None) -> dict[str, Any]:
    """The body with the most a door's request may answer (at `answer_at`, the door's spelling of max_tokens:
    Google's generationConfig.maxOutputTokens, Ollama's options.num_predict) under max_tokens, for reservation."""
    if not answer_at or "max_tokens" in body:
        return body
    value: Any = body
    for part in answer_at.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return {**body, "max_tokens": value} if _positive(value) else body


def _positive(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _strings(body: dict[str, Any]) -> list[str]:
    """Every string in a parsed body (its size already bounded at the edge: MAX_VALUES)."""
    found: list[str] = []
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found
