"""The Responses and Messages front doors through the real app under Gunicorn, driven by the official `openai`
and `anthropic` SDKs (and by the raw request shapes Claude Code sends), against the fake OpenAI-compatible,
ARGO and DashScope upstreams."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
import requests

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_dashscope import FakeDashScope
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_completion
from tests.integration.test_argo import argo_env
from tests.proxy_process import running_proxy

WEATHER_FN = {"type": "function", "name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
THINKING = "<think>The user wants a greeting.</think>Hello there!"


class Upstream:
    """One fake upstream behind one proxy, with the few controls these tests need."""

    name = ""
    model = ""

    def text(self, text: str) -> None:
        raise NotImplementedError

    def tool_call(self, stream: bool = False, name: str = "get_weather", arguments: str = '{"city": "Paris"}') -> None:
        """The next answer calls this tool (default: get_weather with {"city": "Paris"})."""
        raise NotImplementedError

    def last_body(self) -> dict:
        raise NotImplementedError


class OpenAIUpstream(Upstream):
    name, model = "openai", "fake-model"

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake

    def text(self, text: str) -> None:
        self.fake.queue.clear()
        self.fake.default_content = text

    def tool_call(self, stream: bool = False, name: str = "get_weather", arguments: str = '{"city": "Paris"}') -> None:
        call = {"id": "call_w1", "type": "function", "function": {"name": name, "arguments": arguments}}
        if not stream:
            answer = chat_completion("")
            answer["choices"][0]["message"].update(content=None, tool_calls=[call])
            answer["choices"][0]["finish_reason"] = "tool_calls"
            self.fake.add(Reply(answer))
            return
        base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": self.model}
        first = {**call, "index": 0, "function": {"name": name, "arguments": ""}}
        half = len(arguments) // 2
        self.fake.add(Stream([
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]},
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]},
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}},
            "[DONE]"]))

    def last_body(self) -> dict:
        return self.fake.received[-1].json()


class ArgoUpstream(Upstream):
    name, model = "argo", "argo:gpt-4o"

    def __init__(self, argo: FakeArgo) -> None:
        self.argo = argo

    def text(self, text: str) -> None:
        self.argo.reply = text

    def tool_call(self, stream: bool = False, name: str = "get_weather", arguments: str = '{"city": "Paris"}') -> None:
        # ARGO answers tool calls whole (the proxy pseudo-streams)
        self.argo.reply = {"content": None, "tool_calls": [{"id": "call_w1", "type": "function", "function": {
            "name": name, "arguments": arguments}}]}

    def last_body(self) -> dict:
        return self.argo.requests[-1].json


class DashScopeUpstream(Upstream):
    name, model = "dashscope", "qwen-plus"

    def __init__(self, ds: FakeDashScope) -> None:
        self.ds = ds

    def text(self, text: str) -> None:
        self.ds.reply = text
        self.ds.reasoning = ""  # the text holds all the model thinks (in <think>), asked for thinking or not
        self.ds.tool_calls = False

    def tool_call(self, stream: bool = False, name: str = "get_weather", arguments: str = '{"city": "Paris"}') -> None:
        self.ds.tool_calls = True  # the fake calls the request's first tool
        self.ds.tool_arguments = arguments

    def last_body(self) -> dict:
        return self.ds.received[-1].json


@pytest.fixture(scope="module", params=["openai", "argo", "dashscope"])
def up(request):
    """A proxy (THINK_MODE=reasoning) in front of each fake upstream in turn."""
    if request.param == "openai":
        with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, THINK_MODE="reasoning") as p:
            yield OpenAIUpstream(fake), p
    elif request.param == "argo":
        with FakeArgo() as argo, running_proxy(**argo_env(argo, THINK_MODE="reasoning")) as p:
            yield ArgoUpstream(argo), p
    else:
        with FakeDashScope(api_key="ds-key") as ds, \
                running_proxy(BACKEND="dashscope", TARGET_BASE_URL=ds.base_url, DASHSCOPE_API_KEY="ds-key",
                              THINK_MODE="reasoning") as p:
            yield DashScopeUpstream(ds), p


oai, ant = openai_sdk, anthropic_sdk


# ------------------------------------------------------------------ Responses API (openai SDK)

def test_responses_create(up):
    u, p = up
    u.text("Hello from upstream")
    r = oai(p).responses.create(model=u.model, input="Say hello", instructions="Be brief.", max_output_tokens=50)
    assert r.status == "completed" and r.output_text == "Hello from upstream" and r.model == u.model
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.id.startswith("resp_") and r.output[0].type == "message"


def test_responses_stream_with_reasoning(up):
    u, p = up
    u.text(THINKING)
    with oai(p).responses.stream(model=u.model, input="Say hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert "response.reasoning_text.delta" in types and "response.output_text.delta" in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "Hello there!"
    assert final.output[0].type == "reasoning" and final.output[0].content[0].text == "The user wants a greeting."
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_responses_function_round_trip(up, stream):
    u, p = up
    client = oai(p)
    u.tool_call(stream)
    first_input = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        with client.responses.stream(model=u.model, input=first_input, tools=[WEATHER_FN]) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(model=u.model, input=first_input, tools=[WEATHER_FN], tool_choice="auto")
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    sent = u.last_body()
    assert "get_weather" in json.dumps(sent)
    u.text("It is sunny in Paris.")
    second = client.responses.create(model=u.model, tools=[WEATHER_FN], input=first_input + [
        calls[0].model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"}])
    assert second.output_text == "It is sunny in Paris."
    assert "sunny, 21 C" in json.dumps(u.last_body())


APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
               "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}}
CODEX_TOOLS = [APPLY_PATCH, {"type": "web_search"}, {"type": "local_shell"}, WEATHER_FN]


@pytest.mark.parametrize("stream", [False, True])
def test_codex_tools_custom_call_round_trip(up, stream):
    """What Codex sends: a custom tool (apply_patch) goes as a one-string function and comes back as a
    custom_tool_call; hosted and built-in tools (web_search, local_shell) are left out with a warning."""
    u, p = up
    client = oai(p)
    u.tool_call(stream, name="apply_patch", arguments='{"input": "*** Begin Patch"}')
    first_input = [{"role": "developer", "content": "You are Codex."}, {"role": "user", "content": "Fix the bug."}]
    if stream:
        with client.responses.stream(model=u.model, input=first_input, tools=CODEX_TOOLS) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(model=u.model, input=first_input, tools=CODEX_TOOLS, tool_choice="auto")
    calls = [item for item in first.output if item.type == "custom_tool_call"]
    assert len(calls) == 1 and calls[0].name == "apply_patch" and calls[0].input == "*** Begin Patch"
    sent = json.dumps(u.last_body())
    assert "apply_patch" in sent and "get_weather" in sent and "web_search" not in sent and "local_shell" not in sent
    u.text("Patched.")
    second = client.responses.create(model=u.model, tools=CODEX_TOOLS, input=first_input + [
        calls[0].model_dump(exclude_none=True),
        {"type": "custom_tool_call_output", "call_id": calls[0].call_id, "output": "Done! 1 file changed"}])
    assert second.output_text == "Patched."
    assert "Done! 1 file changed" in json.dumps(u.last_body())
    assert "left out what a chat backend cannot run: web_search, local_shell" in p.read_log()


def test_responses_errors_in_openai_shape(up):
    u, p = up
    with pytest.raises(openai.BadRequestError) as info:
        oai(p).responses.create(model=u.model, input="x", previous_response_id="resp_123")
    assert info.value.body["param"] == "previous_response_id"


# ------------------------------------------------------------------ Messages API (anthropic SDK)

def sdk_2_headers(raw) -> None:
    """What Anthropic's SDK 2.x sends: the key as a Bearer token (no x-api-key), API version 2026-10-21 or later."""
    headers = raw.http_request.headers
    assert headers["authorization"] == "Bearer sk-client" and "x-api-key" not in headers
    assert headers["anthropic-version"] >= "2026-10-21"


