"""A Messages request translated without HTTP (argoproxy/fronts/messages/request.py, content.py, tools.py)."""

from __future__ import annotations

import json

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.messages import MessagesFront
from argoproxy.fronts.messages.request import request_to_chat


FRONT = MessagesFront()
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
USAGE = {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26, "prompt_tokens_details": {"cached_tokens": 4}}
CLAUDE_CODE_BODY = {
    "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
    "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cch=abc"},
               {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call ls", "signature": "sig=="},
            {"type": "text", "text": "Running ls."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a.txt"}]},
            {"type": "text", "text": "and now?"}]},
    ],
    "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {}},
               "cache_control": {"type": "ephemeral"}}],
    "tool_choice": {"type": "auto"},
    "metadata": {"user_id": "user_abc_account_1_session_2"},
    "thinking": {"type": "enabled", "budget_tokens": 4000},
    "context_management": {"edits": []}, "output_config": {"effort": "high"},
    "temperature": 1, "top_k": 5, "stop_sequences": ["STOP"],
}


def chunk(delta=None, finish=None, **extra):
    return {**BASE, "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, **extra}]}


def usage_chunk():
    return {**BASE, "choices": [], "usage": USAGE}


def exchange(**request):
    return FRONT.to_chat({"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
                          **request})[1]


def test_claude_code_request_shape():
    chat = request_to_chat(CLAUDE_CODE_BODY)
    assert chat["messages"] == [
        {"role": "system", "content": "x-anthropic-billing-header: cc_version=2.1; cch=abc\n\nYou are Claude Code."},
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": "Running ls.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\": \"ls\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"},
        {"role": "user", "content": "and now?"},
    ]
    assert chat["tools"] == [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object",
                                                                                             "properties": {}},
                                                               "description": "run"}}]
    assert chat["tool_choice"] == "auto" and chat["user"] == "user_abc_account_1_session_2"
    assert chat["max_tokens"] == 32000 and chat["stop"] == ["STOP"] and chat["top_k"] == 5
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert "cache_control" not in json.dumps(chat) and "context_management" not in chat and "thinking" not in chat


def test_images_documents_and_tool_result_images():
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "abc"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
    ]}, {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": [
            {"type": "text", "text": "partial"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "BBBB"}}]}]}]})
    assert chat["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "Notes\n\nabc"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "document.pdf"}}]
    assert chat["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [  # not null: llama.cpp
        {"id": "t1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}]}
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "Error: partial"}
    assert chat["messages"][3] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,BBBB"}}]}


@pytest.mark.parametrize("choice, expected, parallel", [
    ({"type": "auto"}, "auto", None), ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
    ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, None),
    ({"type": "none"}, "none", None)])
def test_tool_choice(choice, expected, parallel):
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                            "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice})
    assert chat["tool_choice"] == expected and chat.get("parallel_tool_calls") == parallel


@pytest.mark.parametrize("body, param", [
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages.0.content.0.type"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "custom", "name": "t"}]}, "tools.0.input_schema"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "x"}}]}]},
     "messages.0.content.0.source.media_type"),
])
def test_bad_requests_name_the_location(body, param):
    with pytest.raises(ProxyError) as info:
        request_to_chat(body)
    assert info.value.status == 400 and info.value.param == param and info.value.message.startswith(param)


def test_count_tokens_needs_no_max_tokens():
    chat, _ = FRONT.to_chat({"model": "m", "messages": [{"role": "user", "content": "x"}]}, count_only=True)
    assert "max_tokens" not in chat


def test_server_tools_are_dropped_and_named():
    """Server and Anthropic-defined tools have no chat form: left out (the door logs them); with no client
    tool left, tool_choice goes too."""
    dropped: dict[str, None] = {}
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                                      {"name": "Read", "input_schema": {"type": "object"}},
                                      {"type": "bash_20250124", "name": "bash"}],
                            "tool_choice": {"type": "auto"}}, dropped=dropped)
    assert [t["function"]["name"] for t in chat["tools"]] == ["Read"] and chat["tool_choice"] == "auto"
    assert list(dropped) == ["web_search_20250305", "bash_20250124"]
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
                            "tool_choice": {"type": "any"}})
    assert "tools" not in chat and "tool_choice" not in chat
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                            "tools": [{"type": "web_search_20250305", "name": "web_search"},
                                      {"name": "Read", "input_schema": {"type": "object"}}],
                            "tool_choice": {"type": "tool", "name": "web_search"}})
    assert chat["tool_choice"] == "auto"  # forcing a tool that was left out: the model chooses


@pytest.mark.parametrize("extra, effort", [
    ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "medium"),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}, "high"),
    ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, "none"),  # off stays off
    ({"output_config": {"effort": "high"}}, None),  # no thinking asked for: no reasoning
])
def test_thinking_as_reasoning_effort(extra, effort):
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **extra}
    assert request_to_chat(body).get("reasoning_effort") == effort
    assert "reasoning_effort" not in request_to_chat(body, count_only=True)  # a count asks for no answer
