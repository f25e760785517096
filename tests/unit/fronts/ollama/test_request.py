"""Ollama's requests translated without HTTP (argoproxy/fronts/ollama/request.py): chat, generate and embed,
their options, and the bad fields named."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.ollama.door import OllamaArgs, OllamaFront


FRONT = OllamaFront()
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def to_chat(body: dict, route: str = "ollama_chat") -> dict:
    return FRONT.to_chat(body, False, OllamaArgs(route=route))[0]


def test_chat_messages_images_tools_and_results():
    chat = to_chat({"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "what is it?", "images": [PNG]},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "weather",
                                                                          "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "22C", "tool_name": "weather"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]})
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}  # Ollama streams by default
    assert chat["messages"][1]["content"] == [{"type": "text", "text": "what is it?"},
                                              {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    call = chat["messages"][2]["tool_calls"][0]
    assert call == {"id": "call_2_0", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "call_2_0", "content": "22C"}
    assert chat["tools"][0]["function"]["name"] == "weather"


def test_options_format_and_think():
    chat = to_chat({"model": "m", "messages": [], "stream": False, "format": {"type": "object"}, "think": "max",
                    "options": {"temperature": 0.2, "top_p": 0.9, "top_k": 20, "num_predict": 64, "stop": ["END"],
                                "seed": 7, "num_ctx": 8192, "repeat_penalty": 1.1}})
    assert chat == {"model": "m", "messages": [], "stream": False, "temperature": 0.2, "top_p": 0.9, "top_k": 20,
                    "seed": 7, "max_tokens": 64, "stop": ["END"], "reasoning_effort": "high",
                    "response_format": {"type": "json_schema", "json_schema": {"name": "response",
                                                                               "schema": {"type": "object"}}}}
    assert to_chat({"model": "m", "format": "json", "options": {"num_predict": -1}})["response_format"] == \
        {"type": "json_object"}
    assert "max_tokens" not in to_chat({"model": "m", "options": {"num_predict": -1}})


@pytest.mark.parametrize("body, param", [({"messages": []}, "model"), ({"model": "m", "format": "yaml"}, "format"),
                                         ({"model": "m", "options": {"temperature": "hot"}}, "options.temperature"),
                                         ({"model": "m", "messages": [{"role": "robot"}]}, "messages[0].role"),
                                         ({"model": "m", "think": "very"}, "think")])
def test_bad_fields_are_400s_naming_them(body, param):
    with pytest.raises(ProxyError) as info:
        to_chat(body)
    assert info.value.status == 400 and info.value.message.startswith(param)


def test_generate_and_embed_requests():
    chat = to_chat({"model": "m", "prompt": "why?", "system": "terse", "images": [PNG]}, "ollama_generate")
    assert chat["messages"][0] == {"role": "system", "content": "terse"}
    assert chat["messages"][1]["content"][0] == {"type": "text", "text": "why?"}
    request, ex = FRONT.to_chat({"model": "e", "input": "hi"}, False, OllamaArgs(route="ollama_embed"))
    assert request == {"model": "e", "input": ["hi"]} and (ex.kind, ex.path) == ("embeddings", "v1/embeddings")
    assert to_chat({"model": "e", "prompt": "hi"}, "ollama_embeddings") == {"model": "e", "input": ["hi"]}
    with pytest.raises(ProxyError):
        to_chat({"model": "m", "prompt": "def f(", "suffix": "return 1"}, "ollama_generate")
