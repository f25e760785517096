"""A Responses request translated without HTTP (argoproxy/fronts/responses/request.py): instructions, input,
tools, formats, reasoning, and the bad ones named."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.responses import ResponsesFront
from argoproxy.fronts.responses.request import request_to_chat


FRONT = ResponsesFront()
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta=None, finish=None, usage=None):
    obj = {**BASE, "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    if usage is not None:
        obj = {**BASE, "choices": [], "usage": usage}
    return obj


USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16,
         "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2}}


def exchange(**request):
    body = {"model": "m", "input": "hi", **request}
    return FRONT.to_chat(body)[1]


def test_string_input_and_instructions():
    chat = request_to_chat({"model": "m", "input": "hello", "instructions": "be brief", "max_output_tokens": 50,
                            "temperature": 0.2, "top_p": 0.9})
    assert chat == {"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "hello"}],
                    "temperature": 0.2, "top_p": 0.9, "max_tokens": 50}


def test_items_with_images_and_a_function_round_trip():
    chat = request_to_chat({"model": "m", "stream": True, "input": [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{\"a\":1}"},
        {"type": "function_call", "call_id": "call_2", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}]},
        {"role": "user", "content": "and tomorrow?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_3", "name": "look", "arguments": "{}"},
    ]})
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["messages"] == [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "", "tool_calls": [  # not null: llama.cpp refuses it
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"a\":1}"}},
            {"id": "call_2", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "and tomorrow?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [  # a turn's text and its calls: one message
            {"id": "call_3", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
    ]


def test_tools_choice_formats_and_reasoning():
    chat = request_to_chat({"model": "m", "input": "x", "parallel_tool_calls": False,
                            "tools": [{"type": "function", "name": "f", "description": "d",
                                       "parameters": {"type": "object"}, "strict": True}],
                            "tool_choice": {"type": "function", "name": "f"},
                            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"},
                                                "strict": True}},
                            "reasoning": {"effort": "low", "summary": "auto"}})
    assert chat["tools"] == [{"type": "function", "function": {"name": "f", "description": "d",
                                                               "parameters": {"type": "object"}, "strict": True}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "out",
                                                                              "schema": {"type": "object"},
                                                                              "strict": True}}
    assert chat["reasoning_effort"] == "low"
    assert request_to_chat({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}})[
        "response_format"] == {"type": "json_object"}
    assert "response_format" not in request_to_chat({"model": "m", "input": "x", "text": {"format": {"type": "text"}}})


@pytest.mark.parametrize("body, param", [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"model": "m", "input": [{"id": "msg_1"}]}, "input[0].id"),  # a reference without `type`: its id
    ({"model": "m", "input": [{"type": 0, "id": "msg_1"}]}, "input[0].type"),  # not a missing type: not a string
    ({"model": "m", "input": [{"type": False, "content": "x"}]}, "input[0].type"),
    ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c", "output": {
        "type": "computer_screenshot", "file_id": "file_1"}}]}, "input[0].output.image_url"),
    ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c", "output": {
        "type": "screenshot", "image_url": "https://x/a.png"}}]}, "input[0].output.type"),
    ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].output"),
    ({"model": "m", "input": "x", "tools": [{"type": "custom"}]}, "tools[0].name"),
    ({"model": "m", "input": "x", "tools": [{"name": "f", "parameters": {}}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "tools": [{"type": "namespace", "name": "crm"}]}, "tools[0].tools"),
    ({"model": "m", "input": [{"type": "custom_tool_call", "name": "apply_patch", "input": "x"}]}, "input[0].call_id"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].image_url"),
    ({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "function"}}, "tool_choice"),
])
def test_bad_requests_name_the_parameter(body, param):
    with pytest.raises(ProxyError) as info:
        request_to_chat(body)
    assert info.value.status == 400 and info.value.param == param


@pytest.mark.parametrize("reasoning, param", [({"summary": "short"}, "reasoning.summary"),
                                              ({"summary": 1}, "reasoning.summary"),
                                              ({"generate_summary": "long"}, "reasoning.generate_summary")])
def test_bad_reasoning_summary(reasoning, param):
    with pytest.raises(ProxyError) as info:
        exchange(reasoning=reasoning)
    assert info.value.status == 400 and info.value.param == param
