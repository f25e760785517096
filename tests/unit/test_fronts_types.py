"""Typed input on the front doors (issue 20, item 5): whatever type a client puts in any field a translator reads,
the door answers a 4xx in its own shape naming the field, never a 5xx (a TypeError or AttributeError further on).

Systematic, not by example: every field of a request that uses every feature of each door is replaced in turn by
every JSON type (and taken out), and hypothesis then mutates several fields at once. A request the door accepts
is taken through the rest of the door's in-process path: the chat request's checks, the answer (whole and
streamed) translated back and encoded, and its journal line."""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from argoproxy.errors import ProxyError
from argoproxy.fronts import DoorArgs, Front, front_named
from argoproxy.observe.journal import Journal
from argoproxy.jsonfast import dumps
from argoproxy.pipeline.request_shape import validate

MESSAGES = {
    "model": "m", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "image", "source": {"type": "url", "url": "http://x/y.png"}},
            {"type": "document", "title": "T", "source": {"type": "text", "data": "doc"}},
            {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "c"}]}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "AAAA"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"a": 1}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False,
             "content": [{"type": "text", "text": "r"}, {"type": "image", "source": {"type": "url", "url": "http://x"}}]},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "plain"}]},
        {"role": "user", "content": "and now?"}],
    "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}},
              {"type": "web_search_20250305", "name": "web_search"}],
    "tool_choice": {"type": "tool", "name": "get", "disable_parallel_tool_use": True},
    "stop_sequences": ["x"], "temperature": 0.5, "top_p": 0.9, "top_k": 5, "metadata": {"user_id": "u"},
    "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    "thinking": {"type": "enabled", "budget_tokens": 1024}, "stream": True,
}

RESPONSES = {
    "model": "m", "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": [
            {"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": "http://x", "detail": "low"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,AAAA", "filename": "f.pdf"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"},
                                                             {"type": "refusal", "refusal": "no"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "get", "arguments": "{}", "namespace": "ns"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "r"}]},
        {"type": "custom_tool_call", "call_id": "c2", "id": "ctc_1", "name": "patch", "input": "x"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"},
        {"type": "local_shell_call", "call_id": "c3", "id": "lsc_1", "action": {"type": "exec", "command": ["ls"]}},
        {"type": "local_shell_call_output", "id": "lsc_1", "output": "ok"},
        {"type": "additional_tools", "tools": [{"type": "function", "name": "extra", "parameters": {"type": "object"}}]},
        {"type": "web_search_call", "id": "ws_1"},
        {"role": "user", "content": "and now?"}],
    "tools": [{"type": "function", "name": "get", "description": "d", "parameters": {"type": "object"}, "strict": False},
              {"type": "custom", "name": "patch", "description": "d",
               "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
              {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "get"}]},
              {"type": "web_search"}],
    "tool_choice": {"type": "function", "name": "get"}, "parallel_tool_calls": True, "temperature": 0.5,
    "top_p": 0.9, "max_output_tokens": 100, "user": "u", "top_logprobs": 2, "stream": True, "background": False,
    "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}, "strict": True}},
    "reasoning": {"effort": "low"}, "metadata": {"k": "v"},
}
GOOGLE = {
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                                   {"inlineData": {"mimeType": "text/plain", "data": "aGk="}},
                                   {"fileData": {"mimeType": "image/png", "fileUri": "http://x/y.png"}}]},
        {"role": "model", "parts": [{"text": "t", "thought": True}, {"text": "ok"},
                                    {"functionCall": {"name": "get", "args": {"a": 1}}},
                                    {"functionCall": {"id": "c2", "name": "get", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get", "response": {"r": 1}}},
                                   {"functionResponse": {"id": "c2", "name": "get", "response": {"r": 2}}}]},
        {"parts": [{"text": "and now?"}]}],
    "tools": [{"functionDeclarations": [
        {"name": "get", "description": "d", "parameters": {"type": "OBJECT", "properties": {
            "a": {"type": "INTEGER", "nullable": True}, "b": {"type": "ARRAY", "items": {"type": "STRING"}}},
            "required": ["a"]}},
        {"name": "raw", "parametersJsonSchema": {"type": "object"}}]}, {"googleSearch": {}}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get"]}},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    "generationConfig": {"temperature": 0.5, "topP": 0.9, "topK": 5, "maxOutputTokens": 100, "seed": 1,
                         "stopSequences": ["x"], "candidateCount": 1, "responseMimeType": "application/json",
                         "responseSchema": {"type": "OBJECT"}, "thinkingConfig": {
                             "includeThoughts": True, "thinkingBudget": 1024, "thinkingLevel": "LOW"}},
}
SEEDS = {"messages": MESSAGES, "responses": RESPONSES, "google": GOOGLE}
DOOR_ARGS = {"google": DoorArgs(model="m", stream=True)}  # the Google door reads the model from its path
COUNTS = ("messages", "google")  # the doors with a token-count route

# One value of every JSON type, and the shapes the examples used (a text block whose text is a number).
WRONG: list[Any] = [None, 5, 1.5, True, "x", "", [], ["x"], {}, {"type": "text", "text": 5},
                    [{"type": "input_text", "text": 5}], [{"type": "text", "text": 5}]]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a": 1}'}}
COMPLETION = {"id": "c", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
              "message": {"role": "assistant", "content": "Hello", "reasoning_content": "hmm", "tool_calls": [CALL]}}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
