"""The token counts of an answer's usage, whichever API wrote it, in the units rates price (units.py).

Each count is whole, as genai-prices counts it: `input_tokens` holds the cached, cache-write and audio input;
`output_tokens` holds the reasoning and audio output. The shapes:

- OpenAI's chat and completions (and the servers that copy them: vLLM, llama.cpp, DeepSeek, OpenRouter,
  LiteLLM): prompt_tokens with prompt_tokens_details.cached_tokens, cache_write_tokens and audio_tokens
  (DeepSeek's prompt_cache_hit_tokens; LiteLLM's cache_read_input_tokens and cache_creation_input_tokens, both
  inside prompt_tokens); completion_tokens with completion_tokens_details.reasoning_tokens and audio_tokens.
- OpenAI's Responses: input_tokens with input_tokens_details.cached_tokens, output_tokens with
  output_tokens_details.reasoning_tokens (input and output hold them).
- Anthropic's Messages: input_tokens is the input that is neither read from nor written to the cache;
  cache_read_input_tokens and cache_creation_input_tokens (split by cache_creation into 5-minute and 1-hour
  writes) come beside it; thinking is inside output_tokens.
- Gemini's usageMetadata: promptTokenCount (with cachedContentTokenCount inside, toolUsePromptTokenCount
  beside), candidatesTokenCount and thoughtsTokenCount beside it.
- Ollama's prompt_eval_count and eval_count.

A value that is not a whole count (a string, a float, a negative or absurd number) counts as none.
"""

from __future__ import annotations

from typing import Any

MOST = 10**15  # more tokens than any answer holds: a relayed count past it is not a count
PLAIN = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})  # OpenAI's usage without details


def counts_of(usage: Any) -> dict[str, int] | None:
    """The counts of a usage object (None: it is not one)."""
    if usage.__class__ is dict and len(usage) == 3 and PLAIN.issuperset(usage):
        # OpenAI's three counts and nothing else, every answer's: read without looking for details (a count that
        # is not a positive whole number is read below, as any other)
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
        if prompt.__class__ is int and completion.__class__ is int and 0 < prompt <= MOST and 0 < completion <= MOST:
            return {"input_tokens": prompt, "output_tokens": completion}
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return _chat(usage)
    if "input_tokens" in usage or "output_tokens" in usage:
        if any(k in usage for k in ("cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation")):
            return _messages(usage)
        return _responses(usage)
    if "promptTokenCount" in usage or "candidatesTokenCount" in usage:
        return _gemini(usage)
    if "prompt_eval_count" in usage or "eval_count" in usage:
        return _kept({"input_tokens": _n(usage.get("prompt_eval_count")),
                      "output_tokens": _n(usage.get("eval_count"))})
    return None


def _chat(usage: dict[str, Any]) -> dict[str, int]:
    prompt, completion = _details(usage, "prompt_tokens_details"), _details(usage, "completion_tokens_details")
    return _kept({
        "input_tokens": _n(usage.get("prompt_tokens")),
        "cache_read_tokens": _n(prompt.get("cached_tokens")) or _n(usage.get("prompt_cache_hit_tokens"))
        or _n(usage.get("cache_read_input_tokens")),
        "cache_write_tokens": _n(prompt.get("cache_write_tokens")) or _n(usage.get("cache_creation_input_tokens")),
        "input_audio_tokens": _n(prompt.get("audio_tokens")),
        "output_tokens": _n(usage.get("completion_tokens")),
        "output_reasoning_tokens": _n(completion.get("reasoning_tokens")),
        "output_audio_tokens": _n(completion.get("audio_tokens")),
    })


def _responses(usage: dict[str, Any]) -> dict[str, int]:
    given, answered = _details(usage, "input_tokens_details"), _details(usage, "output_tokens_details")
    return _kept({
        "input_tokens": _n(usage.get("input_tokens")),
        "cache_read_tokens": _n(given.get("cached_tokens")),
        "cache_write_tokens": _n(given.get("cache_write_tokens")),
        "cache_write_1h_tokens": _n(given.get("cache_write_1h_tokens")),  # the proxy's own: a relayed answer's
        "output_tokens": _n(usage.get("output_tokens")),
        "output_reasoning_tokens": _n(answered.get("reasoning_tokens")),
    })


def _messages(usage: dict[str, Any]) -> dict[str, int]:
    read, written = _n(usage.get("cache_read_input_tokens")), _n(usage.get("cache_creation_input_tokens"))
    split = _details(usage, "cache_creation")
    return _kept({
        "input_tokens": _n(usage.get("input_tokens")) + read + written,
        "cache_read_tokens": read,
        "cache_write_tokens": written,
        "cache_write_5m_tokens": _n(split.get("ephemeral_5m_input_tokens")),
        "cache_write_1h_tokens": _n(split.get("ephemeral_1h_input_tokens")),
        "output_tokens": _n(usage.get("output_tokens")),
        "output_reasoning_tokens": _n(_details(usage, "output_tokens_details").get("thinking_tokens")),
    })


def _gemini(usage: dict[str, Any]) -> dict[str, int]:
    thoughts = _n(usage.get("thoughtsTokenCount"))
    return _kept({
        "input_tokens": _n(usage.get("promptTokenCount")) + _n(usage.get("toolUsePromptTokenCount")),
        "cache_read_tokens": _n(usage.get("cachedContentTokenCount")),
        "output_tokens": _n(usage.get("candidatesTokenCount")) + thoughts,
        "output_reasoning_tokens": thoughts,
    })


def _details(usage: dict[str, Any], name: str) -> dict[str, Any]:
    value = usage.get(name)
    return value if isinstance(value, dict) else {}


def _n(value: Any) -> int:
    return value if type(value) is int and 0 < value <= MOST else 0


def _kept(counts: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in counts.items() if count}
