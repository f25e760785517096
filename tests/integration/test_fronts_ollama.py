"""The Ollama door (/api/chat, /api/generate, /api/embed, /api/embeddings, /api/tags, /api/show, /api/version,
/api/ps) through the real app under Gunicorn, driven by the official `ollama` Python client (and raw HTTP for the
wire), over every backend: the fake OpenAI-compatible upstream, ARGO (standard and native mode), DashScope, and
routing by model; then its guards, journals and metrics, and FRONTS_PASSTHROUGH=ollama (byte for byte)."""

from __future__ import annotations

import json

import ollama
import pytest
import requests

from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_dashscope import FakeDashScope
from tests.fakes.fake_openai import FakeOpenAI, Reply, chat_completion
from tests.integration.test_argo import argo_env
from tests.integration.test_fronts_google import reasoning_stream
from tests.integration.test_fronts import THINKING, ArgoUpstream, DashScopeUpstream, OpenAIUpstream
from tests.polling import poll
from tests.proxy_process import running_proxy

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
EMBEDDING_MODELS = {"openai": "fake-embed", "argo": "argo:text-embedding-3-small", "argo_native": "argo:text-embedding-3-small",
                    "dashscope": "text-embedding-v3", "routing": "routed-model"}


def client(p, key: str | None = None) -> ollama.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return ollama.Client(host=p.url, headers=headers, timeout=30)


@pytest.fixture(scope="module", params=["openai", "argo", "argo_native", "dashscope", "routing"])
def up(request):
    """A proxy (THINK_MODE=reasoning) in front of each backend in turn."""
    if request.param in ("openai", "routing"):
        with FakeOpenAI() as fake:
            if request.param == "openai":
                env = {"TARGET_BASE_URL": fake.base_url}
            else:
                env = {"MODELS": json.dumps([{"name": "routed-model", "backend": "openai", "base_url": fake.base_url}])}
            with running_proxy(THINK_MODE="reasoning", **env) as p:
                u = OpenAIUpstream(fake)
                u.model = "routed-model" if request.param == "routing" else u.model
                yield u, p, request.param
    elif request.param == "argo":
        with FakeArgo() as argo, running_proxy(**argo_env(argo, THINK_MODE="reasoning")) as p:
            yield ArgoUpstream(argo), p, request.param
    elif request.param == "argo_native":
        with FakeOpenAI() as fake, FakeArgo() as argo, running_proxy(**argo_env(
                argo, USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=fake.base_url, THINK_MODE="reasoning")) as p:
            fake.accepts_null_content = True  # ARGO's OpenAI-compatible API, as in conftest's argo_native
            u = OpenAIUpstream(fake)
            u.model = "argo:gpt-4o"
            yield u, p, request.param
    else:
        with FakeDashScope(api_key="ds-key") as ds, \
                running_proxy(BACKEND="dashscope", TARGET_BASE_URL=ds.base_url, DASHSCOPE_API_KEY="ds-key",
                              THINK_MODE="reasoning") as p:
            yield DashScopeUpstream(ds), p, request.param


def test_chat_whole_and_streamed(up):
    u, p, _ = up
    u.text("Hello from upstream")
    r = client(p).chat(model=u.model, messages=[{"role": "user", "content": "Say hello"}], stream=False,
                       options={"temperature": 0.25, "num_predict": 50, "num_ctx": 8192})
    assert r.message.content == "Hello from upstream" and r.done and r.done_reason == "stop"
    assert r.model == u.model and r.prompt_eval_count > 0 and r.eval_count > 0 and r.total_duration > 0
    assert "Say hello" in json.dumps(u.last_body())
    u.text("Hello there!")
    parts = list(client(p).chat(model=u.model, messages=[{"role": "user", "content": "Say hello"}], stream=True))
    assert "".join(x.message.content for x in parts) == "Hello there!"
    assert [x.done for x in parts][-1] is True and not any(x.done for x in parts[:-1])
    assert parts[-1].eval_count > 0 and parts[-1].eval_duration >= 0


