"""What the seeds promise, through the running app (issue 13, item 5): native mode relays answers as they come
and leaves parameter checks to the upstream; `--mode stream` answers non-streaming clients with JSON; one value
per response header; /v1/models/{id} for pseudo-models; LLM_PARAMS `model=default` for requests without model;
text and tool calls of a pseudo-stream in separate chunks."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.clients import openai_sdk as sdk
from tests.fakes.argo_rules import native_refusal
from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_dashscope import FakeDashScope
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.integration.test_argo import argo_env
from tests.proxy_process import running_proxy

MSG = [{"role": "user", "content": "Hi"}]


def test_native_leaves_parameter_checks_to_the_upstream(argo_native):
    up, p = argo_native
    up.add(Reply({"error": {"message": "temperature too high", "type": "invalid_request_error",
                            "param": "temperature", "code": None}}, status=422, headers={"Content-Type": "application/problem+json"}))
    r = requests.post(p.base_url + "/chat/completions",
                      json={"model": "argo:gpt-4o", "messages": MSG, "temperature": 3, "n": 0})
    assert up.received[-1].json()["temperature"] == 3  # the proxy did not answer 400 itself
    assert r.status_code == 422 and r.json()["error"]["message"] == "temperature too high"
    assert r.headers["Content-Type"] == "application/problem+json"
    up.add(Reply(chat_completion("fine")))
    r = requests.post(p.base_url + "/chat/completions", json={"messages": "not even a list", "temperature": 3})
    assert r.status_code == 200 and "model" not in up.received[-1].json()


def test_native_relays_a_2xx_that_is_not_json(argo_native):
    up, p = argo_native
    up.add(Reply(b"plain text, not JSON", status=203, headers={"Content-Type": "text/plain; charset=utf-8"}))
    r = requests.post(p.base_url + "/chat/completions", json={"model": "argo:gpt-4o", "messages": MSG})
    assert (r.status_code, r.content) == (203, b"plain text, not JSON")
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_native_username_passthrough_starts_without_user():
    with FakeOpenAI(refuse=native_refusal) as up, FakeArgo() as argo:
        env = argo_env(argo, USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=up.base_url,
                       USERNAME_PASSTHROUGH="true")
        env.pop("ARGO_USER")
        with running_proxy(**env) as p:
            sdk(p, key="erin").chat.completions.create(model="argo:gpt-4o", messages=MSG)
            assert up.received[-1].json()["user"] == "erin"
            requests.post(p.base_url + "/chat/completions", json={"model": "argo:gpt-4o", "messages": MSG})
            assert "user" not in up.received[-1].json()  # no key, no configured user: none is invented


# ------------------------------------------------------------------ stream mode, headers
def test_stream_mode_answers_a_non_streaming_client_with_json():
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, UPSTREAM_MODE="stream") as p:
        up.add(Stream(chat_chunks(["Hel", "lo"], usage=True)))
        r = requests.post(p.base_url + "/chat/completions", json={"model": "m", "messages": MSG})
        assert up.received[-1].json()["stream"] is True
        assert r.headers["Content-Type"] == "application/json"
        assert r.json()["choices"][0]["message"]["content"] == "Hello"


def test_one_value_per_response_header(proxy, upstream):
    own = {"cache-control": "no-store", "x-accel-buffering": "yes", "content-type": "text/event-stream"}
    upstream.add(Stream(chat_chunks(["a", "b"]), headers=own))
    r = requests.post(proxy.base_url + "/chat/completions", json={"model": "m", "messages": MSG, "stream": True})
    raw = r.raw._original_response.msg  # every header line as sent (requests would join repeats)
    for name, value in (("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no"),
                        ("Content-Type", "text/event-stream; charset=utf-8")):
        assert raw.get_all(name) == [value], name
    upstream.add(Reply(chat_completion("x"), headers={"X-Ratelimit-Remaining-Requests": "1"}))
    # a header the upstream repeats reaches the client once, values joined
    upstream.queue[-1].headers["x-ratelimit-remaining-requests"] = "2"
    r = requests.post(proxy.base_url + "/chat/completions", json={"model": "m", "messages": MSG})
    assert r.raw._original_response.msg.get_all("X-Ratelimit-Remaining-Requests") == ["1, 2"]


# ------------------------------------------------------------------ pseudo-models, model=default
def test_models_id_answers_for_pseudo_models():
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, LLM_PARAMS="model=fast,temperature=0.1") as p:
        assert "fast" in [m.id for m in sdk(p).models.list()]
        model = sdk(p).models.retrieve("fast")
        assert (model.id, model.object, model.owned_by) == ("fast", "model", "cot_proxy")
        up.add(Reply({"id": "fake-model", "object": "model", "created": 0, "owned_by": "up"}))
        assert sdk(p).models.retrieve("fake-model").owned_by == "up"  # others are the upstream's
        assert up.received[-1].path == "/v1/models/fake-model"
    with FakeArgo() as argo, running_proxy(**argo_env(argo, LLM_PARAMS="model=quick,temperature=0")) as p:
        assert sdk(p).models.retrieve("quick").id == "quick"
        assert sdk(p).models.retrieve("argo:gpt-4o").id == "argo:gpt-4o"
        # Every name a chat request may use (seed 000: `gpt-4o`, the internal id `gpt4o`) is retrievable too.
        for name in ("gpt-4o", "gpt4o", "GPT-4O", "v3small"):
            model = sdk(p).models.retrieve(name)
            assert model.id == name and model.model_extra["internal_name"] in ("gpt4o", "v3small"), model
        with pytest.raises(openai.NotFoundError):
            sdk(p).models.retrieve("no-such-model")


def test_model_default_applies_to_a_request_without_model(proxy, upstream):
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, LLM_PARAMS="model=default,temperature=0.25") as p:
        r = requests.post(p.base_url + "/chat/completions", json={"messages": MSG})
        assert r.status_code == 200, r.text
        sent = up.received[-1].json()
        assert sent["temperature"] == 0.25 and "model" not in sent  # forwarded: the server picks its model
    # without LLM_PARAMS: the module's proxy with default settings, its fake (`upstream`) with nothing queued
    assert requests.post(proxy.base_url + "/chat/completions", json={"messages": MSG}).status_code == 200
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url,
                                           LLM_PARAMS="model=default,upstream_model_name=served") as p:
        requests.post(p.base_url + "/chat/completions", json={"messages": MSG})
        assert up.received[-1].json()["model"] == "served"


@pytest.mark.parametrize("backend", ["argo", "dashscope"])
def test_backends_that_need_a_model_say_so(backend):
    with FakeArgo() as argo, FakeDashScope(api_key="k") as ds:
        env = argo_env(argo) if backend == "argo" else dict(BACKEND="dashscope", TARGET_BASE_URL=ds.base_url,
                                                            DASHSCOPE_API_KEY="k")
        with running_proxy(LLM_PARAMS="model=default,temperature=0.5", **env) as p:
            r = requests.post(p.base_url + "/chat/completions", json={"messages": MSG})
            assert r.status_code == 400 and r.json()["error"]["param"] == "model"


# ------------------------------------------------------------------ pseudo-stream with tool calls
def test_pseudo_stream_puts_text_and_tool_calls_in_separate_chunks():
    calls = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    answer = chat_completion("Let me check.")
    answer["choices"][0]["message"]["tool_calls"] = calls
    answer["choices"][0]["finish_reason"] = "tool_calls"
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, UPSTREAM_MODE="non_stream") as p:
        up.add(Reply(answer))
        with requests.post(p.base_url + "/chat/completions", stream=True,
                           json={"model": "m", "messages": MSG, "stream": True}) as r:
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith(b"data: {")]
        deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
        assert all(not ("tool_calls" in d and d.get("content")) for d in deltas)
        assert [d.get("content") for d in deltas if d.get("content")] == ["Let me check."]
        assert [d["tool_calls"][0]["id"] for d in deltas if d.get("tool_calls")] == ["call_1"]
