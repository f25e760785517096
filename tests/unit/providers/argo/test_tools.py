"""Tool calling on the ARGO backend: OpenAI <-> family-native shapes, and prompt-based tool use."""

from __future__ import annotations

import copy
import json

import pytest
from openai.types.chat import ChatCompletionMessage

from argoproxy.providers.argo.tools import decode_tool_calls, encode_tools, parse_tool_call_tags
from argoproxy.errors import ProxyError

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}

# A whole multi-turn conversation: a parallel call with two results, then a single call and its result.
CONVERSATION = {
    "model": "x",
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"id": "call_p", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_r", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ]},
        # Results arrive out of order: they must still pair with their calls by id.
        {"role": "tool", "tool_call_id": "call_r", "content": "Rome: 25C"},
        {"role": "tool", "tool_call_id": "call_p", "content": [{"type": "text", "text": "Paris: 18C"}]},
        {"role": "assistant", "content": "Paris 18C, Rome 25C."},
        {"role": "user", "content": "And the time?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_t", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_t", "content": "12:00"},
    ],
    "tools": [WEATHER, TIME],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
}


def validate(text, calls) -> ChatCompletionMessage:
    return ChatCompletionMessage.model_validate({"role": "assistant", "content": text, "tool_calls": calls or None})


# =========================================================================== encode: openai


def test_openai_family_is_unchanged_and_input_not_modified():
    before = copy.deepcopy(CONVERSATION)
    out = encode_tools(CONVERSATION, "openai", prompt_tools=False)
    assert out == CONVERSATION and out is not CONVERSATION
    assert CONVERSATION == before


@pytest.mark.parametrize("family", ["openai", "anthropic", "google", "unknown"])
def test_body_without_tools_or_history_is_returned_as_is(family):
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    assert encode_tools(body, family, prompt_tools=False) is body


# =========================================================================== encode: anthropic


def test_anthropic_tools_and_choices():
    out = encode_tools(CONVERSATION, "anthropic", prompt_tools=False)
    assert out["tools"] == [
        {"name": "get_weather", "description": "Weather for a city",
         "input_schema": WEATHER["function"]["parameters"]},
        {"name": "get_time", "description": "", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out["tool_choice"] == {"type": "auto"}
    assert "parallel_tool_calls" not in out
    for choice, expected in [("required", {"type": "any"}), ("none", {"type": "none"}),
                             ({"type": "function", "function": {"name": "get_time"}}, {"type": "tool", "name": "get_time"})]:
        assert encode_tools({**CONVERSATION, "tool_choice": choice}, "anthropic", False)["tool_choice"] == expected


def test_anthropic_multi_turn_conversation():
    messages = encode_tools(CONVERSATION, "anthropic", prompt_tools=False)["messages"]
    assert messages == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "call_p", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_r", "name": "get_weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_r", "content": "Rome: 25C"},
            {"type": "tool_result", "tool_use_id": "call_p", "content": [{"type": "text", "text": "Paris: 18C"}]},
        ]},
        {"role": "assistant", "content": "Paris 18C, Rome 25C."},
        {"role": "user", "content": "And the time?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_t", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_t", "content": "12:00"}]},
    ]


def test_anthropic_history_converted_even_without_tools_in_the_request():
    body = {k: v for k, v in CONVERSATION.items() if k not in ("tools", "tool_choice", "parallel_tool_calls")}
    out = encode_tools(body, "anthropic", prompt_tools=False)
    assert "tools" not in out and "tool_choice" not in out
    assert out["messages"][2]["content"][1]["type"] == "tool_use"


# =========================================================================== encode: google


def test_google_tools_and_choices():
    out = encode_tools(CONVERSATION, "google", prompt_tools=False)
    assert out["tools"] == [
        {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER["function"]["parameters"]},
        {"name": "get_time", "description": "", "parameters": {"type": "object", "properties": {}}},
    ]
    assert out["tool_choice"] == "AUTO" and "parallel_tool_calls" not in out
    for choice, expected in [("required", "ANY"), ("none", "NONE"),
                             ({"type": "function", "function": {"name": "get_weather"}},
                              {"mode": "FUNCTION_CALLING", "allowed_function_names": ["get_weather"]})]:
        assert encode_tools({**CONVERSATION, "tool_choice": choice}, "google", False)["tool_choice"] == expected


