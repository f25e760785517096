"""What a request reserves of a token limit while it runs (team keys and key_limits): its counted input plus the
most it may answer."""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeAlias, TypeGuard

from argoproxy.errors import ProxyError
from argoproxy.pipeline.stream_usage import prompt_tokens
from argoproxy.pipeline.tokens import count_texts

DEFAULT_ANSWER_TOKENS = 4096  # reserved for the answer of a request that sets no max_tokens (docs/teams.md)
ANSWER_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
CHAT_TEXTS = ("messages", "prompt", "input", "system", "instructions")  # where prompt_tokens reads a prompt
log = logging.getLogger("cot_proxy")


class DoorRequest:
    """An API door's request as reservation reads it: `chat()`, the chat request the door makes of it, made only
    when a token limit needs it (a door's own spelling of the answer limit, such as Gemini's
    generationConfig.maxOutputTokens or generation_config.max_output_tokens and Ollama's options.num_predict,
    and its contents and images, are read exactly as the door reads them; a member the door ignores is ignored)."""

    __slots__ = ("body", "translate")

    def __init__(self, body: dict[str, Any], translate: Callable[[], dict[str, Any]]) -> None:
        self.body, self.translate = body, translate

    def chat(self) -> dict[str, Any]:
        """The translated request; a body the door refuses raises its error here, as it would when served."""
        try:
            return self.translate()
        except ProxyError:
            raise
        except Exception:  # noqa: BLE001 - a reservation never ends a request: the body as it came is counted
            log.exception("reservation: the door's request could not be read; its body is counted as it came")
            return self.body


Asked: TypeAlias = "dict[str, Any] | DoorRequest | None"  # what the guard admits: a body, a door's request


def reservation(body: Asked) -> int:
    """A request's reservation: its counted input plus the most it may answer (max_tokens, max_completion_tokens
    or max_output_tokens; DEFAULT_ANSWER_TOKENS when it sets none). A body in no chat shape is counted by all
    its strings: more than its prompt, never less."""
    if isinstance(body, DoorRequest):
        body = body.chat()
    if not isinstance(body, dict):
        return DEFAULT_ANSWER_TOKENS
    answer = next((v for v in map(body.get, ANSWER_LIMITS) if _positive(v)), DEFAULT_ANSWER_TOKENS)
    try:
        chat_shaped = any(map(body.__contains__, CHAT_TEXTS))
        counted = prompt_tokens(body) if chat_shaped else count_texts(_strings(body))
    except Exception:  # noqa: BLE001 - a body the counter cannot read: nothing counted, the answer reserved
        counted = 0
    return counted + min(answer, 2**40)


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
