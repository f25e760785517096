"""Issue 4 through the running app: ARGO native passthrough, username passthrough, image inlining and
tool calls per model family, against fake ARGO, fake OpenAI-compatible and fake image servers."""

from __future__ import annotations

import base64
import io
import json

import openai
import pytest
import requests
from PIL import Image

from tests.clients import openai_sdk
from tests.fakes.argo_rules import native_refusal
from tests.fakes.fake_argo import CHAT_PATH, DEFAULT_REPLY, EMBED_PATH, FakeArgo
from tests.fakes.fake_images import FakeImageServer
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.integration.test_argo import argo_env
from tests.proxy_process import running_proxy

MSG = [{"role": "user", "content": "Hi"}]
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def sdk(p, key="anything") -> openai.OpenAI:
    return openai_sdk(p, key)


# ------------------------------------------------------------------ native mode
def test_native_mode_maps_model_and_user_but_keeps_bytes(argo_native):
    up, p = argo_native
    up.received.clear()
    raw = chat_completion("<think>kept as it was</think>Answer")
    up.add(Reply(raw, headers={"x-ratelimit-remaining-requests": "7"}))
    r = requests.post(p.base_url + "/chat/completions", headers={"Authorization": "Bearer client-token"},
                      json={"model": "argo:gpt-4o", "messages": MSG, "user": "mallory"})
    assert r.json() == raw and r.headers["x-ratelimit-remaining-requests"] == "7"  # no response transformation
    sent = up.received[-1]
    assert sent.path == "/v1/chat/completions"
    assert (sent.json()["model"], sent.json()["user"]) == ("gpt4o", "alice")
    assert sent.headers["Authorization"] == "Bearer client-token"


def test_native_mode_sends_a_long_bodys_other_members_as_the_client_wrote_them(argo_native):
    """Issue 22: the alias and the user are set, the 300 KB of messages are not encoded again (their spelling,
    escapes and spacing included, reach the upstream byte for byte)."""
    up, p = argo_native
    up.received.clear()
    up.add(Reply(chat_completion("ok")))
    messages = ('[{"role": "user",  "content": "caf\\u00e9 \\ud83d\\ude00 ' + "x" * 300_000 + '"}]').encode()
    raw = b'{"model": "argo:gpt-4o", "messages": ' + messages + b', "user": "mallory", "temperature": 0.50}'
    r = requests.post(p.base_url + "/chat/completions", data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    sent = up.received[-1]
    assert messages in sent.body and b'"temperature":0.50' in sent.body
    assert (sent.json()["model"], sent.json()["user"]) == ("gpt4o", "alice")
    assert sent.json()["messages"] == json.loads(messages)


def test_native_stream_bytes_unchanged_and_unknown_models_pass(argo_native):
    up, p = argo_native
    events = chat_chunks(["<think>x</think>", "y"], model="my-own-model")
    up.add(Stream(events))
    with requests.post(p.base_url + "/chat/completions", stream=True,
                       json={"model": "my-own-model", "messages": MSG, "stream": True}) as r:
        body = r.raw.read()
    expected = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" if isinstance(e, dict) else b"data: [DONE]\n\n"
                        for e in events)
    assert body == expected
    assert up.received[-1].json()["model"] == "my-own-model"


def test_native_errors_and_other_routes(argo_native):
    up, p = argo_native
    up.add(Reply({"error": {"message": "bad tool_choice", "type": "invalid_request_error"}, "extra": 1}, status=400))
    r = requests.post(p.base_url + "/chat/completions", json={"model": "argo:gpt-4o", "messages": MSG})
    assert r.status_code == 400 and r.json()["extra"] == 1
    sdk(p).completions.create(model="argo:gpt-4o", prompt="x")
    assert up.received[-1].path == "/v1/completions"
    sdk(p).embeddings.create(model="argo:text-embedding-3-small", input="x")
    assert up.received[-1].path == "/v1/embeddings" and up.received[-1].json()["model"] == "v3small"
    assert up.received[-1].json()["user"] == "alice"


