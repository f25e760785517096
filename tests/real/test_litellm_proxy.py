"""LiteLLM's proxy (mock models) as the upstream, through the real app under Gunicorn, driven by the real
clients (openai SDK sync, async, streaming and tools; langchain-openai; litellm as a client; curl). Every
answer is compared with the same call made directly to LiteLLM: same shape, same content."""

from __future__ import annotations

import asyncio
import json
import subprocess

import openai
import pytest
import requests

from tests.proxy_process import running_proxy
from tests.real.answers import (comparable, header_values, shape, sse_events,
                                stream_content)

pytestmark = pytest.mark.timeout(300)  # LiteLLM's proxy needs tens of seconds to start on a busy machine

MSG = [{"role": "user", "content": "hi"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def proxy(litellm_server):
    with running_proxy(TARGET_BASE_URL=litellm_server.base_url) as p:
        yield p


@pytest.fixture(scope="module")
def reasoning_proxy(litellm_server):
    with running_proxy(TARGET_BASE_URL=litellm_server.base_url, THINK_MODE="reasoning") as p:
        yield p


def sdk(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)


def both(litellm_server, proxy):
    """A client straight to LiteLLM and one through the proxy, with the same key."""
    return sdk(litellm_server.base_url, litellm_server.key), sdk(proxy.base_url, litellm_server.key)


def post(base_url: str, key: str, body: dict, **headers: str) -> requests.Response:
    return requests.post(base_url + "/chat/completions", json=body, timeout=30, stream=body.get("stream", False),
                         headers={"Authorization": f"Bearer {key}", **headers})


# ------------------------------------------------------------------ openai SDK
def test_sdk_non_stream_same_answer_and_shape(litellm_server, proxy):
    direct, proxied = both(litellm_server, proxy)
    a = direct.chat.completions.create(model="mock-gpt", messages=MSG).model_dump(exclude_unset=True)
    b = proxied.chat.completions.create(model="mock-gpt", messages=MSG).model_dump(exclude_unset=True)
    assert b["choices"][0]["message"]["content"] == "Hello from the LiteLLM mock."
    assert comparable(b) == comparable(a)
    assert shape(b) == shape(a)


def test_sdk_stream_with_usage_same_text_chunks_and_usage(litellm_server, proxy):
    direct, proxied = both(litellm_server, proxy)
    kwargs = dict(model="mock-gpt", messages=MSG, stream=True, stream_options={"include_usage": True})
    a = [c.model_dump(exclude_unset=True) for c in direct.chat.completions.create(**kwargs)]
    b = [c.model_dump(exclude_unset=True) for c in proxied.chat.completions.create(**kwargs)]
    assert stream_content(b) == stream_content(a) == "Hello from the LiteLLM mock."
    assert [shape(c) for c in b] == [shape(c) for c in a]
    assert b[-1]["choices"] == [] and b[-1]["usage"] == a[-1]["usage"]


def test_async_sdk_non_stream_and_stream(litellm_server, proxy):
    async def run(base_url: str) -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=base_url, api_key=litellm_server.key, max_retries=0) as c:
            whole = await c.chat.completions.create(model="mock-gpt", messages=MSG)
            stream = await c.chat.completions.create(model="mock-gpt", messages=MSG, stream=True)
            text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
            return whole.choices[0].message.content, text

    assert asyncio.run(run(proxy.base_url)) == asyncio.run(run(litellm_server.base_url))


def test_sdk_tool_call_same_as_direct(litellm_server, proxy):
    direct, proxied = both(litellm_server, proxy)
    kwargs = dict(model="mock-tools", messages=MSG, tools=[WEATHER_TOOL])
    a = direct.chat.completions.create(**kwargs).model_dump(exclude_unset=True)
    b = proxied.chat.completions.create(**kwargs).model_dump(exclude_unset=True)
    call = b["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert comparable(b) == comparable(a)


def test_models_list_same_as_direct(litellm_server, proxy):
    direct, proxied = both(litellm_server, proxy)
    assert [m.id for m in proxied.models.list()] == [m.id for m in direct.models.list()]


def test_unknown_key_refused_as_directly_in_openai_shape(litellm_server, proxy):
    """LiteLLM without a database refuses a key that is not its master key (400 "No connected db.")."""
    with pytest.raises(openai.APIStatusError) as direct:
        sdk(litellm_server.base_url, "sk-wrong").chat.completions.create(model="mock-gpt", messages=MSG)
    with pytest.raises(openai.APIStatusError) as proxied:
        sdk(proxy.base_url, "sk-wrong").chat.completions.create(model="mock-gpt", messages=MSG)
    assert proxied.value.status_code == direct.value.status_code
    assert 400 <= proxied.value.status_code < 500
    assert set(proxied.value.body) >= {"message", "type"}
    assert proxied.value.body["message"] == direct.value.body["message"]
    assert "sk-wrong" not in json.dumps(proxied.value.body)


# ------------------------------------------------------------------ think tags (the mock splits <think> across chunks)
def test_think_block_stripped_whole_and_streamed(litellm_server, proxy):
    direct, proxied = both(litellm_server, proxy)
    raw = direct.chat.completions.create(model="mock-think", messages=MSG).choices[0].message.content
    assert raw == "<think>The user greets me.</think>Hello!"
    assert proxied.chat.completions.create(model="mock-think", messages=MSG).choices[0].message.content == "Hello!"
    direct_chunks = [c.choices[0].delta.content for c in
                     direct.chat.completions.create(model="mock-think", messages=MSG, stream=True) if c.choices]
    assert "<th" in direct_chunks  # the tag really is split across events upstream
    r = post(proxy.base_url, litellm_server.key, {"model": "mock-think", "messages": MSG, "stream": True})
    assert stream_content(sse_events(r)) == "Hello!"


def test_think_block_as_reasoning_content(litellm_server, reasoning_proxy):
    key = litellm_server.key
    whole = post(reasoning_proxy.base_url, key, {"model": "mock-think", "messages": MSG}).json()
    assert whole["choices"][0]["message"]["content"] == "Hello!"
    assert whole["choices"][0]["message"]["reasoning_content"] == "The user greets me."
    events = sse_events(post(reasoning_proxy.base_url, key, {"model": "mock-think", "messages": MSG, "stream": True}))
    assert stream_content(events) == "Hello!"
    assert stream_content(events, "reasoning_content") == "The user greets me."


# ------------------------------------------------------------------ headers on a real server's stream
def test_stream_carries_one_value_per_header(litellm_server, proxy):
    r = post(proxy.base_url, litellm_server.key, {"model": "mock-gpt", "messages": MSG, "stream": True})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    for name in ("Content-Type", "Cache-Control", "X-Accel-Buffering", "X-Request-ID"):
        assert len(header_values(r, name)) == 1, (name, r.raw.headers)
    assert stream_content(sse_events(r)) == "Hello from the LiteLLM mock."


# ------------------------------------------------------------------ other clients
def test_langchain_openai_same_as_direct(litellm_server, proxy, chat_openai):
    def ask(base_url: str) -> tuple[str, str]:
        llm = chat_openai(base_url=base_url, api_key=litellm_server.key, model="mock-gpt", max_retries=0)
        return llm.invoke("hi").content, "".join(chunk.content for chunk in llm.stream("hi"))

    assert ask(proxy.base_url) == ask(litellm_server.base_url) == ("Hello from the LiteLLM mock.",) * 2


def test_langchain_openai_tool_call(litellm_server, proxy, chat_openai):
    llm = chat_openai(base_url=proxy.base_url, api_key=litellm_server.key, model="mock-tools", max_retries=0)
    message = llm.bind_tools([WEATHER_TOOL]).invoke("weather in Paris?")
    assert message.tool_calls[0]["name"] == "get_weather" and message.tool_calls[0]["args"] == {"city": "Paris"}


def test_litellm_client_same_as_direct(litellm_server, proxy, litellm_client):
    def ask(base_url: str, **extra) -> str:
        answer = litellm_client.completion(model="openai/mock-gpt", api_base=base_url, api_key=litellm_server.key,
                                           messages=MSG, **extra)
        if extra.get("stream"):
            return "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
        return answer.choices[0].message.content

    assert ask(proxy.base_url) == ask(litellm_server.base_url) == "Hello from the LiteLLM mock."
    assert ask(proxy.base_url, stream=True) == ask(litellm_server.base_url, stream=True)


def test_curl_stream_same_as_direct(litellm_server, proxy):
    def curl(base_url: str) -> list:
        body = json.dumps({"model": "mock-think", "messages": MSG, "stream": True})
        out = subprocess.run(["curl", "-sS", "-N", "--fail-with-body", base_url + "/chat/completions",
                              "-H", f"Authorization: Bearer {litellm_server.key}",
                              "-H", "Content-Type: application/json", "-d", body],
                             capture_output=True, timeout=30, check=True).stdout
        return [line[5:].strip() for line in out.splitlines() if line.startswith(b"data:")]

    direct, proxied = curl(litellm_server.base_url), curl(proxy.base_url)
    assert direct[-1] == proxied[-1] == b"[DONE]"
    events = [json.loads(e) for e in proxied[:-1]]
    assert stream_content(events) == "Hello!"
    assert stream_content([json.loads(e) for e in direct[:-1]]) == "<think>The user greets me.</think>Hello!"