def test_messages_create_and_count_tokens(up):
    u, p = up
    u.text("Hello from upstream")
    client = ant(p)
    raw = client.messages.with_raw_response.create(model=u.model, max_tokens=100, system="Be brief.",
                                                   extra_body={"temperature": 0.5},
                                                   messages=[{"role": "user", "content": "Say hello"}])
    sdk_2_headers(raw)
    m = raw.parse()
    assert m.type == "message" and m.role == "assistant" and m.stop_reason == "end_turn"
    assert m.content[0].type == "text" and m.content[0].text == "Hello from upstream"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    counted = client.messages.with_raw_response.count_tokens(model=u.model, system="Be brief.", messages=[
        {"role": "user", "content": "Say hello to everyone here"}])
    sdk_2_headers(counted)
    assert counted.parse().input_tokens > 5


def test_messages_stream_with_thinking(up):
    u, p = up
    u.text(THINKING)
    with ant(p).messages.stream(model=u.model, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": "Say hello"}]) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "The user wants a greeting." and final.content[1].text == "Hello there!"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_messages_thinking_stripped_when_not_asked(up):
    u, p = up
    u.text(THINKING)
    m = ant(p).messages.create(model=u.model, max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    assert [b.type for b in m.content] == ["text"] and m.content[0].text == "Hello there!"


@pytest.mark.parametrize("stream", [False, True])
def test_messages_tool_use_round_trip(up, stream):
    u, p = up
    client = ant(p)
    u.tool_call(stream)
    history = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        with client.messages.stream(model=u.model, max_tokens=200, tools=[WEATHER_TOOL], messages=history) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=u.model, max_tokens=200, tools=[WEATHER_TOOL], messages=history,
                                       tool_choice={"type": "auto"})
    assert first.stop_reason == "tool_use"
    use = [b for b in first.content if b.type == "tool_use"][0]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    u.text("It is sunny in Paris.")
    second = client.messages.create(model=u.model, max_tokens=200, tools=[WEATHER_TOOL], messages=history + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]}])
    assert second.content[0].text == "It is sunny in Paris." and second.stop_reason == "end_turn"
    assert "sunny, 21 C" in json.dumps(u.last_body())


