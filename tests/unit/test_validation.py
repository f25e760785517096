"""validate(): what OpenAI would reject gets a 400 naming the parameter; unknown fields pass; allow-list."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.edge.validation import check_allowed_model, model_allowed, require_model
from argoproxy.pipeline.request_shape import validate

MSG = [{"role": "user", "content": "hi"}]


def bad(kind: str, body: dict) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        validate(kind, body)
    assert info.value.status == 400
    assert info.value.body()["error"]["type"] == "invalid_request_error"
    return info.value


@pytest.mark.parametrize("body, param", [
    ({"model": "", "messages": MSG}, "model"),
    ({"model": "  ", "messages": MSG}, "model"),
    ({"model": 3, "messages": MSG}, "model"),
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": "hi"}, "messages"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]"),
    ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": MSG + [{"role": "robot", "content": "x"}]}, "messages[1].role"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages[0].content[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": ["plain"]}]}, "messages[0].content[0]"),
    ({"model": "m", "messages": MSG, "temperature": 2.5}, "temperature"),
    ({"model": "m", "messages": MSG, "temperature": -0.1}, "temperature"),
    ({"model": "m", "messages": MSG, "temperature": "hot"}, "temperature"),
    ({"model": "m", "messages": MSG, "temperature": True}, "temperature"),
    ({"model": "m", "messages": MSG, "top_p": 1.5}, "top_p"),
    ({"model": "m", "messages": MSG, "n": 0}, "n"),
    ({"model": "m", "messages": MSG, "n": 1.5}, "n"),
    ({"model": "m", "messages": MSG, "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": MSG, "max_tokens": "10"}, "max_tokens"),
    ({"model": "m", "messages": MSG, "max_completion_tokens": -1}, "max_completion_tokens"),
    ({"model": "m", "messages": MSG, "presence_penalty": 3}, "presence_penalty"),
    ({"model": "m", "messages": MSG, "stream": "yes"}, "stream"),
    ({"model": "m", "messages": MSG, "stream": 1}, "stream"),
    ({"model": "m", "messages": MSG, "stop": 5}, "stop"),
    ({"model": "m", "messages": MSG, "stream_options": True}, "stream_options"),
    ({"model": "m", "messages": MSG, "logprobs": "yes"}, "logprobs"),
    # llama.cpp's server answers these with a 500 (a validation error of its own): OpenAI's is a 400
    ({"model": "m", "messages": MSG, "response_format": {"type": {}}}, "response_format.type"),
    ({"model": "m", "messages": MSG, "response_format": {"type": 1}}, "response_format.type"),
    ({"model": "m", "messages": MSG, "response_format": {"json_schema": {"name": "n"}}}, "response_format.type"),
])
def test_chat_violations_name_the_parameter(body, param):
    assert bad("chat", body).param == param


@pytest.mark.parametrize("body", [
    {"model": "m", "messages": MSG},
    {"model": "m", "messages": MSG, "temperature": 0, "top_p": 1, "n": 2, "max_tokens": 5, "stream": True},
    {"model": "m", "messages": MSG, "temperature": None, "max_tokens": None, "stream": None, "stop": None},
    {"model": "m", "messages": MSG, "temperature": 2.0, "top_p": 0.0, "n": 1.0},
    {"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "developer", "content": "d"},
                                {"role": "user", "content": [{"type": "text", "text": "hi"},
                                                             {"type": "image_url", "image_url": {"url": "x"}}]},
                                {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                                {"role": "assistant", "tool_calls": []},
                                {"role": "tool", "content": "42", "tool_call_id": "1"},
                                {"role": "function", "name": "f", "content": "x"}]},
    # Upstream extensions are not ours to judge.
    {"model": "m", "messages": MSG, "top_k": 40, "repetition_penalty": 1.1, "chat_template_kwargs": {"x": 1},
     "min_p": "whatever", "stop": ["a", "b"], "stream_options": {"include_usage": True}, "logprobs": True},
    {"model": "m", "messages": MSG, "response_format": {"type": "json_object"}},
    {"model": "m", "messages": MSG, "response_format": {"type": "regex", "regex": "a+"}},  # a server's own type
    {"model": "m", "messages": MSG, "response_format": None},
])
def test_valid_chat_bodies_pass(body):
    before = repr(body)
    validate("chat", body)
    assert repr(body) == before  # never modified


@pytest.mark.parametrize("body, param", [
    ({"model": "m", "prompt": 5}, "prompt"),
    ({"model": "m", "prompt": []}, "prompt"),
    ({"model": "m", "prompt": ["a", 1]}, "prompt"),
    ({"model": "m", "prompt": [[1, 2], []]}, "prompt"),
    ({"model": "m", "prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "prompt": "x", "echo": "no"}, "echo"),
    ({"model": ["m"], "prompt": "x"}, "model"),
])
def test_completions_violations(body, param):
    assert bad("completions", body).param == param


@pytest.mark.parametrize("prompt", ["x", ["a", "b"], [1, 2, 3], [[1, 2], [3]], None])
def test_completions_prompt_forms(prompt):
    validate("completions", {"model": "m", "prompt": prompt, "logprobs": 3})


@pytest.mark.parametrize("body, param", [
    ({"model": "e"}, "input"),
    ({"model": "e", "input": None}, "input"),
    ({"model": "e", "input": {}}, "input"),
    ({"model": "e", "input": []}, "input"),
    ({"model": 3, "input": "x"}, "model"),
])
def test_embeddings_violations(body, param):
    assert bad("embeddings", body).param == param


def test_embeddings_valid():
    validate("embeddings", {"model": "e", "input": ["a", "b"], "encoding_format": "float", "dimensions": 8})


def test_missing_is_reported_as_missing():
    assert bad("chat", {"model": "m"}).code == "missing_required_parameter"
    assert bad("chat", {"model": "m", "messages": MSG, "n": 0}).code == "invalid_value"


def test_no_model_is_left_to_llm_params_and_the_backend():
    validate("chat", {"messages": MSG})  # LLM_PARAMS model=default may apply; the openai backend forwards it
    validate("embeddings", {"input": "x", "model": None})
    for missing in (None, "", " "):
        with pytest.raises(ProxyError) as info:
            require_model(missing)
        assert (info.value.status, info.value.param, info.value.code) == (400, "model", "missing_required_parameter")
    with pytest.raises(ProxyError) as info:
        check_allowed_model(("gpt-*",), None)  # an allow-list needs a named model
    assert (info.value.status, info.value.param) == (400, "model")


def test_allow_list_patterns():
    patterns = ("gpt-4o", "claude-*", "llama-3.?-8b")
    assert model_allowed(patterns, "gpt-4o") and model_allowed(patterns, "claude-3-opus")
    assert model_allowed(patterns, "llama-3.1-8b")
    assert not model_allowed(patterns, "gpt-4o-mini") and not model_allowed(patterns, "GPT-4O")
    assert not model_allowed(patterns, None) and not model_allowed(patterns, "")
    check_allowed_model((), "anything")  # no list: everything allowed
    with pytest.raises(ProxyError) as info:
        check_allowed_model(patterns, "o1")
    assert (info.value.status, info.value.code, info.value.param) == (403, "model_not_allowed", "model")
