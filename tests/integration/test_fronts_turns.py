"""Turns in a row through the front doors, to an upstream that wants roles to alternate (vLLM with a Gemma or
Mistral chat template answers 400 "Conversation roles must alternate"; the fake refuses them the same way).

google-genai's chats replay a streamed answer as one model Content per chunk, Anthropic combines consecutive
same-role turns, Codex sends its instructions and the prompt as user messages one after another: the doors
send each run of same-role turns as one chat turn. A chat-completions client's own messages go as written."""

from __future__ import annotations

import pytest

from tests.clients import anthropic_sdk, google_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Stream, chat_chunks
from tests.proxy_process import running_proxy


@pytest.fixture(scope="module")
def fake_and_proxy():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as proxy:
        fake.wants_alternating_roles = True
        yield fake, proxy


def sent_roles(fake: FakeOpenAI) -> list[tuple[str, object]]:
    return [(m["role"], m.get("content")) for m in fake.received[-1].json()["messages"]]


def test_a_google_chat_replays_a_streamed_answer_as_one_turn(fake_and_proxy):
    fake, proxy = fake_and_proxy
    fake.queue.clear()
    fake.add(Stream(chat_chunks(["The answer", " is 42."])))
    client = google_sdk(proxy)  # held: the client closes its connections when collected
    chat = client.chats.create(model="fake-model")
    streamed = "".join(chunk.text or "" for chunk in chat.send_message_stream("question"))
    assert streamed == "The answer is 42."
    assert len([c for c in chat.get_history() if c.role == "model"]) > 1  # the SDK keeps a Content per chunk
    fake.default_content = "Right."
    assert chat.send_message("next").text == "Right."
    assert sent_roles(fake) == [("user", "question"), ("assistant", "The answer is 42."), ("user", "next")]


def test_anthropic_turns_in_a_row_are_one_turn(fake_and_proxy):
    fake, proxy = fake_and_proxy
    fake.queue.clear()
    fake.default_content = "ok"
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    answer = anthropic_sdk(proxy).messages.create(model="fake-model", max_tokens=16, messages=[
        {"role": "user", "content": "first"}, {"role": "user", "content": "second"},
        {"role": "assistant", "content": "Let me "}, {"role": "assistant", "content": [  # two turns: apart
            {"type": "text", "text": "look."}, {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "notes"}]},
        {"role": "user", "content": [{"type": "text", "text": "and this"}, image]}])
    assert answer.content[0].text == "ok"
    messages = fake.received[-1].json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[0]["content"] == "first\n\nsecond"
    assert messages[1]["content"] == "Let me \n\nlook." and messages[1]["tool_calls"][0]["id"] == "toolu_1"
    assert [p["type"] for p in messages[3]["content"]] == ["text", "image_url"]


def test_codex_style_user_messages_in_a_row_are_one_turn(fake_and_proxy):
    fake, proxy = fake_and_proxy
    fake.queue.clear()
    fake.default_content = "done"
    answer = openai_sdk(proxy).responses.create(model="fake-model", input=[
        {"type": "message", "role": "developer", "content": "Be careful."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context/>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the bug"}]}])
    assert answer.output_text == "done"
    assert sent_roles(fake)[1:] == [("user", "<environment_context/>\n\nfix the bug")]


def test_a_chat_clients_own_messages_go_as_written(fake_and_proxy):
    fake, proxy = fake_and_proxy
    fake.queue.clear()
    with pytest.raises(Exception) as refused:
        openai_sdk(proxy).chat.completions.create(model="fake-model", messages=[
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert getattr(refused.value, "status_code", None) == 400 and "alternate" in str(refused.value)
    assert sent_roles(fake) == [("user", "a"), ("user", "b")]


def test_a_replayed_tool_call_whose_arguments_are_not_json_goes_as_an_object(fake_and_proxy):
    """A small model's broken tool call, which Codex answers itself and replays as it was: llama.cpp's server
    refuses the whole conversation (500 "Failed to parse tool call arguments as JSON"; the fake does too), so
    the arguments go as {"input": <the text>}, as the Google door sends them."""
    fake, proxy = fake_and_proxy
    fake.queue.clear()
    fake.default_content = "done"
    answer = openai_sdk(proxy).responses.create(model="fake-model", input=[
        {"type": "message", "role": "user", "content": "list the files"},
        {"type": "function_call", "call_id": "call_bad1", "name": "exec_command", "arguments": "file_path=x"},
        {"type": "function_call_output", "call_id": "call_bad1", "output": "failed to parse function arguments"}])
    assert answer.output_text == "done"
    call = fake.received[-1].json()["messages"][1]["tool_calls"][0]
    assert call["function"]["arguments"] == '{"input":"file_path=x"}'
    completion = openai_sdk(proxy).chat.completions.create(model="fake-model", messages=[
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "a", "arguments": ""}},
            {"id": "c2", "type": "function", "function": {"name": "b", "arguments": '{"path": "unterminated'}},
            {"id": "c3", "type": "function", "function": {"name": "c", "arguments": '{"ok": 1}'}}]},
        *[{"role": "tool", "tool_call_id": f"c{i}", "content": "r"} for i in (1, 2, 3)],
        {"role": "user", "content": "next"}])
    assert completion.choices[0].message.content == "done"
    sent = [c["function"]["arguments"] for c in fake.received[-1].json()["messages"][1]["tool_calls"]]
    assert sent == ["{}", '{"input":"{\\"path\\": \\"unterminated"}', '{"ok": 1}']