def test_google_multi_turn_conversation_splits_parallel_calls_into_pairs():
    messages = encode_tools(CONVERSATION, "google", prompt_tools=False)["messages"]
    assert messages == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking both.",
         "tool_calls": [{"id": "call_p", "name": "get_weather", "args": {"city": "Paris"}}]},
        {"role": "tool", "tool_call_id": "call_p", "content": [{"type": "text", "text": "Paris: 18C"}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_r", "name": "get_weather", "args": {"city": "Rome"}}]},
        {"role": "tool", "tool_call_id": "call_r", "content": "Rome: 25C"},
        {"role": "assistant", "content": "Paris 18C, Rome 25C."},
        {"role": "user", "content": "And the time?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_t", "name": "get_time", "args": {}}]},
        {"role": "tool", "tool_call_id": "call_t", "content": "12:00"},
    ]


def test_google_pairs_fall_back_to_position_when_ids_do_not_match():
    body = {"messages": [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "x1", "content": "first"},
        {"role": "tool", "tool_call_id": "x2", "content": "second"},
    ]}
    messages = encode_tools(body, "google", prompt_tools=False)["messages"]
    assert [(m["role"], m.get("content")) for m in messages] == [
        ("assistant", ""), ("tool", "first"), ("assistant", None), ("tool", "second")]
    assert [m["tool_calls"][0]["name"] for m in messages if m["role"] == "assistant"] == ["f", "g"]


def test_google_pairs_take_linear_time():
    # A search of the results per call made 20,000 parallel calls quadratic (minutes of a worker's CPU).
    import time
    n = 20_000
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in range(n)]
    results = [{"role": "tool", "tool_call_id": f"c{i}", "content": str(i)} for i in reversed(range(n))]
    start = time.process_time()
    messages = encode_tools({"messages": [{"role": "assistant", "content": "", "tool_calls": calls}, *results]},
                            "google", prompt_tools=False)["messages"]
    assert time.process_time() - start < 2.0  # 0.4 s; was over 120 s
    assert [m["tool_call_id"] for m in messages if m["role"] == "tool"] == [f"c{i}" for i in range(n)]


# =========================================================================== encode: errors


@pytest.mark.parametrize("body,param", [
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function"}}, "tool_choice"),
])
@pytest.mark.parametrize("family,prompt", [("anthropic", False), ("google", False), ("unknown", False), ("openai", True)])
def test_bad_tools_are_400(body, param, family, prompt):
    with pytest.raises(ProxyError) as info:
        encode_tools({"messages": [{"role": "user", "content": "hi"}], **body}, family, prompt)
    assert info.value.status == 400 and info.value.param == param


# =========================================================================== encode: prompt-based


@pytest.mark.parametrize("family,prompt", [("unknown", False), ("openai", True), ("anthropic", True), ("google", True)])
def test_prompt_based_tools(family, prompt):
    out = encode_tools(CONVERSATION, family, prompt)
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & out.keys()
    system = out["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are helpful.\n\n# Tools")
    assert '{"name":"get_weather","description":"Weather for a city","parameters":{' in system["content"]
    assert '<tool_call>{"name": "<tool name>", "arguments": {<arguments>}}</tool_call>' in system["content"]
    for message in out["messages"]:
        assert message["role"] in ("system", "user", "assistant")
        assert isinstance(message["content"], str) and "tool_calls" not in message


