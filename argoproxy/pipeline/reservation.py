"""What a request reserves of a token limit while it runs (team keys and key_limits): its counted input plus the
most it may answer."""

from __future__ import annotations

from typing import Any

from argoproxy.pipeline.stream_usage import prompt_tokens

DEFAULT_ANSWER_TOKENS = 4096  # reserved for the answer of a request that sets no max_tokens (docs/teams.md)
ANSWER_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def reservation(body: dict[str, Any] | None) -> int:
    """A request's reservation: its counted input plus the most it may answer (max_tokens, max_completion_tokens
    or max_output_tokens; DEFAULT_ANSWER_TOKENS when it sets none)."""
    if not isinstance(body, dict):
        return DEFAULT_ANSWER_TOKENS
    answer = next((v for v in map(body.get, ANSWER_LIMITS) if isinstance(v, int) and not isinstance(v, bool)
                   and v > 0), DEFAULT_ANSWER_TOKENS)
    try:
        counted = prompt_tokens(body)
    except Exception:  # noqa: BLE001 - a body the counter cannot read: its size stands in
        counted = 0
    return counted + min(answer, 2**40)
