"""The ARGO backend (standard mode) through the running app against a fake ARGO gateway."""

from __future__ import annotations

import time

import openai
import pytest
import requests

from tests.clients import openai_sdk
from tests.fakes.fake_argo import CHAT_PATH, EMBED_PATH, MODELS_PATH, STREAM_PATH, FakeArgo
from tests.proxy_process import running_proxy

MSG = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]


def argo_env(argo: FakeArgo, **extra: str) -> dict[str, str]:
    return dict(BACKEND="argo", ARGO_USER="alice", ARGO_URL=argo.chat_url, ARGO_STREAM_URL=argo.stream_url,
                ARGO_EMBEDDING_URL=argo.embed_url, **extra)


@pytest.fixture(scope="module")
def argo_proxy():
    with FakeArgo() as argo:
        with running_proxy(**argo_env(argo)) as p:
            yield argo, p


@pytest.fixture
def argo(argo_proxy):
    fake, p = argo_proxy
    fake.reset()
    fake.reply = "Hello from ARGO"
    fake.stream_chunk_size = 4
    fake.stream_delay = 0.0
    fake.delay = 0.0
    return fake


@pytest.fixture
def proxy(argo_proxy):
    return argo_proxy[1]


def sdk(p, key="anything") -> openai.OpenAI:
    return openai_sdk(p, key)


def test_chat_translated_both_ways(argo, proxy):
    r = sdk(proxy).chat.completions.create(model="argo:gpt-4o", messages=MSG, user="mallory", temperature=0.2)
    sent = argo.requests_to(CHAT_PATH)[-1].json
    assert (sent["user"], sent["model"], sent["temperature"]) == ("alice", "gpt4o", 0.2)
    assert sent["messages"] == MSG
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == "argo:gpt-4o"
    assert r.choices[0].message.content == "Hello from ARGO" and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


@pytest.mark.parametrize("name", ["ARGO:GPT-4O", "argo/gpt-4o", "gpt-4o", "gpt4o"])
def test_model_name_forms(argo, proxy, name):
    sdk(proxy).chat.completions.create(model=name, messages=MSG)
    assert argo.requests_to(CHAT_PATH)[-1].json["model"] == "gpt4o"


def test_unknown_model_is_404_with_suggestions(argo, proxy):
    with pytest.raises(openai.NotFoundError) as err:
        sdk(proxy).chat.completions.create(model="argo:gpt-4oo", messages=MSG)
    assert "gpt-4o" in str(err.value)
    assert all(r.path == MODELS_PATH for r in argo.requests)  # ARGO's own list may be read; no chat reached it


def test_real_stream_with_split_utf8(argo, proxy):
    argo.reply = "Grüße, 世界! 🌍 done"
    argo.stream_chunk_size = 1
    chunks = list(sdk(proxy).chat.completions.create(model="argo:gpt-4o", messages=MSG, stream=True,
                                                     stream_options={"include_usage": True}))
    sent = argo.requests_to(STREAM_PATH)[-1]
    assert sent.headers["accept-encoding"] == "identity"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Grüße, 世界! 🌍 done"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_stream_arrives_incrementally(argo, proxy):
    sdk(proxy).chat.completions.create(model="argo:gpt-4o", messages=MSG)  # the worker's token counter loaded
    argo.reply = "abcdefghij" * 3
    argo.stream_chunk_size = 10
    argo.stream_delay = 0.5
    start = time.monotonic()
    times = []
    for c in sdk(proxy).chat.completions.create(model="argo:gpt-4o", messages=MSG, stream=True):
        if c.choices and c.choices[0].delta.content:
            times.append(time.monotonic() - start)
    # the chunks are 0.5 s apart upstream: relayed as they come, the first is a second ahead of the last (a
    # buffered stream would bring them together, however busy the machine)
    assert len(times) >= 2 and times[-1] - times[0] > 0.9, times