def test_messages_errors_in_anthropic_shape(up):
    u, p = up
    r = requests.post(p.url + "/v1/messages", json={"model": u.model, "messages": [{"role": "user", "content": "x"}]},
                      headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"] and body["request_id"] == r.headers["request-id"]
    with pytest.raises(anthropic.BadRequestError):
        ant(p).messages.create(model=u.model, max_tokens=10, messages=[{"role": "robot", "content": "x"}])


# ------------------------------------------------------------------ what Claude Code sends

CLAUDE_CODE_HEADERS = {"x-api-key": "sk-claude-code", "anthropic-version": "2023-06-01",
                       "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
                       "x-claude-code-session-id": "s-1", "content-type": "application/json"}


def claude_code_body(model: str) -> dict:
    return {
        "model": model, "max_tokens": 32000, "stream": True,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.0; cch=00000"},
                   {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
            {"type": "text", "text": "Say hello", "cache_control": {"type": "ephemeral"}}]}],
        "tools": [{**WEATHER_TOOL, "cache_control": {"type": "ephemeral"}},
                  {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
        "metadata": {"user_id": "user_0a1b_account_1234_session_5678"},
        "thinking": {"type": "adaptive"}, "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "output_config": {"effort": "medium"},
    }


def sse_events(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in raw.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line]
        if not lines:
            continue
        assert lines[0].startswith("event: "), block  # Claude Code needs a name on every event
        events.append((lines[0][7:], json.loads(lines[1][6:])))
    return events


def test_claude_code_streaming_request(up):
    u, p = up
    u.text(THINKING)
    with requests.post(p.url + "/v1/messages?beta=true", headers=CLAUDE_CODE_HEADERS, stream=True,
                       data=json.dumps(claude_code_body(u.model))) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(r.raw.read())
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0  # an estimate, before the upstream's usage
    blocks = [data["content_block"]["type"] for name, data in events if name == "content_block_start"]
    assert blocks == ["thinking", "text"]
    text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    assert text == "Hello there!"
    sent = json.dumps(u.last_body())
    for absent in ("cache_control", "context_management", "output_config", "sk-claude-code", "claude-code-2025"):
        assert absent not in sent
    assert "You are Claude Code." in sent and "get_weather" in sent and "web_search" not in sent
    assert "left out what a chat backend cannot run: web_search_20250305" in p.read_log()  # a server tool
    if u.name == "openai":
        assert u.last_body()["user"] == "user_0a1b_account_1234_session_5678"
        headers = {k.lower(): v for k, v in u.fake.received[-1].headers.items()}
        assert "x-api-key" not in headers and not any(k.startswith("anthropic-") for k in headers)
        assert headers["authorization"] == "Bearer sk-claude-code"  # the client's key is the upstream's here


def test_claude_code_non_streaming_fallback(up):
    u, p = up
    u.text("Hi!")
    body = {**claude_code_body(u.model), "stream": False}
    r = requests.post(p.url + "/v1/messages?beta=true", headers=CLAUDE_CODE_HEADERS, data=json.dumps(body))
    assert r.status_code == 200 and r.json()["content"][-1] == {"type": "text", "text": "Hi!", "citations": None}
    r = requests.post(p.url + "/v1/messages/count_tokens?beta=true", headers=CLAUDE_CODE_HEADERS,
                      data=json.dumps({k: body[k] for k in ("model", "system", "messages", "tools")}))
    assert r.status_code == 200 and r.json()["input_tokens"] > 0


def test_claude_through_argo_standard_mode_tool_round_trip():
    """A Claude model behind ARGO's own protocol: Anthropic-shaped tools go up, ARGO's Anthropic-shaped tool
    call comes back as a Messages tool_use block (and as a Responses function_call)."""
    with FakeArgo() as argo, running_proxy(**argo_env(argo)) as p:
        argo.reply = {"content": [{"type": "text", "text": "Checking."},
                                  {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}}]}
        m = ant(p).messages.create(model="argo:claude-sonnet-4", max_tokens=100, tools=[WEATHER_TOOL],
                                   messages=[{"role": "user", "content": "Weather in Paris?"}])
        assert m.stop_reason == "tool_use" and [b.type for b in m.content] == ["text", "tool_use"]
        assert m.content[1].input == {"city": "Paris"} and m.content[1].name == "get_weather"
        assert "input_schema" in json.dumps(argo.requests[-1].json["tools"])
        r = oai(p).responses.create(model="argo:claude-sonnet-4", input="Weather in Paris?", tools=[WEATHER_FN])
        assert [i.type for i in r.output] == ["message", "function_call"] and r.output[1].call_id == "toolu_9"