CHUNKS = [{"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]},
          {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
          {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **CALL}]}}]},
          {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": COMPLETION["usage"]}]


def served(front: Front, body: dict[str, Any], count_only: bool = False) -> ProxyError | None:
    """The door's in-process path for one body: None when it was served, or the 4xx it answered. Anything
    else (an exception that is not a ProxyError, or a 5xx) fails the test."""
    try:
        chat, ex = front.to_chat(body, count_only, DOOR_ARGS.get(front.name))
        if not count_only:
            try:
                validate("chat", chat)
            except ProxyError as err:
                raise front.own_error(err) from None
    except ProxyError as err:
        assert 400 <= err.status < 500, (err.status, err.message)
        answer = front.error_body(err.status, err.body()["error"], "req_1")
        assert err.message and json.loads(dumps(answer))
        return err
    dumps(front.from_chat(copy.deepcopy(COMPLETION), ex))
    for event in front.stream(iter(copy.deepcopy(CHUNKS)), ex):
        front.encode_event(event)
    assert ex.error is None
    return None


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every place in a JSON value (key or index paths), the value itself excluded."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield prefix + (key,)
        yield from paths(child, prefix + (key,))


def replaced(body: dict[str, Any], path: tuple, value: Any, delete: bool = False) -> dict[str, Any]:
    out = copy.deepcopy(body)
    holder = out
    for key in path[:-1]:
        holder = holder[key]
    if delete:
        del holder[path[-1]]
    else:
        holder[path[-1]] = copy.deepcopy(value)
    return out


@pytest.mark.parametrize("door", ["messages", "responses", "google"])
def test_the_full_requests_are_served(door):
    assert served(front_named(door), SEEDS[door]) is None
    assert served(front_named(door), SEEDS[door], count_only=door in COUNTS) is None


@pytest.mark.parametrize("door", ["messages", "responses", "google"])
def test_every_field_of_every_type_is_a_4xx_or_served(door):
    front, seed = front_named(door), SEEDS[door]
    tried = 0
    for path in paths(seed):
        for value in WRONG:
            served(front, replaced(seed, path, value))
            if door in COUNTS:
                served(front, replaced(seed, path, value), count_only=True)
            tried += 1
        if isinstance(path[-1], str):
            served(front, replaced(seed, path, None, delete=True))
    assert tried > 1000  # every field of the seed, every type


@pytest.mark.parametrize("door", ["messages", "responses", "google"])
def test_a_wrong_type_is_named_in_the_error(door):
    """Where a string is expected, a number is refused with the field's own name."""
    front, seed = front_named(door), SEEDS[door]
    for path in paths(seed):
        holder = seed
        for key in path:
            holder = holder[key]
        if isinstance(holder, str) and path[-1] in ("text", "refusal", "title", "description", "name", "media_type",
                                                    "mimeType", "fileUri", "id"):
            err = served(front, replaced(seed, path, 5))
            if err is not None:
                where = ".".join(str(k) for k in path) if door == "messages" else \
                    "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".") \
                    if door == "google" else None
                assert err.param and (where is None or err.param == where), (path, err.param, err.message)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
                               ["type", "text", "name", "content", "source", "role", "id"]), inner, max_size=3),
                           max_leaves=6)


@pytest.mark.parametrize("door", ["messages", "responses", "google"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_several_fields_at_once(door, data):
    seed = SEEDS[door]
    places = list(paths(seed))
    body = seed
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(places))
        try:
            body = replaced(body, path, data.draw(json_values))
        except (KeyError, IndexError, TypeError):  # an earlier change removed this place
            continue
    served(front_named(door), body, count_only=door in COUNTS and data.draw(st.booleans()))


def test_a_served_body_is_journaled_at_any_depth(tmp_path):
    """The journal still writes its line when a body is too deep to walk (an upstream's answer: requests are
    refused past MAX_DEPTH)."""
    deep: Any = "x"
    for _ in range(5000):
        deep = {"a": deep}
    with Journal(tmp_path) as journal:
        journal.record("client", "id1", {"model": "m"}, deep, status=200)
    line = json.loads((tmp_path / "client_interaction.jsonl").read_text())
    assert line["input"] == {"model": "m"} and line["output"] == {"not_journaled": "nested too deeply"}


@pytest.mark.parametrize("door", ["messages", "responses"])
def test_answers_of_any_depth_are_translated(door):
    """A model can write tool arguments nested past what Python's JSON parser takes (a RecursionError, which the
    translators' `except ValueError` let through as a 500): they are kept as text."""
    front, deep = front_named(door), "[" * 5000 + "]" * 5000
    call = {"id": "call_1", "type": "function", "function": {"name": "patch", "arguments": deep}}
    completion = copy.deepcopy(COMPLETION)
    completion["choices"][0]["message"]["tool_calls"] = [call]
    chunks = copy.deepcopy(CHUNKS)
    chunks[2]["choices"][0]["delta"]["tool_calls"] = [{"index": 0, **call}]
    _, ex = front.to_chat(SEEDS[door])
    assert deep in dumps(front.from_chat(completion, ex)).decode()
    events = [front.encode_event(event) for event in front.stream(iter(chunks), ex)]
    assert ex.error is None and any(deep.encode() in event for event in events)


def test_json_nested_too_deeply_to_parse_is_a_value_error():
    from argoproxy.jsonfast import loads
    with pytest.raises(ValueError, match="nested too deeply"):
        loads("[" * 100_000 + "]" * 100_000)
