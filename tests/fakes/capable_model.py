"""What a capable model answers through an OpenAI-compatible server (vLLM or OpenAI's own API, as FakeOpenAI
serves them): reasoning beside the answer (`reasoning_content`), text, parallel tool calls, and usage that
counts cached prompt tokens and reasoning tokens. Whole (`whole`) or as the chunks such a server streams
(`chunks`: reasoning, then text, then each call's id and name before its arguments in two pieces, the finish,
the usage chunk, [DONE])."""

from __future__ import annotations

import json
from typing import Any

MODEL = "fake-model"
REASONING = "The user wants the weather in Paris and Rome; both tools can run at once."
TEXT = "Checking both cities."
CALLS = [("call_paris", "get_weather", {"city": "Paris"}), ("call_rome", "get_weather", {"city": "Rome"})]
USAGE = {"prompt_tokens": 120, "completion_tokens": 48, "total_tokens": 168,
         "prompt_tokens_details": {"cached_tokens": 64},
         "completion_tokens_details": {"reasoning_tokens": 20}}
WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
# A 1x1 PNG, as clients send images inline
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def whole(calls: bool = True, reasoning: bool = True, finish: str | None = None, model: str = MODEL) -> dict[str, Any]:
    """A whole chat.completion: reasoning, text and (calls) two tool calls."""
    message: dict[str, Any] = {"role": "assistant", "content": TEXT, "refusal": None}
    if reasoning:
        message["reasoning_content"] = REASONING
    if calls:
        message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                                 for i, n, a in CALLS]
    return {"id": "chatcmpl-capable", "object": "chat.completion", "created": 1700000000, "model": model,
            "system_fingerprint": "fp_capable",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish or ("tool_calls" if calls else "stop")}],
            "usage": json.loads(json.dumps(USAGE))}


def chunks(calls: bool = True, reasoning: bool = True, finish: str | None = None,
           model: str = MODEL) -> list[Any]:
    """The same answer as a server streams it."""
    base = {"id": "chatcmpl-capable", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
            "system_fingerprint": "fp_capable"}

    def delta(d: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish_reason}]}

    events: list[Any] = [delta({"role": "assistant", "content": ""})]
    if reasoning:
        half = len(REASONING) // 2
        events += [delta({"reasoning_content": REASONING[:half]}), delta({"reasoning_content": REASONING[half:]})]
    events += [delta({"content": TEXT[:8]}), delta({"content": TEXT[8:]})]
    if calls:
        for index, (call_id, name, arguments) in enumerate(CALLS):
            text = json.dumps(arguments)
            events.append(delta({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                                 "function": {"name": name, "arguments": ""}}]}))
            for piece in (text[:5], text[5:]):
                events.append(delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    events.append(delta({}, finish or ("tool_calls" if calls else "stop")))
    events.append({**base, "choices": [], "usage": json.loads(json.dumps(USAGE))})
    events.append("[DONE]")
    return events