def test_thinking_comes_back_as_message_thinking(up):
    u, p, _ = up
    u.text(THINKING)  # think tags, moved to reasoning (THINK_MODE=reasoning)
    if isinstance(u, OpenAIUpstream):  # or reasoning_content deltas where the upstream speaks chat
        u.fake.add(reasoning_stream(u.model))
    parts = list(client(p).chat(model=u.model, messages=[{"role": "user", "content": "hi"}], think=True, stream=True))
    assert "".join(x.message.thinking or "" for x in parts) == "The user wants a greeting."
    assert "".join(x.message.content for x in parts) == "Hello there!"
    u.text(THINKING)
    if isinstance(u, OpenAIUpstream):  # ARGO native mode relays answers untransformed: reasoning comes apart
        answer = chat_completion("Hello there!", model=u.model)
        answer["choices"][0]["message"]["reasoning_content"] = "The user wants a greeting."
        u.fake.add(Reply(answer))
    r = client(p).chat(model=u.model, messages=[{"role": "user", "content": "hi"}], think=False)
    assert r.message.thinking is None and r.message.content == "Hello there!"


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(up, stream):
    """A tool call comes back with its arguments as an object; the result the client sends (role tool, by its
    tool's name, no call id) reaches the upstream as the answer to that call."""
    u, p, _ = up
    u.tool_call(stream)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    c = client(p)
    if stream:
        parts = list(c.chat(model=u.model, messages=ask, tools=[WEATHER], stream=True))
        calls = [call for x in parts for call in (x.message.tool_calls or ())]
        assistant = {"role": "assistant", "content": "", "tool_calls": calls}
    else:
        first = c.chat(model=u.model, messages=ask, tools=[WEATHER])
        calls, assistant = first.message.tool_calls, first.message
    assert [(x.function.name, dict(x.function.arguments)) for x in calls] == [("get_weather", {"city": "Paris"})]
    assert "get_weather" in json.dumps(u.last_body())
    u.text("It is sunny in Paris.")
    second = c.chat(model=u.model, tools=[WEATHER], stream=False, messages=ask + [
        assistant, {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"}])
    assert second.message.content == "It is sunny in Paris."
    assert "sunny, 21 C" in json.dumps(u.last_body())


def test_generate(up):
    u, p, _ = up
    u.text("The sky scatters blue light.")
    r = client(p).generate(model=u.model, prompt="Why is the sky blue?", system="Be brief.", stream=False)
    assert r.response == "The sky scatters blue light." and r.done
    assert "Be brief." in json.dumps(u.last_body())
    u.text("Rayleigh.")
    assert "".join(x.response for x in client(p).generate(model=u.model, prompt="Why?", stream=True)) == "Rayleigh."


def test_embed(up):
    u, p, name = up
    model = EMBEDDING_MODELS[name]
    r = client(p).embed(model=model, input=["a", "b"])
    assert len(r.embeddings) == (1 if isinstance(u, OpenAIUpstream) else 2)  # the OpenAI fake answers one vector
    assert all(isinstance(v, float) for v in r.embeddings[0])
    legacy = client(p).embeddings(model=model, prompt="a")
    assert legacy.embedding and legacy.embedding == list(r.embeddings[0])


def test_list_show_ps_version(up):
    u, p, name = up
    c = client(p)
    listed = [m.model for m in c.list().models]
    if name != "argo":  # ARGO lists its aliases (argo:gpt-4o...) under other spellings
        assert u.model in listed
    assert listed
    shown = c.show(listed[0])
    assert shown.capabilities and shown.modelinfo is not None
    with pytest.raises(ollama.ResponseError) as info:
        c.show("no-such-model")
    assert info.value.status_code == 404
    assert [m.model for m in c.ps().models] == listed
    assert requests.get(p.url + "/api/version", timeout=30).json()["version"]


def test_show_gives_the_context_length_a_local_server_lists():
    """vLLM lists max_model_len, llama.cpp meta.n_ctx_train: the client reads them where Ollama puts them (VS Code
    assumed 4,096 tokens without them)."""
    listing = {"object": "list", "data": [
        {"id": "vllm-model", "object": "model", "created": 0, "owned_by": "vllm", "max_model_len": 32768},
        {"id": "llama-model", "object": "model", "created": 0, "owned_by": "llamacpp",  # as llama-server lists it
         "architecture": {"input_modalities": ["text", "image"], "output_modalities": ["text"]},
         "meta": {"n_ctx": 131072, "n_ctx_train": 262144, "n_vocab": 151936}}]}
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as p:
        fake.default_answer = lambda method, path, body: Reply(listing) if path.endswith("/models") else None
        c = client(p)
        for name, context in (("vllm-model", 32768), ("llama-model", 131072)):
            shown = c.show(name)
            info = dict(shown.modelinfo or {})
            assert info[info["general.architecture"] + ".context_length"] == context
            assert shown.parameters == f"num_ctx {context}"
            assert ("vision" in (shown.capabilities or [])) == (name == "llama-model")


def test_errors_in_ollamas_shape(up):
    u, p, _ = up
    with pytest.raises(ollama.ResponseError) as info:
        client(p).chat(model=u.model, messages=[{"role": "user", "content": "x"}], options={"temperature": "hot"})
    assert info.value.status_code == 400 and info.value.error.startswith("options.temperature")
    r = requests.post(p.url + "/api/chat", data=b"{not json", timeout=30)
    assert r.status_code == 400 and isinstance(r.json()["error"], str)


# ------------------------------------------------------------------ guards, observers, the wire

@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """Auth on, an allow-list, LLM_PARAMS, journals, metrics, the proxy's own upstream key."""
    logs = tmp_path_factory.mktemp("journals")
    with FakeOpenAI() as fake, running_proxy(
            TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET="sk-proxy", OPENAI_API_KEY="sk-upstream",
            ALLOWED_MODELS="fake-model", LLM_PARAMS="model=fake-model,temperature=0.125", LOG_DIR=str(logs),
            MAX_RETRIES="0") as p:
        yield fake, p, logs


def test_keys_allow_list_llm_params_journal_and_metrics(guarded):
    fake, p, logs = guarded
    with pytest.raises(ollama.ResponseError) as info:
        client(p).chat(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 401
    fake.received.clear()
    with pytest.raises(ollama.ResponseError) as info:
        client(p, "sk-proxy").chat(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 403 and fake.received == []
    assert [m.model for m in client(p, "sk-proxy").list().models] == ["fake-model"]
    r = client(p, "sk-proxy").chat(model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=False)
    assert r.message.content
    sent = fake.received[-1]
    assert sent.json()["temperature"] == 0.125 and sent.headers["Authorization"] == "Bearer sk-upstream"

    def journaled() -> list[dict]:
        records = [json.loads(line) for f in logs.glob("*.jsonl") for line in f.read_text().splitlines()]
        return [r for r in records if r.get("front") == "ollama" and r.get("path") == "/api/chat"]
    assert poll(journaled)
    text = requests.get(p.url + "/metrics", headers={"Authorization": "Bearer sk-proxy"}, timeout=30).text
    assert 'front="ollama"' in text


def test_ndjson_on_the_wire(guarded):
    fake, p, _ = guarded
    r = requests.post(p.url + "/api/generate", json={"model": "fake-model", "prompt": "hi"},
                      headers={"Authorization": "Bearer sk-proxy"}, stream=True, timeout=30)
    assert r.headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines[-1]["done"] is True and all(not x["done"] for x in lines[:-1])
    assert lines[-1]["created_at"].endswith("Z") and isinstance(lines[-1]["total_duration"], int)


def test_passthrough_keeps_api_byte_for_byte():
    """FRONTS_PASSTHROUGH=ollama: an upstream that is itself Ollama gets /api/* as the client sent it, and the
    client its answer as the upstream wrote it (the door steps aside)."""
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url.rstrip("/").removesuffix("/v1") + "/",
                                             FRONTS_PASSTHROUGH="ollama") as p:
        body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"options":{"num_ctx":8192},"stream":false}'
        r = requests.post(p.url + "/api/chat", data=body, timeout=30)
        assert fake.received[-1].path == "/api/chat" and fake.received[-1].body == body
        assert r.status_code == 200 and r.json()["path"] == "/api/chat"  # the upstream's answer, as it wrote it


def test_passthrough_keeps_ollamas_account_and_full_list_from_team_and_limited_keys(tmp_path):
    """FRONTS_PASSTHROUGH=ollama in front of a shared Ollama: a team key and a key_limits key cannot sign it out of
    ollama.com or read its account, and its /api/tags and /api/ps show them only the models their key may use;
    the operator's key reaches it all."""
    from tests.integration.test_team_keys import create
    db = tmp_path / "keys.db"
    team = create(db, "team", "--models", "llama3*")
    every = {"models": [{"name": n, "model": n, "size": 1, "digest": "d", "details": {}}
                        for n in ("llama3:latest", "mistral:latest", "secret:latest")]}
    with FakeOpenAI() as fake, running_proxy(
            TARGET_BASE_URL=fake.root_url, FRONTS_PASSTHROUGH="ollama", ENABLE_AUTH="true", API_KEY_SECRET="admin-key",
            KEYS_DB=str(db), KEY_LIMITS='{"LIMITED_KEY": {"rpm": 1000}}', LIMITED_KEY="sk-limited-0123456789",
            ALLOWED_MODELS="llama3*,mistral*") as p:
        auth = {name: {"Authorization": f"Bearer {key}"} for name, key in
                (("team", team), ("limited", "sk-limited-0123456789"), ("admin", "admin-key"))}
        for method, path in (("POST", "/api/signout"), ("DELETE", "/api/user/keys/c3NoLWVk"), ("POST", "/api/me"),
                             ("POST", "/api/pull")):
            for name in ("team", "limited"):
                r = requests.request(method, p.url + path, json={"model": "llama3"}, headers=auth[name], timeout=30)
                assert r.status_code == 403 and "operator" in r.json()["error"], (name, path, r.text)
            assert not [x for x in fake.received if x.path == path]
            r = requests.request(method, p.url + path, json={"model": "llama3"}, headers=auth["admin"], timeout=30)
            assert r.status_code == 200 and fake.received[-1].path == path
        for path in ("/api/tags", "/api/ps"):
            shown = {}
            for name in ("team", "limited", "admin"):
                fake.add(Reply(every, path=path))
                r = requests.get(p.url + path, headers=auth[name], timeout=30)
                assert r.status_code == 200 and fake.received[-1].path == path, r.text
                shown[name] = [m["name"] for m in r.json()["models"]]
            assert shown == {"team": ["llama3:latest"], "limited": ["llama3:latest", "mistral:latest"],
                             "admin": ["llama3:latest", "mistral:latest"]}, shown  # globs, then ALLOWED_MODELS
        fake.add(Reply(every, path="/api/tags"))  # as the ollama client reads it
        assert [m.model for m in ollama.Client(host=p.url, headers=auth["team"]).list().models] == ["llama3:latest"]
