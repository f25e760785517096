"""The Google door's requests translated without HTTP (argoproxy/fronts/google/request.py, tools.py, fields.py):
contents, generationConfig, function calls matched to their responses, tools and schemas, every field checked."""

from __future__ import annotations

import json

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts import DoorArgs
from argoproxy.fronts.google import GoogleFront
from argoproxy.fronts.google.answer import function_call_part


FRONT = GoogleFront()
ARGS = DoorArgs(model="m")
USER = {"role": "user", "parts": [{"text": "hi"}]}


def to_chat(body: dict, args: DoorArgs = ARGS, count_only: bool = False) -> dict:
    return FRONT.to_chat(body, count_only, args)[0]


def test_contents_system_and_generation_config():
    chat = to_chat({"systemInstruction": {"parts": [{"text": "Be brief."}]}, "contents": [USER], "generationConfig": {
        "temperature": 0.5, "topP": 0.9, "topK": 40, "maxOutputTokens": 64, "stopSequences": ["END"], "seed": 7,
        "candidateCount": 1, "responseMimeType": "application/json", "thinkingConfig": {"thinkingLevel": "LOW"}}})
    assert chat == {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                               {"role": "user", "content": "hi"}],
                    "temperature": 0.5, "top_p": 0.9, "top_k": 40, "max_tokens": 64, "stop": ["END"], "seed": 7,
                    "response_format": {"type": "json_object"}, "reasoning_effort": "low"}


def test_whole_numbers_written_with_a_fraction_are_integers():
    """google-genai types top_k as a float: GenerateContentConfig(top_k=20) goes out as 20.0 (it was a 400)."""
    chat = to_chat({"contents": [USER], "generationConfig": {"topK": 20.0, "seed": 7.0, "maxOutputTokens": 64.0,
                                                             "thinkingConfig": {"thinkingBudget": 128.0}}})
    assert (chat["top_k"], chat["seed"], chat["max_tokens"]) == (20, 7, 64)
    assert all(type(chat[k]) is int for k in ("top_k", "seed", "max_tokens"))
    for config in ({"topK": 20.5}, {"maxOutputTokens": 0.0}, {"seed": True}):
        with pytest.raises(ProxyError) as info:
            to_chat({"contents": [USER], "generationConfig": config})
        assert info.value.status == 400 and info.value.param == "generationConfig." + next(iter(config))


@pytest.mark.parametrize("config", [{"maxOutputTokens": 2 ** 31}, {"topK": 1e30}, {"seed": -2 ** 31 - 1},
                                    {"seed": 123456789012345678901234567890}, {"maxOutputTokens": int("9" * 400)},
                                    {"thinkingConfig": {"thinkingBudget": 2.0 ** 40}}])
def test_integers_past_int32_are_refused_as_google_does(config):
    """Google's integer fields are int32 (a 400 INVALID_ARGUMENT past it); forwarded, `maxOutputTokens:
    2147483648` held a llama.cpp server on one answer for a quarter of an hour."""
    with pytest.raises(ProxyError) as info:
        to_chat({"contents": [USER], "generationConfig": config})
    assert info.value.status == 400 and "32-bit" in info.value.message
    chat = to_chat({"contents": [USER], "generationConfig": {"seed": -2 ** 31, "maxOutputTokens": 2 ** 31 - 1}})
    assert (chat["seed"], chat["max_tokens"]) == (-2 ** 31, 2 ** 31 - 1)


def test_proto_field_names_are_read_too():
    """google-genai sends some nested fields under their proto names (thinking_config.include_thoughts)."""
    chat, ex = FRONT.to_chat({"contents": [USER], "generation_config": {"max_output_tokens": 9, "thinkingConfig": {
        "include_thoughts": True}}}, False, ARGS)
    assert chat["max_tokens"] == 9 and ex.thinking is True
    with pytest.raises(ProxyError) as info:
        to_chat({"contents": [USER], "generationConfig": {"maxOutputTokens": 1, "max_output_tokens": 2}})
    assert "given twice" in info.value.message


