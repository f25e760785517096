"""A whole chat answer as a `response` object (argoproxy/fronts/responses/answer.py, response.py)."""

from __future__ import annotations

from argoproxy.fronts.responses.answer import chat_to_response
from tests.unit.fronts.responses.test_request import FRONT, USAGE, chunk, exchange
from tests.unit.fronts.responses.test_tools import CODEX_TOOLS


def test_whole_answer_with_reasoning_text_and_calls():
    completion = {"id": "c", "object": "chat.completion", "created": 1, "model": "upstream-name", "usage": USAGE,
                  "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                      "role": "assistant", "content": "Let me look.", "reasoning_content": "thinking...",
                      "tool_calls": [{"id": "call_9", "type": "function",
                                      "function": {"name": "look", "arguments": "{\"q\":1}"}}]}}]}
    ex = exchange(tools=[{"type": "function", "name": "look", "parameters": {}}], temperature=0.5)
    obj = FRONT.from_chat(completion, ex)
    assert obj["object"] == "response" and obj["id"].startswith("resp_") and obj["status"] == "completed"
    assert obj["model"] == "m" and obj["temperature"] == 0.5 and obj["store"] is False
    # echoed with every field the documents require, null when not given
    assert obj["tools"] == [{"type": "function", "name": "look", "parameters": {}, "description": None, "strict": None}]
    kinds = [item["type"] for item in obj["output"]]
    assert kinds == ["reasoning", "message", "function_call"]
    assert obj["output"][0]["content"] == [{"type": "reasoning_text", "text": "thinking..."}]
    assert obj["output"][1]["content"][0]["text"] == "Let me look."
    call = obj["output"][2]
    assert (call["call_id"], call["name"], call["arguments"], call["status"]) == ("call_9", "look", "{\"q\":1}",
                                                                                  "completed")
    assert obj["usage"] == {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                            "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 16}
    assert obj["incomplete_details"] is None and obj["error"] is None


def test_length_is_incomplete():
    completion = {"choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant",
                                                                                 "content": "cut"}}]}
    ex = exchange()
    obj = FRONT.from_chat(completion, ex)
    assert obj["status"] == "incomplete" and obj["incomplete_details"] == {"reason": "max_output_tokens"}
    # no usage upstream: estimated (no request to count here; "cut" is one token) and marked so
    assert obj["usage"]["output_tokens"] == 1 and obj["usage"]["input_tokens"] == 0 and ex.usage_estimated


def test_custom_and_namespaced_calls_come_back_as_their_items():
    _, ex = FRONT.to_chat({"model": "m", "input": "x", "tools": CODEX_TOOLS})
    completion = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "apply_patch",
                                                              "arguments": '{"input": "*** Begin Patch"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "mcp__docs__search", "arguments": "{}"}},
            {"id": "call_3", "type": "function", "function": {"name": "shell", "arguments": '{"a":1}'}}]}}]}
    output = FRONT.from_chat(completion, ex)["output"]
    assert [i["type"] for i in output] == ["custom_tool_call", "function_call", "function_call"]
    assert output[0]["input"] == "*** Begin Patch" and output[0]["name"] == "apply_patch"
    assert output[0]["call_id"] == "call_1" and output[0]["id"].startswith("ctc_")
    assert output[1]["name"] == "search" and output[1]["namespace"] == "mcp__docs"
    assert output[2]["name"] == "shell" and "namespace" not in output[2]


def test_a_call_without_arguments_has_an_empty_object_as_its_arguments():
    """Some servers send a call to a tool without parameters with no arguments at all: the item carries "{}",
    as OpenAI writes it and the other doors give ({}), never "" (which Codex cannot parse)."""
    events = list(FRONT.stream(iter([chunk({"tool_calls": [{"index": 0, "id": "c0", "type": "function",
                                                            "function": {"name": "now"}}]}),
                                     chunk(finish="tool_calls")]), exchange()))
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [e["arguments"] for e in done] == ["{}"]
    assert events[-1]["response"]["output"][0]["arguments"] == "{}"
    whole = chat_to_response({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "now", "arguments": ""}}]}}]}, exchange())
    assert whole["output"][0]["arguments"] == "{}"
    custom = exchange(tools=[{"type": "custom", "name": "apply_patch"}])
    whole = chat_to_response({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "apply_patch", "arguments": ""}}]}}]}, custom)
    assert (whole["output"][0]["type"], whole["output"][0]["input"]) == ("custom_tool_call", "")  # not "{}"
