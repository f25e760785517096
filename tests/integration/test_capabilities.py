"""Capability adaptation through the running app: the agents' real request shapes (Claude Code's thinking and
sampling, the Anthropic SDK's, Codex's reasoning effort, OpenAI SDK chat) against fakes that refuse what the real
upstreams refuse (tests/fakes/argo_rules.py for ARGO; OpenAI's own rules for gpt-5), on ARGO standard mode, ARGO
native mode and the openai backend (routed); X-Adapted-Params, the journal, and the one retry after a 400."""

from __future__ import annotations

import json
import os

import pytest
import requests

from tests.clients import anthropic_sdk as ant
from tests.clients import openai_sdk as oai
from tests.fakes.fake_argo import CHAT_PATH, NATIVE_CHAT_PATH, NATIVE_MESSAGES_PATH, STREAM_PATH, FakeArgo
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks
from tests.integration.test_argo import argo_env
from tests.polling import poll
from tests.proxy_process import running_proxy

HEADER = "X-Adapted-Params"
MSG = [{"role": "user", "content": "Say hello"}]
REPLY = "Hello from strict ARGO."
CLAUDE_CODE_HEADERS = {"x-api-key": "sk-claude-code", "anthropic-version": "2023-06-01",
                       "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
                       "content-type": "application/json"}


def claude_code_body(model: str, **extra) -> dict:
    """Claude Code's request: extended thinking with a budget (older releases) or adaptive thinking with an
    effort (newer), tools with cache_control, streamed."""
    return {"model": model, "max_tokens": 32000, "stream": True, "messages": MSG,
            "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 31999}, "metadata": {"user_id": "user_1"}, **extra}


@pytest.fixture(scope="module", params=["standard", "native"])
def argo(request):
    with FakeArgo() as fake:
        fake.reply = REPLY
        env = argo_env(fake)
        if request.param == "native":
            env.update(USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=fake.native_base_url)
        with running_proxy(**env) as p:
            yield request.param, fake, p


def last_chat(fake: FakeArgo, mode: str) -> dict:
    """The chat request ARGO got last (its legacy chat or streamchat route, or its OpenAI-compatible one)."""
    paths = (NATIVE_CHAT_PATH,) if mode == "native" else (CHAT_PATH, STREAM_PATH)
    return [r for r in fake.requests if r.path in paths][-1].json


def test_claude_code_streams_from_argo_claude_4_6(argo):
    mode, fake, p = argo
    fake.reset()
    body = claude_code_body("claude-opus-4-6", temperature=1, top_p=0.95)
    with requests.post(p.url + "/v1/messages?beta=true", headers=CLAUDE_CODE_HEADERS, data=json.dumps(body),
                       stream=True, timeout=30) as r:
        text = r.content.decode()
    assert r.status_code == 200, text
    assert REPLY.split()[0] in text and "event: message_stop" in text
    if mode == "native":  # relayed to ARGO's Anthropic endpoint, adapted
        sent = fake.requests_to(NATIVE_MESSAGES_PATH)[-1].json
        assert sent["thinking"] == {"type": "adaptive"} and "top_p" not in sent and sent["temperature"] == 1
        assert r.headers[HEADER] == "thinking.type=adaptive, top_p=dropped"
    else:  # translated to ARGO's chat JSON: no thinking there, one sampling parameter
        sent = last_chat(fake, mode)
        assert "top_p" not in sent and sent["temperature"] == 1
        assert r.headers[HEADER] == "top_p=dropped"


def test_claude_answered_whole_asks_for_at_most_21000_tokens(argo):
    """Claude Code's body answered whole (32000 tokens): ARGO's Anthropic SDK refuses a request that may take
    over 10 minutes; standard mode's cap, in native mode too, on both of ARGO's native endpoints."""
    mode, fake, p = argo
    fake.reset()
    r = requests.post(p.url + "/v1/messages", headers=CLAUDE_CODE_HEADERS, timeout=30,
                      json=claude_code_body("claude-opus-4-6", stream=False))
    assert r.status_code == 200 and r.json()["content"][-1]["text"] == REPLY, r.text
    c = requests.post(p.base_url + "/chat/completions", timeout=30, json={
        "model": "claude-opus-4-6", "messages": MSG, "max_tokens": 32000})
    assert c.status_code == 200, c.text
    if mode == "native":
        assert fake.requests_to(NATIVE_MESSAGES_PATH)[-1].json["max_tokens"] == 21000
        assert last_chat(fake, mode)["max_tokens"] == 21000 and "max_tokens=21000" in c.headers[HEADER]
        assert "max_tokens=21000" in r.headers[HEADER]


def test_anthropic_sdk_extended_thinking_on_claude_4_5(argo):
    """Sampling under the API version that takes it: the SDK 2.x's own (2026-10-21) refuses any
    (test_messages_versions.py)."""
    mode, fake, p = argo
    fake.reset()
    raw = ant(p).messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body={"temperature": 0.5, "top_p": 0.9}, extra_headers={"anthropic-version": "2023-06-01"},
        messages=MSG)
    assert raw.parse().content[-1].text == REPLY
    if mode == "native":
        sent = fake.requests_to(NATIVE_MESSAGES_PATH)[-1].json
        assert "thinking" not in sent and sent["output_config"] == {"effort": "low"} and "top_p" not in sent
        assert raw.headers[HEADER] == "thinking=dropped, output_config.effort=low, top_p=dropped"
    else:
        assert "top_p" not in last_chat(fake, mode) and raw.headers[HEADER] == "top_p=dropped"


