"""A whole chat answer as a GenerateContentResponse (argoproxy/fronts/google/answer.py)."""

from __future__ import annotations

import pytest

from tests.unit.fronts.google.test_request import ARGS, FRONT, USER


def completion(message: dict, finish: str = "stop", usage: dict | None = None) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8,
                               "completion_tokens_details": {"reasoning_tokens": 2}}}


def test_whole_answer_with_thoughts_and_calls():
    _, ex = FRONT.to_chat({"contents": [USER], "generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
                          False, ARGS)
    out = FRONT.from_chat(completion({"content": "", "reasoning_content": "hmm", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}, "tool_calls"), ex)
    candidate = out["candidates"][0]
    assert candidate["content"] == {"role": "model", "parts": [
        {"text": "hmm", "thought": True}, {"functionCall": {"name": "f", "args": {"a": 1}, "id": "call_1"}}]}
    assert candidate["finishReason"] == "STOP" and out["modelVersion"] == "m"
    assert out["usageMetadata"] == {"promptTokenCount": 3, "candidatesTokenCount": 3, "totalTokenCount": 8,
                                    "thoughtsTokenCount": 2}


@pytest.mark.parametrize("finish, reason", [("length", "MAX_TOKENS"), ("content_filter", "SAFETY"), ("stop", "STOP")])
def test_finish_reasons(finish, reason):
    _, ex = FRONT.to_chat({"contents": [USER]}, False, ARGS)
    out = FRONT.from_chat(completion({"content": "x", "reasoning_content": "not asked for"}, finish), ex)
    assert out["candidates"][0]["finishReason"] == reason and out["candidates"][0]["content"]["parts"] == [{"text": "x"}]
