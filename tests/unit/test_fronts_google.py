"""The Google GenAI front door's translations without HTTP (request -> chat; chat answer and chunks -> Gemini
shapes), and the door's routes, keys and errors in-process (build_proxy with a fake upstream object)."""

from __future__ import annotations

import json

import pytest

from argoproxy.errors import ProxyError
from argoproxy.edge.http_objects import Request
from argoproxy.fronts import DoorArgs
from argoproxy.fronts.google import ARGS_LIMIT, GoogleFront, function_call_part
from argoproxy.edge.paths import canonical
from tests.fakes.fake_upstream import sse_chunks

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
    from argoproxy.fronts.google import request_to_chat
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
    from argoproxy.fronts.google import request_to_chat
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


# ---------------------------------------------------------------------------------------------- answers

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


def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def stream_bytes(chunks: list[dict], sse: bool = True) -> bytes:
    _, ex = FRONT.to_chat({"contents": [USER]}, False, DoorArgs(model="m", stream=True, sse=sse))
    return b"".join(FRONT.encode_event(e) for e in FRONT.stream(iter(chunks), ex))


TOOL_CHUNKS = [chunk({"content": "Let me check."}),
               chunk({"tool_calls": [{"index": 0, "id": "call_7", "function": {"name": "f", "arguments": '{"a"'}}]}),
               chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': 1}'}}]}),
               chunk({}, "tool_calls"), {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6,
                                                                  "total_tokens": 10}}]


def test_stream_sse_sends_text_at_once_and_calls_whole():
    data = stream_bytes(TOOL_CHUNKS)
    events = [json.loads(e[len(b"data: "):]) for e in data.split(b"\r\n\r\n") if e]
    assert [e["candidates"][0]["content"]["parts"] for e in events] == [
        [{"text": "Let me check."}], [{"functionCall": {"name": "f", "args": {"a": 1}, "id": "call_7"}}]]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP" and events[-1]["usageMetadata"]["totalTokenCount"] == 10
    assert len({e["responseId"] for e in events}) == 1


def test_stream_without_alt_sse_is_one_json_array():
    events = json.loads(stream_bytes(TOOL_CHUNKS, sse=False))
    assert len(events) == 2 and events[1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("sse", [True, False])
def test_stream_errors_end_in_googles_shape(sse):
    def broken():
        yield chunk({"content": "Hel"})
        raise ProxyError(502, "The upstream broke off.")
    _, ex = FRONT.to_chat({"contents": [USER]}, False, DoorArgs(model="m", stream=True, sse=sse))
    data = b"".join(FRONT.encode_event(e) for e in FRONT.stream(broken(), ex))
    if sse:  # the error as Google writes one mid-stream: the bare object, after the events
        *chunks, error = data.split(b"\r\n\r\n")
        assert chunks[0].startswith(b"data: ") and not error.startswith(b"data:") and error.endswith(b"}\r\n")
        events = [json.loads(e[6:]) for e in chunks] + [json.loads(error)]
    else:
        events = json.loads(data)
    assert events[-1] == {"error": {"code": 502, "message": "The upstream broke off.", "status": "UNAVAILABLE"}}
    assert ex.error is not None and ex.error.status == 502


def test_stream_holds_bounded_tool_arguments():
    huge = "x" * (1024 * 1024)
    chunks = [chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]})]
    chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": huge}}]})] * (ARGS_LIMIT // len(huge) + 1)
    *_, error = stream_bytes(chunks).split(b"\r\n\r\n")
    assert json.loads(error)["error"]["code"] == 502 and "exceed" in json.loads(error)["error"]["message"]


def test_stream_holds_many_tiny_argument_fragments_joined():
    """7.9 million one-byte fragments (within ARGS_LIMIT) were as many string objects: half a gigabyte held.
    They are joined as they come; the call goes out whole and right."""
    from argoproxy.fronts.google import GoogleStream
    _, ex = FRONT.to_chat({"contents": [USER]}, False, DoorArgs(model="m", stream=True))
    state = GoogleStream(ex)
    state.tool_call(0, {"id": "c", "function": {"name": "f", "arguments": ""}})
    for ch in '{"a": "' + "x" * 20000 + '"}':
        state.tool_call(0, {"function": {"arguments": ch}})
    assert len(state.waiting[0][2]) < 200
    assert json.loads("".join(state.waiting[0][2])) == {"a": "x" * 20000}


# ---------------------------------------------------------------------------------------------- the door

BODY = {"contents": [USER]}


@pytest.mark.parametrize("target, model, kind", [
    ("/v1beta/models/gpt-4o:generateContent", "gpt-4o", "generate_content"),
    ("/v1/models/gpt-4o:streamGenerateContent", "gpt-4o", "stream_generate_content"),
    ("/V1BETA/MODELS/Gpt-4o%3aCOUNTTOKENS", "Gpt-4o", "count_tokens"),
    ("/v1beta/models/argo:gpt-4o:generateContent", "argo:gpt-4o", "generate_content"),
    ("/v1beta/models/meta-llama/Llama-3:generateContent", "meta-llama/Llama-3", "generate_content"),
    ("/v1beta/models/argo:gpt-4o", "argo:gpt-4o", "model"),
    ("/v1beta/models/x:embedContent", "x", "embed_content"),
    ("/v1beta/models/x:predict", "x:predict", "model"),
])
def test_the_model_segment(target, model, kind):
    from argoproxy.edge.classify import standard_table
    from argoproxy.fronts import FRONTS
    route = standard_table(True, ("*",), FRONTS.values()).classify(canonical(target))
    assert (route.model, route.kind, route.front) == (model, kind, "google")