def test_claude_code_adaptive_thinking_and_opus_4_7_sampling(argo):
    mode, fake, p = argo
    fake.reset()
    body = claude_code_body("claude-sonnet-4-5", thinking={"type": "adaptive"}, output_config={"effort": "medium"},
                            stream=False)
    r = requests.post(p.url + "/v1/messages", headers=CLAUDE_CODE_HEADERS, json=body, timeout=30)
    assert r.status_code == 200 and r.json()["content"][-1]["text"] == REPLY
    # Claude Code's 32000 tokens answered whole: capped too in native mode (standard mode caps without a word)
    assert (r.headers.get(HEADER) == "thinking=dropped, max_tokens=21000") == (mode == "native")
    m = ant(p).messages.create(model="argo:claude-opus-4.7", max_tokens=64, extra_body={"temperature": 0.2},
                               messages=MSG)
    assert m.content[-1].text == REPLY


def test_chat_clients_on_gpt_5_and_claude_without_a_limit(argo):
    mode, fake, p = argo
    fake.reset()
    raw = oai(p).chat.completions.with_raw_response.create(model="argo:gpt-5", messages=MSG, temperature=0.2,
                                                           top_p=0.5, max_tokens=300)
    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers[HEADER] == "temperature=dropped, top_p=dropped, max_tokens->max_completion_tokens"
    sent = last_chat(fake, mode)
    assert "temperature" not in sent and "top_p" not in sent and sent["max_completion_tokens"] == 300
    r = oai(p).chat.completions.with_raw_response.create(model="argo:claude-sonnet-4.6", messages=MSG)
    assert r.headers[HEADER] == "max_tokens=16384" and last_chat(fake, mode)["max_tokens"] == 16384


def test_codex_reasoning_effort_on_gpt_5(argo):
    mode, fake, p = argo
    fake.reset()
    events = list(oai(p).responses.create(model="gpt-5", input="Say hello", stream=True, temperature=0.3,
                                          reasoning={"effort": "high"}, store=False))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == REPLY
    sent = last_chat(fake, mode)
    assert "temperature" not in sent
    if mode == "native":
        assert sent["reasoning_effort"] == "high"


def test_unknown_models_go_as_written(argo):
    mode, fake, p = argo
    if mode != "native":
        pytest.skip("ARGO standard mode answers 404 for a model it does not know")
    fake.reset()
    r = requests.post(p.base_url + "/chat/completions", json={"model": "my-own-model", "messages": MSG,
                                                              "temperature": 0.3, "top_p": 0.2}, timeout=30)
    # sent as written, unadapted; ARGO does not serve it (the fake refuses names it has not, as ARGO does)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found" and HEADER not in r.headers
    sent = last_chat(fake, mode)
    assert (sent["model"], sent["temperature"], sent["top_p"]) == ("my-own-model", 0.3, 0.2)


def test_strict_fake_refuses_as_argo_does():
    """Sent as written, the same shapes fail: the fake is as strict as ARGO (and the proxy answers in the
    door's shape with ARGO's status)."""
    with FakeArgo() as fake:
        env = argo_env(fake, USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=fake.native_base_url,
                       MODEL_CAPABILITIES='{"*": {"adapt": false}}')
        with running_proxy(**env) as p:
            r = requests.post(p.url + "/v1/messages", headers=CLAUDE_CODE_HEADERS, timeout=30,
                              json=claude_code_body("claude-opus-4-6", stream=False))
            # ARGO's refusal names `thinking` inside its quoting of the provider's error: the one retry drops it
            sent = [q.json for q in fake.requests_to(NATIVE_MESSAGES_PATH)]
            assert "thinking" in sent[0] and "thinking" not in sent[1], r.text
            assert r.status_code == 200 and r.headers[HEADER] == "max_tokens=21000, thinking=dropped", r.text
            r = requests.post(p.base_url + "/chat/completions", json={"model": "argo:gpt-5", "messages": MSG,
                                                                      "top_p": 0.5}, timeout=30)
            # the one retry without the parameter the 400 names still gets an answer
            assert r.status_code == 200 and r.headers[HEADER] == "top_p=dropped"
            assert [q.json.get("top_p") for q in fake.requests_to(NATIVE_CHAT_PATH)] == [0.5, None]