def test_native_mode_start_up_line(argo_native):
    _, p = argo_native  # said at start-up: read without stopping the module's proxy, which later tests use
    assert "ARGO native OpenAI mode" in p.read_log()


# ------------------------------------------------------------------ username passthrough
def test_username_passthrough_both_modes_and_embeddings():
    with FakeArgo() as argo, FakeOpenAI(refuse=native_refusal) as up:
        with running_proxy(**argo_env(argo, USERNAME_PASSTHROUGH="true")) as p:
            sdk(p, key="bob").chat.completions.create(model="argo:gpt-4o", messages=MSG)
            assert argo.requests_to(CHAT_PATH)[-1].json["user"] == "bob"
            sdk(p, key="carol").embeddings.create(model="argo:text-embedding-3-small", input=["a"])
            assert argo.requests_to(EMBED_PATH)[-1].json["user"] == "carol"
            requests.post(p.base_url + "/chat/completions", headers={"api-key": "dave"},
                          json={"model": "argo:gpt-4o", "messages": MSG})
            assert argo.requests_to(CHAT_PATH)[-1].json["user"] == "dave"
            requests.post(p.base_url + "/chat/completions", json={"model": "argo:gpt-4o", "messages": MSG})
            assert argo.requests_to(CHAT_PATH)[-1].json["user"] == "alice"
        with running_proxy(**argo_env(argo, USERNAME_PASSTHROUGH="true", USE_NATIVE_OPENAI="true",
                                      NATIVE_OPENAI_BASE_URL=up.base_url)) as p:
            sdk(p, key="erin").chat.completions.create(model="argo:gpt-4o", messages=MSG)
            assert up.received[-1].json()["user"] == "erin"


# ------------------------------------------------------------------ ARGO's default settings
# One proxy for the module: the tests below that take it differ only in what the fake answers.
@pytest.fixture(scope="module")
def plain_argo_proxy():
    with FakeArgo() as argo, running_proxy(**argo_env(argo)) as p:
        yield argo, p


@pytest.fixture
def plain_argo(plain_argo_proxy):
    """(fake ARGO, the proxy in front of it), the fake as new: what reached it and its answer are this test's."""
    argo, p = plain_argo_proxy
    argo.reset()
    argo.reply = DEFAULT_REPLY
    return argo, p


# ------------------------------------------------------------------ images
def image_message(*urls: str) -> list[dict]:
    parts = [{"type": "text", "text": "What is this?"}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": parts}]


def test_images_inlined_or_left_in_place(plain_argo):
    with FakeArgo() as argo, FakeImageServer() as imgs:
        with running_proxy(**argo_env(argo, IMAGE_ALLOW_PRIVATE="true")) as p:
            sdk(p).chat.completions.create(model="argo:gpt-4o",
                                           messages=image_message(imgs.url("/img/red.png"), imgs.url("/page.html")))
            parts = argo.requests_to(CHAT_PATH)[-1].json["messages"][0]["content"]
            data_url = parts[1]["image_url"]["url"]
            assert data_url.startswith("data:image/png;base64,")
            Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).verify()
            assert parts[2]["image_url"]["url"] == imgs.url("/page.html")  # not an image: left as it was
        plain, p = plain_argo  # loopback is refused by default (SSRF)
        sdk(p).chat.completions.create(model="argo:gpt-4o", messages=image_message(imgs.url("/img/red.png")))
        assert plain.requests_to(CHAT_PATH)[-1].json["messages"][0]["content"][1]["image_url"]["url"] == \
            imgs.url("/img/red.png")


def test_payload_control_fits_the_budget():
    with FakeArgo() as argo, FakeImageServer() as imgs:
        env = argo_env(argo, IMAGE_ALLOW_PRIVATE="true", ENABLE_PAYLOAD_CONTROL="true", MAX_PAYLOAD_SIZE="1")
        with running_proxy(**env) as p:
            urls = [imgs.url(f"/noisy/{900 + i}x700.png") for i in range(3)]
            sdk(p).chat.completions.create(model="argo:gpt-4o", messages=image_message(*urls))
            sent = argo.requests_to(CHAT_PATH)[-1]
            assert len(sent.body) <= 1024 * 1024
            for part in sent.json["messages"][0]["content"][1:]:
                mime, b64 = part["image_url"]["url"].split(",", 1)
                img = Image.open(io.BytesIO(base64.b64decode(b64)))
                img.load()
                assert mime.startswith("data:image/") and abs(img.width / img.height - 9 / 7) < 0.05