def test_prompt_based_multi_turn_history_is_text():
    messages = encode_tools(CONVERSATION, "unknown", prompt_tools=False)["messages"]
    assert messages[2] == {"role": "assistant", "content": (
        "Checking both.\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>')}
    assert messages[3] == {"role": "user", "content": (
        '<tool_result name="get_weather" id="call_r">\nRome: 25C\n</tool_result>\n\n'
        '<tool_result name="get_weather" id="call_p">\nParis: 18C\n</tool_result>')}
    assert messages[4:7] == [
        {"role": "assistant", "content": "Paris 18C, Rome 25C."},
        {"role": "user", "content": "And the time?"},
        {"role": "assistant", "content": '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'},
    ]
    assert messages[7] == {"role": "user", "content": '<tool_result name="get_time" id="call_t">\n12:00\n</tool_result>'}
    # What the model is told to write parses back into the same calls.
    _, calls = parse_tool_call_tags(messages[2]["content"])
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]


@pytest.mark.parametrize("choice,parallel,phrases", [
    ("required", True, ["must call at least one tool", "several tools"]),
    ("none", True, ["Do not call any tool"]),
    ({"type": "function", "function": {"name": "get_time"}}, False, ['must call the tool "get_time"', "at most one"]),
])
def test_prompt_based_tool_choice_and_parallel(choice, parallel, phrases):
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [TIME], "tool_choice": choice,
            "parallel_tool_calls": parallel}
    out = encode_tools(body, "unknown", prompt_tools=False)
    system = out["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("# Tools")
    assert out["messages"][1] == {"role": "user", "content": "hi"}
    for phrase in phrases:
        assert phrase in system["content"]


def test_prompt_based_system_field_and_content_parts():
    out = encode_tools({"system": "Be brief.", "prompt": ["hi"], "tools": [TIME]}, "unknown", False)
    assert out["system"].startswith("Be brief.\n\n# Tools")
    body = {"messages": [{"role": "system", "content": [{"type": "text", "text": "Sys"}]},
                         {"role": "user", "content": "hi"}], "tools": [TIME]}
    content = encode_tools(body, "unknown", False)["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "Sys"} and content[1]["text"].startswith("# Tools")


# =========================================================================== decode: native shapes


def test_decode_plain_string_in_native_mode_is_text():
    text = 'I would write <tool_call>{"name": "x", "arguments": {}}</tool_call> here.'
    assert decode_tool_calls(text, "openai", prompt_tools=False) == (text, [])
    assert decode_tool_calls(None, "openai", prompt_tools=False) == (None, [])


def test_decode_openai():
    response = {"content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"type": "function", "function": {"name": "get_time", "arguments": {}}}]}
    text, calls = decode_tool_calls(response, "openai", prompt_tools=False)
    assert text is None
    assert calls[0] == {"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    assert calls[1]["id"].startswith("call_") and calls[1]["function"]["arguments"] == "{}"
    validate(text, calls)


def test_decode_anthropic_tool_calls_and_content_blocks():
    response = {"content": "Let me check.", "tool_calls": [
        {"id": "toolu_vrtx_01", "input": {"city": "Rome"}, "name": "get_weather", "type": "tool_use"}]}
    text, calls = decode_tool_calls(response, "anthropic", prompt_tools=False)
    assert text == "Let me check."
    assert calls == [{"id": "toolu_vrtx_01", "type": "function",
                      "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]
    validate(text, calls)
    blocks = {"content": [
        {"type": "text", "text": "Checking "}, {"type": "text", "text": "both."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}],
        # The same call listed in both places is reported once.
        "tool_calls": [{"id": "toolu_2", "input": {"city": "Rome"}, "name": "get_weather", "type": "tool_use"}]}
    text, calls = decode_tool_calls(blocks, "anthropic", prompt_tools=False)
    assert text == "Checking both." and [c["id"] for c in calls] == ["toolu_1", "toolu_2"]
    validate(text, calls)
    wrapped = decode_tool_calls({"response": {"content": "hi", "tool_calls": []}}, "anthropic", False)
    assert wrapped == ("hi", [])


def test_decode_google():
    response = {"content": "", "tool_calls": [
        {"id": None, "args": {"city": "Paris"}, "name": "get_weather"},
        {"id": "g2", "args": {}, "name": "get_time"}]}
    text, calls = decode_tool_calls(response, "google", prompt_tools=False)
    assert text is None
    assert calls[0]["id"].startswith("call_") and calls[0]["id"] != calls[1]["id"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {})]
    validate(text, calls)


def test_decode_dict_without_calls_keeps_text_and_drops_nameless_calls():
    assert decode_tool_calls({"content": "plain", "tool_calls": None}, "openai", False) == ("plain", [])
    assert decode_tool_calls({"content": "x", "tool_calls": [{"args": {}}]}, "google", False) == ("x", [])


# =========================================================================== decode: prompt-based


@pytest.mark.parametrize("family,prompt", [("unknown", False), ("openai", True), ("anthropic", True)])
def test_decode_prompt_single_call(family, prompt):
    text, calls = decode_tool_calls(
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', family, prompt)
    assert text is None
    assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    validate(text, calls)


def test_decode_prompt_several_calls_with_text_between():
    response = ("I'll look both up.\n"
                '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
                "and then\n"
                '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>\n')
    text, calls = decode_tool_calls(response, "unknown", prompt_tools=False)
    assert text == "I'll look both up.\n\nand then"
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert len({c["id"] for c in calls}) == 2
    validate(text, calls)


def test_decode_prompt_invalid_json_is_kept_as_text():
    response = ('Before <tool_call>{"name": "broken", "arguments": {</tool_call> mid '
                '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>')
    text, calls = decode_tool_calls(response, "unknown", prompt_tools=False)
    assert text == 'Before <tool_call>{"name": "broken", "arguments": {</tool_call> mid'
    assert [c["function"]["name"] for c in calls] == ["get_time"]
    only_invalid = "x <tool_call>not json</tool_call>"
    assert decode_tool_calls(only_invalid, "unknown", False) == (only_invalid, [])
    no_name = '<tool_call>{"arguments": {}}</tool_call>'
    assert decode_tool_calls(no_name, "unknown", False) == (no_name, [])


def test_decode_prompt_unclosed_tag_is_text():
    response = 'Sure. <tool_call>{"name": "get_time", "arguments": {}}'
    assert decode_tool_calls(response, "unknown", prompt_tools=False) == (response, [])
    mixed = ('<tool_call>{"name": "a", "arguments": {}}</tool_call> then <tool_call>{"name": "b"')
    text, calls = decode_tool_calls(mixed, "unknown", prompt_tools=False)
    assert [c["function"]["name"] for c in calls] == ["a"] and text == 'then <tool_call>{"name": "b"'
    # An unclosed tag before a complete one does not swallow it.
    text, calls = decode_tool_calls('A <tool_call>{"name": "x" <tool_call>{"name": "b", "arguments": {}}</tool_call>',
                                    "unknown", prompt_tools=False)
    assert text == 'A <tool_call>{"name": "x"' and [c["function"]["name"] for c in calls] == ["b"]


def test_decode_prompt_nested_json_and_escaped_quotes():
    arguments = {"query": {"filters": [{"field": "name", "op": "eq", "value": 'say "hi" {now}'}],
                           "limit": 5, "nested": {"deep": {"deeper": [1, [2, {"x": None}]]}}},
                 "path": "C:\\tmp\\x", "unicode": "caf\u00e9 \u4f60\u597d"}
    payload = json.dumps({"name": "search", "arguments": arguments})
    text, calls = decode_tool_calls(f"<tool_call>{payload}</tool_call>", "unknown", prompt_tools=False)
    assert text is None and json.loads(calls[0]["function"]["arguments"]) == arguments
    validate(text, calls)


def test_decode_prompt_tolerates_fences_string_arguments_and_parameters_key():
    text, calls = decode_tool_calls(
        '<tool_call>```json\n{"name": "a", "arguments": "{\\"k\\": 1}"}\n```</tool_call>'
        '<tool_call>{"name": "b", "parameters": {"k": 2}}</tool_call>', "unknown", prompt_tools=False)
    assert text is None
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("a", {"k": 1}), ("b", {"k": 2})]


def test_decode_prompt_tags_inside_a_dict_content():
    response = {"content": 'ok <tool_call>{"name": "get_time", "arguments": {}}</tool_call>', "tool_calls": []}
    text, calls = decode_tool_calls(response, "google", prompt_tools=True)
    assert text == "ok" and calls[0]["function"]["name"] == "get_time"


def test_decode_prompt_plain_text_and_empty():
    assert decode_tool_calls("Just an answer.", "unknown", prompt_tools=False) == ("Just an answer.", [])
    assert decode_tool_calls("", "unknown", prompt_tools=False) == ("", [])


def test_a_fence_full_of_spaces_is_parsed_in_linear_time():
    # A client can ask the model to answer `<tool_call>``` + thousands of spaces`; the fence pattern this
    # replaced took 6 s on 2000 spaces (and grew with their cube).
    import time
    from argoproxy.providers.argo.tools import parse_tool_call_tags
    started = time.perf_counter()
    text, calls = parse_tool_call_tags("<tool_call>```" + " " * 50_000 + "x```</tool_call>")
    assert time.perf_counter() - started < 0.5 and calls == []
    text, calls = parse_tool_call_tags('<tool_call>```json\n{"name": "f", "arguments": {"a": 1}}\n```</tool_call>')
    assert text is None and calls[0]["function"]["name"] == "f"