def test_keys_checked_and_never_forwarded(make):
    door, up, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="sk-good")
    ok = door.handle(Request.of("POST", "/v1beta/models/m:generateContent?key=sk-good&alt=json", BODY))
    assert ok.status_code == 200 and "key" not in up.sent[-1].url
    ok = door.handle(Request.of("POST", "/v1beta/models/m:generateContent", BODY, headers={"X-Goog-Api-Key": "sk-good"}))
    assert ok.status_code == 200 and "sk-good" not in json.dumps(up.sent[-1].headers)
    for req in (Request.of("POST", "/v1beta/models/m:generateContent?key=bad", BODY),
                Request.of("POST", "/v1/chat/completions?key=sk-good", {"model": "m", "messages": []})):
        answer = door.handle(req)
        assert answer.status_code == 401
    assert json.loads(door.handle(Request.of("GET", "/v1beta/models?key=bad")).get_data())["error"]["status"] \
        == "UNAUTHENTICATED"


def test_auth_off_keys_still_stay_here(make):
    door, up, _ = make()
    door.handle(Request.of("POST", "/v1beta/models/m:generateContent?key=AIzaClientKey", BODY,
                           headers={"X-Goog-Api-Key": "AIzaClientKey", "X-Goog-Api-Client": "genai-py"}))
    sent = up.sent[-1]
    assert "AIza" not in sent.url + json.dumps(sent.headers) and "goog" not in json.dumps(sent.headers).lower()


def test_allow_list_on_the_path_model_and_the_lists(make):
    door, up, _ = make(ALLOWED_MODELS="gpt-4o")
    refused = door.handle(Request.of("POST", "/v1beta/models/evil:generateContent", BODY))
    body = json.loads(refused.get_data())
    assert refused.status_code == 403 and body["error"]["status"] == "PERMISSION_DENIED" and up.sent == []
    listing = json.loads(door.handle(Request.of("GET", "/v1beta/models")).get_data())
    assert [m["name"] for m in listing["models"]] == ["models/gpt-4o"]
    assert door.handle(Request.of("GET", "/v1beta/models/evil")).status_code == 404
    google = door.handle(Request.of("GET", "/v1/models", headers={"X-Goog-Api-Client": "google-genai-sdk"}))
    assert "models" in json.loads(google.get_data())  # /v1/models in Google's shape for a Google client
    assert "data" in json.loads(door.handle(Request.of("GET", "/v1/models")).get_data())


def test_stream_route_sends_a_stream(make):
    door, up, _ = make()
    up.stream(sse_chunks(["Hel", "lo"]))
    answer = door.handle(Request.of("POST", "/v1beta/models/m:streamGenerateContent?alt=sse", BODY))
    data = answer.get_data()
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert json.loads(up.sent[-1].body)["stream"] is True and data.count(b"data: ") == 3
    bad = door.handle(Request.of("POST", "/v1beta/models/m:streamGenerateContent?alt=proto", BODY))
    assert bad.status_code == 400


def test_key_limits_answer_resource_exhausted(make, monkeypatch):
    monkeypatch.setenv("TEAM_A_KEY", "sk-team-a")
    door, up, _ = make(ENABLE_AUTH="true", KEY_LIMITS='{"TEAM_A_KEY": {"rpm": 1}}', TEAM_A_KEY="sk-team-a")
    first = door.handle(Request.of("POST", "/v1beta/models/m:generateContent?key=sk-team-a", BODY))
    second = door.handle(Request.of("POST", "/v1beta/models/m:generateContent?key=sk-team-a", BODY))
    assert first.status_code == 200 and second.status_code == 429 and len(up.sent) == 1
    assert json.loads(second.get_data())["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert int(second.headers["Retry-After"]) >= 1


def test_embed_content_and_a_batch_as_one_embeddings_request():
    from argoproxy.fronts.google import GoogleArgs
    one, batch = GoogleArgs(model="e", method="embed_content"), GoogleArgs(model="e", method="batch_embed_contents")
    content = {"parts": [{"text": "Par"}, {"text": "is"}]}
    chat, ex = FRONT.to_chat({"content": content, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 8}, False, one)
    assert chat == {"model": "e", "input": ["Paris"], "dimensions": 8} and (ex.kind, ex.path) == ("embeddings",
                                                                                               "v1/embeddings")
    result = {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],
              "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    assert FRONT.from_chat(result, ex) == {"embedding": {"values": [1.0]}}  # the first input's (index 0)
    chat, ex = FRONT.to_chat({"requests": [{"model": "models/e", "content": content}, {"content": {"parts": [
        {"text": "Rome"}]}}]}, False, batch)
    assert chat == {"model": "e", "input": ["Paris", "Rome"]}
    assert FRONT.from_chat(result, ex) == {"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}
    for body, args, where in (
            ({"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}}, one, "parts[0]"),
            ({}, one, "content"),
            ({"requests": []}, batch, "requests"),
            ({"requests": [{"model": "models/x", "content": content}]}, batch, "requests[0].model"),
            ({"requests": [{"content": content, "outputDimensionality": 2},
                           {"content": content, "outputDimensionality": 3}]}, batch, "outputDimensionality")):
        with pytest.raises(ProxyError) as info:
            FRONT.to_chat(body, False, args)
        assert info.value.status == 400 and where in info.value.message, (where, info.value.message)
    with pytest.raises(ProxyError) as info:
        FRONT.from_chat({"data": "nope"}, ex)
    assert info.value.status == 502
