"""An Interactions create request -> the internal chat request (argoproxy/fronts/interactions/request.py): every
form of `input`, steps in order, tools, generation_config, and 400s naming the field."""

from __future__ import annotations

import json

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.interactions.request import input_steps, request_to_chat, thinks

IMAGE = {"type": "image", "mime_type": "image/png", "data": "iVBORw0KGgo="}


def chat(**body):
    return request_to_chat({"model": "m", **body})


def test_a_string_a_content_and_contents_are_one_user_turn():
    assert chat(input="hi")[0]["messages"] == [{"role": "user", "content": "hi"}]
    assert chat(input={"type": "text", "text": "one"})[0]["messages"] == [{"role": "user", "content": "one"}]
    parts = chat(input=[{"type": "text", "text": "look"}, IMAGE])[0]["messages"][0]["content"]
    assert parts == [{"type": "text", "text": "look"},
                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    assert input_steps("x") == [{"type": "user_input", "content": [{"type": "text", "text": "x"}]}]


def test_steps_become_messages_in_order_and_thoughts_are_left_out():
    steps = [{"type": "user_input", "content": [{"type": "text", "text": "weather?"}]},
             {"type": "thought", "summary": [{"type": "text", "text": "hmm"}]},
             {"type": "model_output", "content": [{"type": "text", "text": "Checking."}]},
             {"type": "function_call", "id": "c1", "name": "w", "arguments": {"city": "Paris"}},
             {"type": "function_result", "call_id": "c1", "name": "w", "result": [{"type": "text", "text": "sun"}]},
             {"type": "user_input", "content": [{"type": "text", "text": "thanks"}]}]
    out, _ = chat(input=steps, system_instruction="Be brief.")
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": json.dumps({"city": "Paris"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sun"}, {"role": "user", "content": "thanks"}]


def test_function_tools_and_settings_map_and_google_run_tools_are_dropped():
    out, dropped = chat(input="x", stream=True, tools=[
        {"type": "function", "name": "w", "description": "Weather", "parameters": {"type": "object"}},
        {"type": "google_search"}, {"type": "code_execution"}],
        generation_config={"temperature": 0.2, "top_p": 0.9, "seed": 7, "max_output_tokens": 64,
                           "stop_sequences": ["END"], "thinking_level": "low", "tool_choice": "any"},
        response_format={"type": "object"}, response_mime_type="application/json")
    assert out["tools"] == [{"type": "function", "function": {"name": "w", "description": "Weather",
                                                              "parameters": {"type": "object"}}}]
    assert dropped == ("google_search", "code_execution")
    assert {k: out[k] for k in ("temperature", "top_p", "seed", "max_tokens", "stop", "reasoning_effort",
                                "tool_choice", "stream")} == {
        "temperature": 0.2, "top_p": 0.9, "seed": 7, "max_tokens": 64, "stop": ["END"], "reasoning_effort": "low",
        "tool_choice": "required", "stream": True}
    assert out["stream_options"] == {"include_usage": True}  # the upstream's usage is what the call is charged
    assert out["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert thinks({"generation_config": {"thinking_summaries": "none"}}) is False and thinks({}) is True


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}
AS_SCHEMA = {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA}}


@pytest.mark.parametrize("fmt, mime, sent", [
    ({"type": "text", "mime_type": "application/json", "schema": SCHEMA}, None, AS_SCHEMA),  # google-genai 3.6.1
    ([{"type": "text", "mime_type": "application/json", "schema": SCHEMA}], None, AS_SCHEMA),  # a list of them
    ({"type": "text", "schema": SCHEMA}, None, AS_SCHEMA),
    ({"type": "text", "schema": SCHEMA}, "application/json", AS_SCHEMA),
    ({"type": "text", "mime_type": "application/json"}, None, {"type": "json_object"}),
    ({"type": "text", "mime_type": "text/plain"}, None, None),
    ([], None, None),
    (SCHEMA, "application/json", AS_SCHEMA),  # the older form: the schema itself
    (SCHEMA, None, AS_SCHEMA),
    (None, "application/json", {"type": "json_object"}),
])
def test_response_format_typed_listed_or_a_bare_schema(fmt, mime, sent):
    out, _ = chat(input="x", response_format=fmt, response_mime_type=mime)
    assert out.get("response_format") == sent


@pytest.mark.parametrize("fmt, mime, param", [
    ({"type": "image", "mime_type": "image/png"}, None, "response_format.type"),
    ([{"type": "text"}, {"type": "audio"}], None, "response_format[1].type"),
    ([{"type": "text"}, {"type": "text"}], None, "response_format"),
    ([SCHEMA], None, "response_format[0].type"),
    ({"type": "text", "mime_type": "application/json", "schema": "{}"}, None, "response_format.schema"),
    ({"type": "text", "mime_type": "text/html"}, None, "response_format.mime_type"),
    ({"type": "text", "mime_type": "text/plain", "schema": SCHEMA}, None, "response_format.mime_type"),
    (SCHEMA, "text/plain", "response_mime_type"),
    (SCHEMA, "image/png", "response_mime_type"),
    ("a schema", None, "response_format"),
])
def test_a_response_format_that_cannot_be_served_is_a_400_naming_it(fmt, mime, param):
    with pytest.raises(ProxyError) as err:
        chat(input="x", response_format=fmt, response_mime_type=mime)
    assert (err.value.status, err.value.param) == (400, param)


@pytest.mark.parametrize("body, param", [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": 5, "input": "x"}, "model"),
    ({"model": "m", "input": []}, "input"),
    ({"model": "m", "input": [{"type": "nonsense"}]}, "input[0].type"),
    ({"model": "m", "input": [{"type": "audio", "data": "AAAA"}]}, "input[0].content[0].type"),
    ({"model": "m", "input": "x", "generation_config": {"thinking_level": "huge"}}, "generation_config.thinking_level"),
    ({"model": "m", "input": "x", "generation_config": {"max_output_tokens": 0}}, "generation_config.max_output_tokens"),
    ({"model": "m", "input": "x", "response_modalities": ["IMAGE"]}, "response_modalities"),
    ({"model": "m", "input": "x", "webhook_config": {"uris": ["https://x"]}}, "webhook_config"),
    ({"model": "m", "input": [{"type": "function_call", "name": "w", "arguments": {}}]}, "input[0].id"),
])
def test_bad_requests_are_400s_naming_the_field(body, param):
    with pytest.raises(ProxyError) as err:
        request_to_chat(body)
    assert (err.value.status, err.value.param) == (400, param) and err.value.message.startswith(f"`{param}`")


def test_an_agent_is_not_found():
    with pytest.raises(ProxyError) as err:
        request_to_chat({"agent": "deep-research", "input": "x"})
    assert (err.value.status, err.value.param) == (404, "agent")