def test_pseudo_stream(argo_proxy):
    argo, _ = argo_proxy
    argo.reset()
    with running_proxy(**argo_env(argo, REAL_STREAM="false")) as p:
        chunks = list(sdk(p).chat.completions.create(model="argo:gpt-4o", messages=MSG, stream=True))
    assert argo.requests_to(CHAT_PATH) and not argo.requests_to(STREAM_PATH)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == argo.reply


def test_legacy_completions(argo, proxy):
    r = sdk(proxy).completions.create(model="argo:gpt-4o", prompt=["Say", "hi"])
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.choices[0].text == "Hello from ARGO"
    assert len(r.choices) == 1
    sent = argo.requests_to(CHAT_PATH)[-1].json
    assert sent["user"] == "alice" and isinstance(sent["prompt"], list)
    chunks = list(sdk(proxy).completions.create(model="argo:gpt-4o", prompt="Say hi", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from ARGO"
    assert all(c.object == "text_completion" for c in chunks)


def test_embeddings_batched_in_order(argo, proxy):
    inputs = [f"text {i}" for i in range(37)]
    e = sdk(proxy).embeddings.create(model="argo:text-embedding-3-small", input=inputs, encoding_format="float")
    calls = argo.requests_to(EMBED_PATH)
    assert [len(c.json["prompt"]) for c in calls] == [16, 16, 5]
    assert all(c.json["user"] == "alice" for c in calls)
    assert [d.index for d in e.data] == list(range(37))
    assert e.data[20].embedding == pytest.approx(FakeArgo.vector("text 20", "v3small"), abs=1e-6)
    assert e.usage.prompt_tokens > 0


@pytest.mark.parametrize("path,body", [
    ("/v1/embeddings", '{"model": "argo:text-embedding-3-small", "input": ["a\\ud800b"]}'),
    ("/v1/chat/completions", '{"model": "argo:gpt-4o", "messages": [{"role": "user", "content": "a\\ud800b"}]}'),
    ("/v1/chat/completions", '{"model": "argo:gpt-4o", "stream": true, "messages": [{"role": "user", '
                             '"content": "a\\ud800b"}]}'),
    ("/v1/messages", '{"model": "argo:gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "a\\ud800b"}]}'),
], ids=["embeddings", "chat", "chat stream", "messages"])
def test_a_lone_surrogate_is_refused_by_argo_with_a_400_the_client_gets(argo, proxy, path, body):
    """A lone surrogate goes to ARGO escaped, and ARGO's 400 reaches the client in its door's shape (the fake
    crashed on an embedding's, and the client got a 502)."""
    r = requests.post(proxy.url + path, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert "lone surrogate" in err["message"] and err["type"] == "invalid_request_error", err
    assert (r.json().get("type") == "error") == (path == "/v1/messages")
    assert b"\\ud800" in argo.requests[-1].body


def test_upstream_errors(argo, proxy):
    argo.respond_with(503, {"detail": "maintenance"}, path=CHAT_PATH, times=3)  # outlasts the 2 retries
    with pytest.raises(openai.InternalServerError) as err:
        sdk(proxy).chat.completions.create(model="argo:gpt-4o", messages=MSG)
    assert err.value.status_code == 503
    argo.respond_with(429, {"detail": "slow down"}, path=CHAT_PATH)
    with pytest.raises(openai.RateLimitError):
        sdk(proxy).chat.completions.create(model="argo:gpt-4o", messages=MSG)
    argo.respond_with(200, "<html>not json</html>", path=CHAT_PATH)
    r = requests.post(proxy.base_url + "/chat/completions", json={"model": "argo:gpt-4o", "messages": MSG})
    assert r.status_code == 502 and r.json()["error"]["message"]
    argo.respond_with(200, {"no": "response"}, path=CHAT_PATH)
    assert requests.post(proxy.base_url + "/chat/completions",
                         json={"model": "argo:gpt-4o", "messages": MSG}).status_code == 502
    argo.respond_with_auth_notice(path=CHAT_PATH)
    r = requests.post(proxy.base_url + "/chat/completions", json={"model": "argo:gpt-4o", "messages": MSG})
    assert r.status_code == 403 and "not registered" in r.json()["error"]["message"]


def test_request_timeout_field(argo, proxy):
    argo.delay = 5
    start = time.monotonic()
    r = requests.post(proxy.base_url + "/chat/completions",
                      json={"model": "argo:gpt-4o", "messages": MSG, "timeout": 1})
    assert r.status_code == 504 and time.monotonic() - start < 4  # at the request's timeout, not ARGO's answer
    argo.delay = 0
    requests.post(proxy.base_url + "/chat/completions", json={"model": "argo:gpt-4o", "messages": MSG, "timeout": 30})
    assert "timeout" not in argo.requests_to(CHAT_PATH)[-1].json


def test_o1_and_claude_normalisation(argo, proxy):
    sdk(proxy).chat.completions.create(model="argo:o1-preview", messages=MSG)
    assert [m["role"] for m in argo.requests_to(CHAT_PATH)[-1].json["messages"]] == ["user", "user"]
    sdk(proxy).chat.completions.create(model="argo:claude-sonnet-4", messages=[{"role": "system", "content": "x"}])
    assert argo.requests_to(CHAT_PATH)[-1].json["messages"][-1]["role"] == "user"


def test_raw_routes(argo, proxy):
    r = requests.post(proxy.base_url + "/chat", json={"model": "argo:gpt-4o", "prompt": "hi", "user": "x"})
    assert r.json() == {"response": "Hello from ARGO"}
    assert argo.requests_to(CHAT_PATH)[-1].json["user"] == "alice"
    r = requests.post(proxy.base_url + "/chat", json={"model": "argo:gpt-4o", "prompt": "hi", "stream": True})
    assert r.text == "Hello from ARGO" and r.headers["Content-Type"].startswith("text/plain")
    r = requests.post(proxy.base_url + "/embed", json={"model": "argo:text-embedding-3-small", "prompt": ["a", "b"]})
    assert len(r.json()["embedding"]) == 2


def test_models_status_health(argo, proxy):
    ids = {m["id"]: m.get("internal_name") for m in requests.get(proxy.base_url + "/models").json()["data"]}
    assert ids["argo:gpt-4o"] == "gpt4o"
    argo.requests.clear()  # the model list may have read ARGO's live list just now (first test of the module)
    assert requests.get(proxy.url + "/health").json()["status"] == "healthy"
    assert not argo.requests  # no upstream call for a plain health check
    assert requests.get(proxy.url + "/health?deep=1").status_code == 200
    status = requests.get(proxy.base_url + "/status").json()
    assert status["object"] == "chat.completion" and status["choices"][0]["message"]["content"] == "Hello from ARGO"
    assert argo.requests_to(CHAT_PATH)[-1].json["messages"][0]["content"] == "Say hello"


def test_status_strips_think_text_as_chat_does(argo, proxy):
    """/v1/status is a chat through ARGO: its answer's <think> text is handled as chat's (stripped by default)."""
    argo.reply = "<think>The user wants a greeting.</think>\n\nHello from ARGO"
    chat = sdk(proxy).chat.completions.create(model="gpt4o", messages=MSG)
    status = requests.get(proxy.base_url + "/status")
    assert status.status_code == 200, status.text
    assert chat.choices[0].message.content == status.json()["choices"][0]["message"]["content"] == "Hello from ARGO"
    assert "<think>" not in status.text


def test_unknown_route_is_404(argo, proxy):
    r = requests.get(proxy.base_url + "/files")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_route"


def test_model_fallback_restores_the_original_behaviour(argo_proxy):
    argo, _ = argo_proxy
    with running_proxy(**argo_env(argo, MODEL_FALLBACK="gpt4o")) as p:
        sdk(p).chat.completions.create(model="something-else", messages=MSG)
    assert argo.requests_to(CHAT_PATH)[-1].json["model"] == "gpt4o"