# ------------------------------------------------------------------ tool calls
FAMILY_REPLIES = {
    "argo:gpt-4o": {"content": None, "tool_calls": [{"id": "call_a1", "type": "function",
                                                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    "argo:claude-sonnet-4": {"content": [{"type": "text", "text": "Checking."},
                                         {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                          "input": {"city": "Paris"}}]},
    "argo:gemini-2.5-pro": {"content": None, "tool_calls": [{"id": None, "name": "get_weather", "args": {"city": "Paris"}}]},
}


@pytest.mark.parametrize("model", list(FAMILY_REPLIES))
def test_tool_round_trip_per_family(plain_argo, model):
    argo, p = plain_argo
    argo.reply = FAMILY_REPLIES[model]
    c = sdk(p)
    first = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "Weather in Paris?"}],
                                      tools=WEATHER, tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    sent_tools = argo.requests_to(CHAT_PATH)[-1].json["tools"]
    assert sent_tools  # converted to the family's own form
    if "claude" in model:
        assert "input_schema" in sent_tools[0]
    argo.reply = "It is sunny in Paris."
    history = [{"role": "user", "content": "Weather in Paris?"}, choice.message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'}]
    final = c.chat.completions.create(model=model, messages=history, tools=WEATHER)
    assert final.choices[0].message.content == "It is sunny in Paris."
    assert final.choices[0].finish_reason == "stop"
    sent = json.dumps(argo.requests_to(CHAT_PATH)[-1].json)
    assert "sunny" in sent and "get_weather" in sent


def test_prompt_based_tools_and_streaming():
    with FakeArgo() as argo:
        with running_proxy(**argo_env(argo, TOOL_PROMPT="true")) as p:
            argo.reply = 'Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
            c = sdk(p)
            r = c.chat.completions.create(model="argo:gpt-4o", messages=MSG, tools=WEATHER)
            sent = argo.requests_to(CHAT_PATH)[-1].json
            assert "tools" not in sent and "<tool_call>" in json.dumps(sent)
            assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
            assert r.choices[0].message.content == "Let me check."
            chunks = list(c.chat.completions.create(model="argo:gpt-4o", messages=MSG, tools=WEATHER, stream=True))
            deltas = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
            assert deltas[0].index == 0 and deltas[0].id and deltas[0].function.name == "get_weather"
            assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"
            argo.reply = '<tool_call>{not json}</tool_call> fine'
            r = c.chat.completions.create(model="argo:gpt-4o", messages=MSG, tools=WEATHER)
            assert not r.choices[0].message.tool_calls and "not json" in r.choices[0].message.content


def test_username_passthrough_with_auth_on():
    with FakeArgo() as argo:
        with running_proxy(**argo_env(argo, USERNAME_PASSTHROUGH="true", ENABLE_AUTH="true", API_KEY_SECRET="proxy-key")) as p:
            r = requests.post(p.base_url + "/chat/completions", headers={"Authorization": "Bearer proxy-key", "api-key": "frank"},
                              json={"model": "argo:gpt-4o", "messages": MSG})
            assert r.status_code == 200 and argo.requests_to(CHAT_PATH)[-1].json["user"] == "frank"
            requests.post(p.base_url + "/chat/completions", headers={"Authorization": "Bearer proxy-key"},
                          json={"model": "argo:gpt-4o", "messages": MSG})
            assert argo.requests_to(CHAT_PATH)[-1].json["user"] == "alice"  # the proxy key is never a username
            assert requests.post(p.base_url + "/chat/completions", headers={"api-key": "frank"},
                                 json={"model": "argo:gpt-4o", "messages": MSG}).status_code == 401
