"""A whole chat answer as a `message` (argoproxy/fronts/messages/answer.py)."""

from __future__ import annotations

import pytest

from argoproxy.fronts.messages.answer import thinking_block
from tests.unit.fronts.messages.test_request import FRONT, USAGE, exchange


def completion(message, finish="stop", **choice):
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "up", "usage": USAGE,
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", **message}, **choice}]}


def test_whole_answer_with_thinking_and_tool_use():
    ex = exchange(thinking={"type": "enabled", "budget_tokens": 2000})
    obj = FRONT.from_chat(completion({"content": "Sure.", "reasoning_content": "plan",
                                      "tool_calls": [{"id": "call_1", "type": "function",
                                                      "function": {"name": "f", "arguments": "{\"a\": [1]}"}}]},
                                     "tool_calls"), ex)
    assert obj["type"] == "message" and obj["role"] == "assistant" and obj["model"] == "claude-x"
    assert obj["content"] == [thinking_block("plan"), {"type": "text", "text": "Sure.", "citations": None},
                              {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1]},
                               "caller": {"type": "direct"}}]
    assert obj["stop_reason"] == "tool_use" and obj["stop_sequence"] is None
    assert obj["stop_details"] is None and obj["container"] is None
    # the upstream's usage left the reasoning tokens out: counted from the reasoning's text
    assert obj["usage"] == {"input_tokens": 16, "output_tokens": 6, "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 4, "output_tokens_details": {"thinking_tokens": 1},
                            "server_tool_use": None, "service_tier": "standard",
                            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                            "inference_geo": None}


def test_thinking_stripped_unless_asked():
    obj = FRONT.from_chat(completion({"content": "ok", "reasoning_content": "plan"}), exchange())
    assert obj["content"] == [{"type": "text", "text": "ok", "citations": None}] and obj["stop_reason"] == "end_turn"


@pytest.mark.parametrize("finish, extra, reason, sequence", [
    ("length", {}, "max_tokens", None), ("stop", {"stop_reason": "STOP"}, "stop_sequence", "STOP"),
    ("stop", {"stop_reason": 128001}, "end_turn", None), ("content_filter", {}, "refusal", None)])
def test_stop_reasons(finish, extra, reason, sequence):
    obj = FRONT.from_chat(completion({"content": "x"}, finish, **extra), exchange(stop_sequences=["STOP"]))
    assert (obj["stop_reason"], obj["stop_sequence"]) == (reason, sequence)
