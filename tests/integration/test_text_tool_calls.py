"""Tool calls a Claude model on ARGO wrote into its text reach the agent as real tool calls: through the running
app (Gunicorn) with the openai and anthropic SDKs, on every front door, streamed and not, in ARGO standard mode
(fake ARGO leaking the tool_use block's Python repr, as the real gateway does) and native mode (a JSON call in the
text of ARGO's OpenAI-compatible endpoint)."""

from __future__ import annotations

import json

import pytest

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.fake_argo import CHAT_PATH, FakeArgo
from tests.fakes.fake_openai import Reply, Stream, chat_chunks, chat_completion
from tests.integration.test_argo import argo_env
from tests.proxy_process import running_proxy

CLAUDE = "argo:claude-sonnet-4"
SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
CHAT_TOOLS = [{"type": "function", "function": {"name": "bash", "description": "Run a command", "parameters": SCHEMA}}]
RESPONSES_TOOLS = [{"type": "function", "name": "bash", "description": "Run a command", "parameters": SCHEMA}]
MESSAGES_TOOLS = [{"name": "bash", "description": "Run a command", "input_schema": SCHEMA}]
ASK = [{"role": "user", "content": "List the files."}]


@pytest.fixture(scope="module")
def standard():
    with FakeArgo() as argo, running_proxy(**argo_env(argo)) as p:
        yield argo, p


@pytest.fixture
def argo(standard):
    fake = standard[0]
    fake.reset()
    fake.reply_with_text_tool_calls("Let me look.", ("bash", {"command": "ls -la"}))
    return fake


@pytest.fixture
def proxy(standard):
    return standard[1]


def _streamed_chat(client, **kwargs) -> tuple[str, dict[int, dict], str | None]:
    """(content, tool calls by index, finish_reason) assembled from a chat stream as an agent does."""
    text, calls, finish = "", {}, None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                slot["name"] += (call.function.name or "") if call.function else ""
                slot["arguments"] += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    return text, calls, finish


# ------------------------------------------------------------------ standard mode, every front door


def test_chat_completions_whole_and_streamed(argo, proxy):
    client = openai_sdk(proxy)
    r = client.chat.completions.create(model=CLAUDE, messages=ASK, tools=CHAT_TOOLS)
    message = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls" and message.content == "Let me look."
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == \
        [("toolu_vrtx_00Fake", "bash", {"command": "ls -la"})]
    text, calls, finish = _streamed_chat(client, model=CLAUDE, messages=ASK, tools=CHAT_TOOLS)
    assert (text, finish) == ("Let me look.", "tool_calls")
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [("bash", {"command": "ls -la"})]


def test_several_calls_and_an_undeclared_name(argo, proxy):
    argo.reply_with_text_tool_calls("Two reads:", ("bash", {"command": "cat a"}), ("rm_everything", {}),
                                    ("bash", {"command": "cat b"}))
    r = openai_sdk(proxy).chat.completions.create(model=CLAUDE, messages=ASK, tools=CHAT_TOOLS)
    message = r.choices[0].message
    assert [json.loads(c.function.arguments)["command"] for c in message.tool_calls] == ["cat a", "cat b"]
    assert message.content.startswith("Two reads:{'id': 'toolu_vrtx_01Fake'")  # not declared: left as text
    assert "'name': 'rm_everything'" in message.content and "cat a" not in message.content


def test_model_written_json_in_a_fence(argo, proxy):
    argo.reply = {"content": 'Running it.\n```json\n{"name": "bash", "arguments": {"command": "pwd"}}\n```\n',
                  "tool_calls": []}
    r = openai_sdk(proxy).chat.completions.create(model=CLAUDE, messages=ASK, tools=CHAT_TOOLS)
    message = r.choices[0].message
    assert message.content == "Running it.\n\n" and message.tool_calls[0].function.arguments == '{"command": "pwd"}'


def test_without_tools_or_on_other_models_the_text_stays(argo, proxy):
    client = openai_sdk(proxy)
    leaked = argo.reply["content"]
    assert client.chat.completions.create(model=CLAUDE, messages=ASK).choices[0].message.content == leaked
    r = client.chat.completions.create(model="argo:gpt-4o", messages=ASK, tools=CHAT_TOOLS)
    assert r.choices[0].message.content == leaked and not r.choices[0].message.tool_calls