def test_function_calls_and_responses_matched_by_name_and_order():
    """Google sends no call ids by default: a response is matched to the first unanswered call of its name."""
    chat = to_chat({"contents": [
        USER,
        {"role": "model", "parts": [{"thought": True, "text": "let me look"},
                                    {"functionCall": {"name": "read", "args": {"path": "a"}}},
                                    {"functionCall": {"name": "read", "args": {"path": "b"}}},
                                    {"functionCall": {"name": "ls", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "ls", "response": {"files": []}}},
                                   {"functionResponse": {"name": "read", "response": {"text": "A"}}},
                                   {"functionResponse": {"name": "read", "response": {"text": "B"}}},
                                   {"text": "and now?"}]}]})
    assistant, *tools, user = chat["messages"][1:]
    assert assistant["content"] == "" and [c["id"] for c in assistant["tool_calls"]] == [
        "call_1_0", "call_1_1", "call_1_2"]
    assert [json.loads(c["function"]["arguments"]) for c in assistant["tool_calls"]] == [{"path": "a"}, {"path": "b"}, {}]
    assert [(t["tool_call_id"], json.loads(t["content"])) for t in tools] == [
        ("call_1_2", {"files": []}), ("call_1_0", {"text": "A"}), ("call_1_1", {"text": "B"})]
    assert user == {"role": "user", "content": "and now?"}


def test_call_ids_are_kept_when_given():
    chat = to_chat({"contents": [USER, {"role": "model", "parts": [{"functionCall": {"id": "c9", "name": "f"}}]},
                                 {"role": "user", "parts": [{"functionResponse": {"id": "c9", "name": "f"}}]}]})
    assert chat["messages"][1]["tool_calls"][0]["id"] == chat["messages"][2]["tool_call_id"] == "c9"


def test_responses_find_their_calls_by_id_then_by_name_in_any_order():
    """Answers by id (a repeated id answered as often as it was called), by name for ids the proxy never saw, in
    reverse order; the index that replaced the scan per answer (48,000 answered calls took 36 s of CPU) keeps
    these readings."""
    calls = [{"functionCall": {"id": "same", "name": "f"}}, {"functionCall": {"id": "same", "name": "g"}},
             {"functionCall": {"name": "f"}}, {"functionCall": {"id": "c4", "name": "h"}}]
    answers = [{"functionResponse": {"id": "made-up", "name": "h"}}, {"functionResponse": {"name": "f"}},
               {"functionResponse": {"id": "same", "name": "g"}}, {"functionResponse": {"id": "same", "name": "f"}}]
    chat = to_chat({"contents": [USER, {"role": "model", "parts": calls}, {"role": "user", "parts": answers}]})
    assert [t["tool_call_id"] for t in chat["messages"][2:]] == ["c4", "same", "same", "call_1_2"]
    many = 3000
    chat = to_chat({"contents": [USER, {"role": "model", "parts": [
        {"functionCall": {"name": f"f{i}"}} for i in range(many)]}, {"role": "user", "parts": [
        {"functionResponse": {"name": f"f{i}"}} for i in reversed(range(many))]}]})
    assert [t["tool_call_id"] for t in chat["messages"][2:]] == [f"call_1_{i}" for i in reversed(range(many))]


def test_tool_arguments_nested_too_deeply_are_kept_as_text():
    """A model can write arguments nested past what a parser recurses into: kept as text, as the other doors
    do (Python's json module raised RecursionError: a 500)."""
    deep = "[" * 100_000 + "]" * 100_000
    assert function_call_part("c1", "f", deep) == {"functionCall": {"name": "f", "args": {"input": deep}, "id": "c1"}}


def test_a_response_without_a_call_is_a_400_naming_it():
    with pytest.raises(ProxyError) as info:
        to_chat({"contents": [USER, {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                              {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}]}]})
    assert info.value.status == 400 and info.value.param == "contents[2].parts[0].functionResponse"


