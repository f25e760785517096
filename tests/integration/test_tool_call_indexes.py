"""Parallel tool calls from a server that numbers every call 0, or gives no index, each call whole in a chunk of
its own (Ollama). Read by index alone they were one call whose arguments were two JSON objects end to end, which
Codex and Claude Code cannot parse; every door now gives the client two calls, as the non-streamed answer does."""

from __future__ import annotations

import json

import pytest
import requests

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Stream
from tests.proxy_process import running_proxy

TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]
CITIES = ["Paris", "Tokyo"]


def ollama_calls(indexed: bool) -> list:
    base = {"id": "chatcmpl-o", "object": "chat.completion.chunk", "created": 1, "model": "qwen3"}
    events: list = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    for n, city in enumerate(CITIES):
        call = {"id": f"call_{n}", "type": "function",
                "function": {"name": "weather", "arguments": json.dumps({"city": city})}}
        events.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
            {**call, "index": 0} if indexed else call]}}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return [*events, "[DONE]"]


@pytest.fixture(scope="module")
def shared():
    """One proxy for the module: every test runs with these settings and differs only in the fake's answers."""
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, UPSTREAM_MODE="stream") as proxy:
        yield fake, proxy


@pytest.fixture
def fresh(shared):
    """The shared fake and proxy, the fake's queue and log emptied for this test."""
    fake, proxy = shared
    fake.reset()
    return fake, proxy


@pytest.fixture(params=[True, False], ids=["index-0", "no-index"])
def served(request, fresh):
    fake, proxy = fresh
    fake.add(Stream(ollama_calls(request.param)))
    return proxy


def test_responses_door(served):
    with openai_sdk(served).responses.stream(model="qwen3", input="weather?", tools=[
            {"type": "function", "name": "weather", "parameters": TOOLS[0]["function"]["parameters"]}]) as events:
        final = events.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, json.loads(c.arguments)["city"]) for c in calls] == [("call_0", "Paris"), ("call_1", "Tokyo")]


def test_messages_door(served):
    with anthropic_sdk(served).messages.stream(model="qwen3", max_tokens=100, messages=[
            {"role": "user", "content": "weather?"}], tools=[
            {"name": "weather", "input_schema": TOOLS[0]["function"]["parameters"]}]) as events:
        final = events.get_final_message()
    assert [(b.id, b.input) for b in final.content if b.type == "tool_use"] == \
        [("call_0", {"city": "Paris"}), ("call_1", {"city": "Tokyo"})]


def test_google_door(served):
    r = requests.post(served.url + "/v1beta/models/qwen3:streamGenerateContent?alt=sse", timeout=20, json={
        "contents": [{"role": "user", "parts": [{"text": "weather?"}]}],
        "tools": [{"functionDeclarations": [{"name": "weather", "parameters": {"type": "object"}}]}]})
    parts = [part for line in r.text.splitlines() if line.startswith("data: ")
             for c in json.loads(line[6:]).get("candidates", []) for part in c["content"]["parts"]]
    assert [p["functionCall"]["args"] for p in parts if "functionCall" in p] == [{"city": c} for c in CITIES]


def test_chat_door_answering_whole_from_a_stream(served):
    answer = openai_sdk(served).chat.completions.create(model="qwen3", messages=[{"role": "user", "content": "w"}],
                                                         tools=TOOLS)
    calls = answer.choices[0].message.tool_calls
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == \
        [("call_0", {"city": "Paris"}), ("call_1", {"city": "Tokyo"})]


def test_chat_door_streams_give_each_call_an_index_of_its_own(served):
    """The chat door relays a stream as it comes, but an OpenAI client accumulates calls by index: each call's
    chunk is given its own (0, 1), the rest of the stream is untouched."""
    stream = openai_sdk(served).chat.completions.create(model="qwen3", messages=[{"role": "user", "content": "w"}],
                                                         tools=TOOLS, stream=True)
    fragments = [(c.index, c.id, c.function.arguments) for chunk in stream if chunk.choices
                 for c in chunk.choices[0].delta.tool_calls or ()]
    assert fragments == [(0, "call_0", '{"city": "Paris"}'), (1, "call_1", '{"city": "Tokyo"}')]


def test_an_id_changing_within_one_call_keeps_it_one_call(fresh):
    """Poolside sends a call's name under one id and its argument fragments under another: still one call."""
    base = {"id": "chatcmpl-p", "object": "chat.completion.chunk", "created": 1, "model": "p"}
    first = {"index": 0, "id": "call_A", "type": "function", "function": {"name": "weather", "arguments": ""}}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}}]}]
    for piece in ('{"city"', ': "Pa', 'ris"}'):
        events.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_B", "function": {"arguments": piece}}]}}]})
    events += [{**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}, "[DONE]"]
    fake, proxy = fresh
    fake.add(Stream(events))
    answer = openai_sdk(proxy).chat.completions.create(model="p", messages=[{"role": "user", "content": "w"}],
                                                       tools=TOOLS)
    assert [(c.id, c.function.name, c.function.arguments) for c in answer.choices[0].message.tool_calls] == \
        [("call_A", "weather", '{"city": "Paris"}')]
    fake.add(Stream(events))
    with anthropic_sdk(proxy).messages.stream(model="p", max_tokens=100, messages=[
            {"role": "user", "content": "w"}], tools=[{"name": "weather", "input_schema": {"type": "object"}}]) as s:
        final = s.get_final_message()
    assert [(b.id, b.name, b.input) for b in final.content if b.type == "tool_use"] == \
        [("call_A", "weather", {"city": "Paris"})]


def test_an_id_and_name_repeated_on_every_fragment_are_sent_once(fresh):
    """llama-cpp-python repeats a forced call's id and name on every fragment. The OpenAI SDK's stream helper adds
    fragments' strings together: the name came out `weatherweatherweather` and the id three times over."""
    base = {"id": "chatcmpl-l", "object": "chat.completion.chunk", "created": 1, "model": "l"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_L", "type": "function", "function": {"name": "weather", "arguments": piece}}]}}]}
        for piece in ('{"city"', ': "Pa', 'ris"}')]
    events += [{**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}, "[DONE]"]
    fake, proxy = fresh
    fake.add(Stream(events))
    with openai_sdk(proxy).chat.completions.stream(
            model="l", messages=[{"role": "user", "content": "w"}], tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "weather"}}) as stream:
        final = stream.get_final_completion()
    assert [(c.id, c.function.name, c.function.arguments) for c in final.choices[0].message.tool_calls] == \
        [("call_L", "weather", '{"city": "Paris"}')]