@pytest.mark.parametrize("stream", [False, True])
def test_responses_front(argo, proxy, stream):
    client = openai_sdk(proxy)
    if stream:
        with client.responses.stream(model=CLAUDE, input="List the files.", tools=RESPONSES_TOOLS) as s:
            r = s.get_final_response()
    else:
        r = client.responses.create(model=CLAUDE, input="List the files.", tools=RESPONSES_TOOLS)
    assert [item.type for item in r.output] == ["message", "function_call"]
    assert r.output[0].content[0].text == "Let me look."
    call = r.output[1]
    assert (call.name, json.loads(call.arguments), call.call_id) == ("bash", {"command": "ls -la"}, "toolu_vrtx_00Fake")


@pytest.mark.parametrize("stream", [False, True])
def test_messages_front_and_the_round_trip(argo, proxy, stream):
    client = anthropic_sdk(proxy)
    if stream:
        with client.messages.stream(model=CLAUDE, max_tokens=200, tools=MESSAGES_TOOLS, messages=ASK) as s:
            m = s.get_final_message()
    else:
        m = client.messages.create(model=CLAUDE, max_tokens=200, tools=MESSAGES_TOOLS, messages=ASK)
    assert m.stop_reason == "tool_use" and [b.type for b in m.content] == ["text", "tool_use"]
    use = m.content[1]
    assert (use.name, use.input, use.id) == ("bash", {"command": "ls -la"}, "toolu_vrtx_00Fake")
    argo.reply = "Two files: a and b."
    second = client.messages.create(model=CLAUDE, max_tokens=200, tools=MESSAGES_TOOLS, messages=[
        *ASK, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "a\nb"}]}])
    assert second.content[0].text == "Two files: a and b."
    sent = json.dumps(argo.requests_to(CHAT_PATH)[-1].json["messages"])
    assert '"tool_result"' in sent and '"tool_use_id": "toolu_vrtx_00Fake"' in sent


# ------------------------------------------------------------------ native mode (ARGO's OpenAI-compatible API)

NATIVE_TEXT = 'On it. {"name": "bash", "arguments": {"command": "echo {hi}"}} Done.'


def test_native_mode_streamed_split_in_small_pieces(argo_native):
    up, p = argo_native
    pieces = [NATIVE_TEXT[i:i + 3] for i in range(0, len(NATIVE_TEXT), 3)]
    up.add(Stream(chat_chunks(pieces, model="claudesonnet4", usage=True)))
    text, calls, finish = _streamed_chat(openai_sdk(p), model=CLAUDE, messages=ASK, tools=CHAT_TOOLS,
                                         stream_options={"include_usage": True})
    assert (text, finish) == ("On it.  Done.", "tool_calls")
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [("bash", {"command": "echo {hi}"})]


def test_native_mode_whole_answer_and_other_models_untouched(argo_native):
    up, p = argo_native
    up.add(Reply(chat_completion(NATIVE_TEXT, model="claudesonnet4")))
    r = openai_sdk(p).chat.completions.create(model=CLAUDE, messages=ASK, tools=CHAT_TOOLS)
    assert r.choices[0].message.content == "On it.  Done." and r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.tool_calls[0].function.name == "bash"
    raw = chat_completion(NATIVE_TEXT, model="gpt4o")
    up.add(Reply(raw))
    assert openai_sdk(p).chat.completions.create(model="argo:gpt-4o", messages=ASK, tools=CHAT_TOOLS) \
        .choices[0].message.content == NATIVE_TEXT  # only Claude answers are scanned


def test_native_mode_responses_front_streamed(argo_native):
    up, p = argo_native
    pieces = [NATIVE_TEXT[i:i + 5] for i in range(0, len(NATIVE_TEXT), 5)]
    up.add(Stream(chat_chunks(pieces, model="claudesonnet4", usage=True)))
    with openai_sdk(p).responses.stream(model=CLAUDE, input="List the files.", tools=RESPONSES_TOOLS) as s:
        r = s.get_final_response()
    # streamed in order: the text after the call is a message of its own
    assert [item.type for item in r.output] == ["message", "function_call", "message"]
    assert (r.output[0].content[0].text, r.output[2].content[0].text) == ("On it. ", " Done.")
    assert (r.output[1].name, json.loads(r.output[1].arguments)) == ("bash", {"command": "echo {hi}"})