def test_tools_schema_and_tool_config():
    dropped: dict[str, None] = {}
    from argoproxy.fronts.google.request import request_to_chat
    chat = request_to_chat({"contents": [USER], "tools": [
        {"functionDeclarations": [{"name": "f", "description": "d", "parameters": {
            "type": "OBJECT", "properties": {"n": {"type": "INTEGER", "nullable": True}, "xs": {
                "type": "ARRAY", "items": {"type": "STRING"}, "max_items": 3}}, "required": ["n"],
            "propertyOrdering": ["n", "xs"]}},
            {"name": "g", "parametersJsonSchema": {"type": "object", "properties": {"Q": {"type": "string"}}}}]},
        {"googleSearch": {}}], "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}}},
        ARGS, dropped=dropped)
    assert chat["tools"][0]["function"] == {"name": "f", "description": "d", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer"}, "xs": {"type": "array", "items": {"type": "string"},
                                                                         "maxItems": 3}}, "required": ["n"]}}
    assert chat["tools"][1]["function"]["parameters"]["properties"] == {"Q": {"type": "string"}}
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "g"}} and list(dropped) == ["googleSearch"]


def test_any_with_several_allowed_names_offers_only_those():
    """Chat's tool_choice names one function or none: ANY with several allowedFunctionNames became "required"
    over every declared function, so the model could call one the client had ruled out."""
    from argoproxy.fronts.google.request import request_to_chat
    declarations = [{"name": name, "parameters": {"type": "OBJECT"}} for name in ("f", "g", "h")]
    def config(names):
        return {"contents": [USER], "tools": [{"functionDeclarations": declarations}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}}}
    chat = request_to_chat(config(["f", "h"]), ARGS)
    assert [t["function"]["name"] for t in chat["tools"]] == ["f", "h"] and chat["tool_choice"] == "required"
    chat = request_to_chat(config([]), ARGS)
    assert len(chat["tools"]) == 3 and chat["tool_choice"] == "required"
    with pytest.raises(ProxyError) as info:
        request_to_chat(config(["x", "y"]), ARGS)
    assert info.value.status == 400 and info.value.param == "toolConfig.functionCallingConfig.allowedFunctionNames"


@pytest.mark.parametrize("body, where", [
    ({"contents": "hi"}, "contents"),
    ({"contents": []}, "contents"),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
    ({"contents": [{"role": "user", "parts": [{"text": 5}]}]}, "contents[0].parts[0].text"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}]}]},
     "contents[0].parts[0].inlineData.mimeType"),
    ({"contents": [{"parts": [{"fileData": {"fileUri": "files/abc"}}]}]}, "contents[0].parts[0].fileData"),
    ({"contents": [USER], "systemInstruction": {"parts": [{"inlineData": {}}]}}, "systemInstruction.parts[0].text"),
    ({"contents": [USER], "generationConfig": {"temperature": "hot"}}, "generationConfig.temperature"),
    ({"contents": [USER], "generationConfig": {"maxOutputTokens": True}}, "generationConfig.maxOutputTokens"),
    ({"contents": [USER], "generationConfig": {"maxOutputTokens": 0}}, "generationConfig.maxOutputTokens"),
    ({"contents": [USER], "generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount"),
    ({"contents": [USER], "generationConfig": {"stopSequences": [1]}}, "generationConfig.stopSequences"),
    ({"contents": [USER], "generationConfig": {"responseModalities": ["IMAGE"]}}, "generationConfig.responseModalities"),
    ({"contents": [USER], "generationConfig": {"thinkingConfig": {"includeThoughts": "yes"}}},
     "generationConfig.thinkingConfig.includeThoughts"),
    ({"contents": [USER], "tools": [{"functionDeclarations": [{"description": "no name"}]}]},
     "tools[0].functionDeclarations[0].name"),
    ({"contents": [USER], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": 1}}]}]},
     "tools[0].functionDeclarations[0].parameters.type"),
    ({"contents": [USER], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}, "tools": [
        {"functionDeclarations": [{"name": "f"}]}]}, "toolConfig.functionCallingConfig.mode"),
    ({"contents": [USER], "cachedContent": "cachedContents/1"}, "cachedContent"),
])
def test_every_field_read_is_type_checked(body, where):
    with pytest.raises(ProxyError) as info:
        to_chat(body)
    assert info.value.status == 400 and info.value.param == where and info.value.message.startswith(where + ":")


def test_deep_schemas_are_refused_not_recursed_into():
    schema: dict = {"type": "STRING"}
    for _ in range(200):
        schema = {"type": "ARRAY", "items": schema}
    with pytest.raises(ProxyError) as info:
        to_chat({"contents": [USER], "tools": [{"functionDeclarations": [{"name": "f", "parameters": schema}]}]})
    assert info.value.status == 400 and "nested" in info.value.message
