"""The internal chat answer -> a `message` object: its content blocks (thinking, with a signature of the
proxy's own; text; tool_use), stop reason and usage in Anthropic's shapes."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Mapping

from argoproxy.fronts.front import Exchange, new_id, whole_answer
from argoproxy.pipeline.answer_shape import bounded_loads


STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
SIGNED_BY = b"cot-proxy/1:"  # what a thinking block's signature says, decoded: who made it, over what text
# The blocks' fields a chat upstream has nothing for, as Anthropic's API writes them when they do not apply: a
# text block cites nothing, a tool call is the model's own (not a server tool's code).
UNCITED = None
DIRECT = {"type": "direct"}


def usage_to_messages(usage: Any, estimate: int | None = None) -> dict[str, Any]:
    """Chat usage as Messages usage, every field the API's Usage has: input_tokens excludes what was read from
    the cache; output_tokens includes the reasoning, whose part output_tokens_details.thinking_tokens says (the
    upstream's reasoning_tokens; output_tokens_details is null when the upstream does not count them, as the API's
    Usage allows); nothing written to a cache, no server tools, the standard tier (a chat upstream has none other)."""
    if not isinstance(usage, dict):
        usage, prompt, cached, output = {}, estimate or 0, 0, 0
    else:
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        prompt, output = max((usage.get("prompt_tokens") or 0) - cached, 0), usage.get("completion_tokens") or 0
    out = {"input_tokens": prompt, "output_tokens": output, "cache_creation_input_tokens": 0,
           "cache_read_input_tokens": cached,
           "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
           "server_tool_use": None, "service_tier": "standard", "inference_geo": None}
    thinking = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    out["output_tokens_details"] = ({"thinking_tokens": min(thinking, output)}
                                    if type(thinking) is int and thinking >= 0 else None)
    return out


def delta_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The cumulative usage a stream's message_delta carries (the API's MessageDeltaUsage fields, the reasoning's
    part of the output among them)."""
    return {k: usage[k] for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                  "cache_read_input_tokens", "server_tool_use", "output_tokens_details")
            if k in usage}


def stop_details(stop_reason: str) -> dict[str, Any] | None:
    """Why a refusal stopped (the upstream names no category); null for every other stop."""
    return {"type": "refusal", "category": None, "explanation": None} if stop_reason == "refusal" else None


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "citations": UNCITED}


def stop_of(choice: Mapping[str, Any], ex: Exchange, refused: bool = False) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence): chat cannot say which stop sequence matched, but vLLM's `stop_reason` can.
    An answer that ended on a refusal (chat's `refusal` field) stopped for it."""
    finish = choice.get("finish_reason")
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and matched in ex.stop_sequences:
        return "stop_sequence", matched
    reason = STOP_REASONS.get(finish or "", "end_turn")
    return ("refusal" if refused and reason == "end_turn" else reason), None


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's JSON arguments as the object Messages carries (not an object: kept under `input`)."""
    try:
        value = bounded_loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        return {"input": arguments}
    return value if isinstance(value, dict) else {"input": value}


def tool_use_block(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"type": "tool_use", "id": call.get("id") or new_id("toolu_"), "name": function.get("name") or "",
            "input": tool_input(function.get("arguments")), "caller": DIRECT}


def signature(digest: Any) -> str:
    """A thinking block's signature from the SHA-256 of its text (hashlib's object, fed as the text streamed):
    base64 of who signed and the digest. Clients pass it back untouched, as they do Anthropic's."""
    return base64.b64encode(SIGNED_BY + digest.digest()).decode()


def thinking_block(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": signature(hashlib.sha256(text.encode()))}


def chat_to_message(completion: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """A whole chat.completion as a `message` object."""
    answer = whole_answer(completion, ex)
    content = [thinking_block(answer.reasoning)] if answer.reasoning else []
    text = answer.text + (answer.refusal or "")
    if text or not answer.calls:
        content.append(text_block(text))
    content.extend(tool_use_block(call) for call in answer.calls)
    stop_reason, stop_sequence = stop_of(answer.choice, ex, refused=bool(answer.refusal))
    return message_object(new_id("msg_"), ex.model, content, stop_reason, stop_sequence,
                          usage_to_messages(ex.usage, ex.input_tokens))


def message_object(msg_id: str, model: str, content: list[dict[str, Any]], stop_reason: str | None,
                   stop_sequence: str | None, usage: dict[str, Any]) -> dict[str, Any]:
    """A `message` with every field the API's Message has (no container: a chat upstream runs no code tools)."""
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "stop_details": None if stop_reason is None else stop_details(stop_reason), "container": None,
            "usage": usage}