# ---------------------------------------------------------------- the openai backend, routed
def openai_rules(path: str, raw: bytes):
    """OpenAI's own API for gpt-5 models: temperature only 1, no top_p, no max_tokens."""
    body = json.loads(raw or b"{}")
    if not str(body.get("model", "")).startswith("gpt-5"):
        return None
    for name, message in (("temperature", "Unsupported value: 'temperature' does not support 0.2 with this model. "
                                          "Only the default (1) value is supported."),
                          ("top_p", "Unsupported parameter: 'top_p' is not supported with this model."),
                          ("max_tokens", "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                         "Use 'max_completion_tokens' instead.")):
        if body.get(name) is not None and not (name == "temperature" and body[name] == 1):
            return 400, {"error": {"message": message, "type": "invalid_request_error", "param": name,
                                   "code": "unsupported_parameter"}}
    return None


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    logs = tmp_path_factory.mktemp("journal")
    with FakeOpenAI(refuse=openai_rules) as up:
        models = [{"name": "gpt-5*", "backend": "openai", "base_url": up.base_url},
                  {"name": "judge", "backend": "openai", "base_url": up.base_url, "capabilities": {"top_p": False}},
                  {"name": "local-*", "backend": "openai", "base_url": up.base_url}]
        with running_proxy(MODELS=json.dumps(models), LOG_DIR=str(logs),
                           MODEL_CAPABILITIES='{"local-big": {"max_tokens": 4096}}') as p:
            yield up, p, logs


def test_openai_sdk_and_anthropic_sdk_on_gpt_5(routed):
    up, p, _ = routed
    up.reset()
    raw = oai(p).chat.completions.with_raw_response.create(model="gpt-5-mini", messages=MSG, temperature=0.2,
                                                           max_tokens=50)
    assert raw.parse().choices[0].message.content == "Hello from the fake upstream!"
    assert raw.headers[HEADER] == "temperature=dropped, max_tokens->max_completion_tokens"
    assert up.received[-1].json()["max_completion_tokens"] == 50
    m = ant(p).messages.create(model="gpt-5", max_tokens=100, extra_body={"temperature": 0.2, "top_p": 0.9},
                               messages=MSG)
    assert m.content[-1].text == "Hello from the fake upstream!"
    sent = up.received[-1].json()
    assert "temperature" not in sent and "top_p" not in sent and sent["max_completion_tokens"] == 100


def test_entry_and_setting_overrides(routed):
    up, p, _ = routed
    up.reset()
    raw = oai(p).chat.completions.with_raw_response.create(model="judge", messages=MSG, top_p=0.3)
    assert raw.headers[HEADER] == "top_p=dropped" and "top_p" not in up.received[-1].json()
    raw = oai(p).chat.completions.with_raw_response.create(model="local-big", messages=MSG)
    assert raw.headers[HEADER] == "max_tokens=4096" and up.received[-1].json()["max_tokens"] == 4096
    raw = oai(p).chat.completions.with_raw_response.create(model="local-small", messages=MSG, top_p=0.3)
    assert HEADER not in raw.headers and up.received[-1].json()["top_p"] == 0.3


def test_one_retry_without_the_parameter_a_400_names(routed):
    up, p, logs = routed
    up.reset()
    refusal = {"error": {"message": "Unsupported parameter: 'top_k'", "type": "invalid_request_error",
                         "param": "top_k", "code": "unsupported_parameter"}}
    up.add(Reply(refusal, status=400), Stream(chat_chunks(["second try"])))
    r = requests.post(p.base_url + "/chat/completions", timeout=30,
                      json={"model": "local-x", "messages": MSG, "top_k": 5, "stream": True})
    assert r.status_code == 200 and "second try" in r.text and r.headers[HEADER] == "top_k=dropped"
    assert [q.json().get("top_k") for q in up.received] == [5, None]
    up.reset()
    up.add(Reply(refusal, status=400), Reply(refusal, status=400))  # refused again: the client gets the 400
    r = requests.post(p.base_url + "/chat/completions", json={"model": "local-x", "messages": MSG, "top_k": 5,
                                                              "top_p": 1}, timeout=30)
    assert r.status_code == 400 and len(up.received) == 2
    up.reset()
    up.add(Reply({"error": {"message": "prompt is malformed", "type": "invalid_request_error"}}, status=400))
    r = requests.post(p.base_url + "/chat/completions", json={"model": "local-x", "messages": MSG, "top_k": 5},
                      timeout=30)
    assert r.status_code == 400 and len(up.received) == 1  # nothing named: no retry
    journal = os.path.join(logs, "client_interaction.jsonl")
    assert poll(lambda: os.path.exists(journal) and "adapted_params" in open(journal).read())
    lines = [json.loads(line) for line in open(journal)]
    assert any(line.get("adapted_params") == ["top_k=dropped"] for line in lines)
