"""The Google GenAI front door (/v1beta/models/{model}:generateContent, :streamGenerateContent, :countTokens and
the model list) through the real app under Gunicorn, driven by the official `google-genai` SDK (and raw HTTP for
what the SDK does not send: the JSON-array stream, `?key=`, hostile paths), over every backend: the fake
OpenAI-compatible upstream, ARGO (standard and native mode), DashScope, and routing by model."""

from __future__ import annotations

import json

import pytest
import requests
from google.genai import errors as genai_errors
from google.genai import types

from tests.clients import google_sdk
from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_dashscope import FakeDashScope
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.integration.test_argo import argo_env
from tests.integration.test_fronts import THINKING, ArgoUpstream, DashScopeUpstream, OpenAIUpstream
from tests.polling import poll
from tests.proxy_process import running_proxy

WEATHER = types.FunctionDeclaration(
    name="get_weather", description="Weather for a city",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))
ASK = "Weather in Paris?"


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
                yield u, p
    elif request.param == "argo":
        with FakeArgo() as argo, running_proxy(**argo_env(argo, THINK_MODE="reasoning")) as p:
            yield ArgoUpstream(argo), p
    elif request.param == "argo_native":
        with FakeOpenAI() as fake, FakeArgo() as argo, running_proxy(**argo_env(
                argo, USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=fake.base_url, THINK_MODE="reasoning")) as p:
            fake.accepts_null_content = True  # ARGO's OpenAI-compatible API, as in conftest's argo_native
            u = OpenAIUpstream(fake)
            u.model = "argo:gpt-4o"
            yield u, p
    else:
        with FakeDashScope(api_key="ds-key") as ds, \
                running_proxy(BACKEND="dashscope", TARGET_BASE_URL=ds.base_url, DASHSCOPE_API_KEY="ds-key",
                              THINK_MODE="reasoning") as p:
            yield DashScopeUpstream(ds), p


def test_generate_content(up):
    u, p = up
    u.text("Hello from upstream")
    # top_k: the SDK types it as a float and sends 20.0
    config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=50, temperature=0.25,
                                         top_k=20)
    client = google_sdk(p)
    r = client.models.generate_content(model=u.model, contents="Say hello", config=config)
    assert r.text == "Hello from upstream" and r.model_version == u.model
    assert u.last_body().get("top_k", 20) == 20  # where the backend has it (ARGO and DashScope have their own shapes)
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.usage_metadata.prompt_token_count > 0 and r.usage_metadata.candidates_token_count > 0
    sent = json.dumps(u.last_body())
    assert "Be brief." in sent and "Say hello" in sent


def reasoning_stream(model: str) -> Stream:
    """A chat stream whose reasoning comes as `reasoning_content` deltas (vLLM, DeepSeek, ARGO native)."""
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model}
    deltas = [{"reasoning_content": "The user wants "}, {"reasoning_content": "a greeting."}, {"content": "Hello "},
              {"content": "there!"}]
    return Stream([{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas] + [
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}}, "[DONE]"])


def test_generate_content_stream_with_thoughts(up):
    u, p = up
    u.text(THINKING)  # think tags (THINK_MODE=reasoning), or reasoning_content deltas where the upstream speaks chat
    if isinstance(u, OpenAIUpstream):
        u.fake.add(reasoning_stream(u.model))
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    client = google_sdk(p)
    chunks = list(client.models.generate_content_stream(model=u.model, contents="Say hello", config=config))
    parts = [part for c in chunks for part in (c.candidates[0].content.parts or ())]
    assert "".join(x.text for x in parts if x.thought) == "The user wants a greeting."
    assert "".join(x.text for x in parts if not x.thought) == "Hello there!"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count > 0


def test_the_sdks_own_streaming_example_prints_the_answer(up):
    """README and google-genai's example: `for chunk in ...: print(chunk.text, end="")`. The last chunk (the
    finish reason, no text of its own) had an empty parts list, whose chunk.text is None: it printed "None"."""
    u, p = up
    u.text("Hello there!")
    client = google_sdk(p)  # kept: a client the stream outlives is closed under it
    chunks = list(client.models.generate_content_stream(model=u.model, contents="Say hello"))
    assert "".join(f"{c.text}" for c in chunks) == "Hello there!"


def test_thoughts_left_out_unless_asked(up):
    u, p = up
    u.text(THINKING)
    if isinstance(u, OpenAIUpstream):  # ARGO native mode relays answers untransformed: reasoning comes apart
        answer = chat_completion("Hello there!", model=u.model)
        answer["choices"][0]["message"]["reasoning_content"] = "The user wants a greeting."
        u.fake.add(Reply(answer))
    client = google_sdk(p)
    r = client.models.generate_content(model=u.model, contents="Say hello")
    assert [(x.thought, x.text) for x in r.candidates[0].content.parts] == [(None, "Hello there!")]


def test_count_tokens(up):
    u, p = up
    client = google_sdk(p)
    r = client.models.count_tokens(model=u.model, contents="Say hello to everyone in the room")
    assert r.total_tokens > 5
    wrapped = {"generateContentRequest": {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}}
    answer = requests.post(f"{p.url}/v1beta/models/{u.model}:countTokens", json=wrapped, timeout=30)
    assert answer.status_code == 200 and answer.json()["totalTokens"] > 1, answer.text
    both = {**wrapped, "contents": [{"role": "user", "parts": [{"text": "other words entirely"}]}]}
    refused = requests.post(f"{p.url}/v1beta/models/{u.model}:countTokens", json=both, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT", refused.text


@pytest.mark.parametrize("stream", [False, True])
def test_function_calling_round_trip(up, stream):
    """A functionCall comes back whole; the functionResponse the SDK sends (no id: matched by name and order)
    reaches the upstream as the tool result of that call."""
    u, p = up
    client = google_sdk(p)
    u.tool_call(stream)
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])],
                                         automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    history = [types.Content(role="user", parts=[types.Part(text=ASK)])]
    if stream:
        chunks = list(client.models.generate_content_stream(model=u.model, contents=history, config=config))
        calls = [fc for c in chunks for fc in (c.function_calls or ())]
        model_turn = types.Content(role="model", parts=[types.Part(function_call=fc) for fc in calls])
    else:
        first = client.models.generate_content(model=u.model, contents=history, config=config)
        calls, model_turn = first.function_calls, first.candidates[0].content
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert "get_weather" in json.dumps(u.last_body())
    for part in model_turn.parts:  # a client that drops the ids: matched back by name and order
        part.function_call.id = None
    u.text("It is sunny in Paris.")
    answer = types.Part.from_function_response(name="get_weather", response={"result": "sunny, 21 C"})
    second = client.models.generate_content(
        model=u.model, config=config, contents=history + [model_turn, types.Content(role="user", parts=[answer])])
    assert second.text == "It is sunny in Paris."
    assert "sunny, 21 C" in json.dumps(u.last_body())


def test_models_list_and_get(up):
    u, p = up
    client = google_sdk(p)
    names = [m.name for m in client.models.list()]
    if u.name != "argo":  # ARGO lists its aliases (argo:gpt-4o...) under other spellings
        assert f"models/{u.model}" in names
    assert names and all(n.startswith("models/") for n in names)
    assert client.models.get(model=names[0].removeprefix("models/")).name == names[0]
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.get(model="no-such-model")
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"


def test_errors_in_google_shape(up):
    u, p = up
    client = google_sdk(p)
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model=u.model, contents="x",
                                       config=types.GenerateContentConfig(candidate_count=2))
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert "generationConfig.candidateCount" in info.value.message


# ------------------------------------------------------------------ guards, observers, the wire

@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """Auth on, an allow-list, LLM_PARAMS, journals, metrics, the proxy's own upstream key."""
    logs = tmp_path_factory.mktemp("journals")
    with FakeOpenAI() as fake, running_proxy(
            TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET="sk-proxy", OPENAI_API_KEY="sk-upstream",
            ALLOWED_MODELS="fake-model", LLM_PARAMS="model=fake-model,temperature=0.125", LOG_DIR=str(logs),
            DEBUG="true", MAX_RETRIES="0") as p:
        yield fake, p, logs


def post(p, path: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(p.url + path, json=body, timeout=30, **kwargs)


HELLO = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_keys_from_header_or_query_are_checked_and_never_forwarded(guarded):
    fake, p, logs = guarded
    fake.received.clear()
    client = google_sdk(p, key="sk-proxy", version="v1beta")  # Gemini CLI's version; the SDK's default is v1
    assert client.models.generate_content(model="fake-model", contents="hi").text
    r = post(p, "/v1beta/models/fake-model:generateContent?key=sk-proxy", HELLO)
    assert r.status_code == 200 and r.json()["candidates"][0]["content"]["parts"][0]["text"]
    for sent in fake.received:
        headers = {k.lower(): v for k, v in sent.headers.items()}
        assert headers["authorization"] == "Bearer sk-upstream" and "x-goog-api-key" not in headers
        assert "sk-proxy" not in json.dumps(headers) + sent.path
    client = google_sdk(p, key="wrong")
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="fake-model", contents="hi")
    assert info.value.code == 401 and info.value.status == "UNAUTHENTICATED"
    r = post(p, "/v1beta/models/fake-model:generateContent?key=wrong-key-in-query", HELLO)
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    r = post(p, "/v1beta/models/fake-model:generateContent", HELLO)
    assert r.status_code == 401 and "x-goog-api-key" in r.json()["error"]["message"]
    assert poll(lambda: "/v1beta/models/fake-model:generateContent" in p.read_log())  # the access log (DEBUG)
    assert "wrong-key-in-query" not in p.read_log() and "sk-proxy" not in p.read_log()
    journal = "".join(f.read_text() for f in logs.iterdir() if f.is_file())
    assert "sk-proxy" not in journal and "wrong-key-in-query" not in journal


def test_allow_list_llm_params_and_journal(guarded):
    fake, p, logs = guarded
    client = google_sdk(p, key="sk-proxy")
    fake.received.clear()
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="gpt-4o", contents="hi")
    assert info.value.code == 403 and info.value.status == "PERMISSION_DENIED" and fake.received == []
    assert [m.name for m in client.models.list()] == ["models/fake-model"]
    client.models.generate_content(model="fake-model", contents="hi")
    assert fake.received[-1].json()["temperature"] == 0.125

    def journaled() -> list[dict]:
        records = [json.loads(line) for f in logs.glob("*.jsonl") for line in f.read_text().splitlines()]
        return [r for r in records if r.get("front") == "google"
                and r.get("path") == "/v1/models/fake-model:generateContent"]  # the SDK's default version
    assert poll(journaled)


def test_metrics_carry_the_google_front(guarded):
    _, p, _ = guarded
    client = google_sdk(p, key="sk-proxy")
    client.models.count_tokens(model="fake-model", contents="hi")
    text = requests.get(p.url + "/metrics", headers={"Authorization": "Bearer sk-proxy"}, timeout=30).text
    assert 'front="google"' in text and 'route="count_tokens"' in text


def test_embed_content_one_and_a_batch_through_the_sdk(guarded):
    """embedContent and batchEmbedContents become one embeddings request (the guards as for generateContent)."""
    fake, p, _ = guarded
    client = google_sdk(p, key="sk-proxy", version="v1beta")
    fake.received.clear()
    one = client.models.embed_content(model="fake-model", contents="Paris",
                                      config=types.EmbedContentConfig(output_dimensionality=2))
    assert one.embeddings[0].values == [0.1, 0.2]
    assert fake.received[-1].path == "/v1/embeddings"
    sent = fake.received[-1].json()
    assert (sent["model"], sent["input"], sent["dimensions"]) == ("fake-model", ["Paris"], 2)
    fake.add(Reply({"object": "list", "model": "fake-model", "usage": {"prompt_tokens": 2, "total_tokens": 2},
                    "data": [{"object": "embedding", "index": 1, "embedding": [0.3]},
                             {"object": "embedding", "index": 0, "embedding": [0.4]}]}))
    two = client.models.embed_content(model="fake-model", contents=["Paris", "Rome"])
    assert [e.values for e in two.embeddings] == [[0.4], [0.3]]  # in the requests' order
    assert fake.received[-1].json()["input"] == ["Paris", "Rome"]
    fake.received.clear()
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.embed_content(model="gpt-4o", contents="Paris")
    assert info.value.code == 403 and fake.received == []
    other = {"requests": [{"model": "models/gpt-4o", "content": {"parts": [{"text": "Paris"}]}}]}
    r = post(p, "/v1beta/models/fake-model:batchEmbedContents?key=sk-proxy", other)
    assert r.status_code == 400 and "requests[0].model" in r.json()["error"]["message"] and fake.received == []


def test_json_array_stream(guarded):
    fake, p, _ = guarded
    fake.add(Stream(chat_chunks(["Hel", "lo"], usage=True)))
    r = post(p, "/v1beta/models/fake-model:streamGenerateContent", HELLO, headers={"x-goog-api-key": "sk-proxy"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    chunks = json.loads(r.content)
    assert "".join(part["text"] for c in chunks for part in c["candidates"][0]["content"]["parts"]) == "Hello"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and chunks[-1]["usageMetadata"]["totalTokenCount"]


@pytest.mark.parametrize("path, status", [
    ("/v1beta/models/fake-model%3AgenerateContent", 200),  # an encoded ':' is a ':' (decoded once)
    ("/V1BETA/Models/fake-model:GENERATECONTENT", 200),  # route names in any case; the model keeps its own
    ("/v1beta/models/Fake-Model:generateContent", 403),  # ...so another spelling is another (refused) model
    ("/v1beta/models/fake-model%2F..:generateContent", 400),  # an encoded '/'
    ("/v1beta/models/x/%2e%2E/fake-model:generateContent", 400),  # dot segments
    ("/v1beta/models/fake-model:generateContent%23", 400),
    ("/v1beta/models/gpt-4o:fake-model:generateContent", 403),  # the method follows the last ':'
    ("/v1beta/models/:generateContent", 404),
    ("/v1beta/files", 404),  # every /v1beta path is the Google door's: never forwarded
    ("/v1alpha/models/fake-model:generateContent", 200),  # google-genai's api_version="v1alpha"
    ("/v1alpha/files", 404), ("/upload/v1beta/files", 404),  # files.upload: not served, not forwarded
    ("/v1beta/models/fake-model:predict", 404),  # a method the door does not serve: it names those it does
    ("/v1beta/models/fake-model:generateAnswer", 404),
    ("/v1beta/models/fake-model:embedContent", 400),  # served: HELLO is no EmbedContentRequest (no `content`)
])
def test_hostile_model_segments(guarded, path, status):
    fake, p, _ = guarded
    fake.received.clear()
    r = requests.post(p.url + path + "?key=sk-proxy", json=HELLO, timeout=30)
    assert r.status_code == status, r.text
    if status != 200:
        assert set(r.json()["error"]) == {"code", "message", "status", "details"} and fake.received == []
    if status == 404 and path.endswith(("predict", "Answer")):
        served = "generateContent, streamGenerateContent, countTokens, embedContent, batchEmbedContents"
        assert served in r.json()["error"]["message"] and r.json()["error"]["status"] == "NOT_FOUND"


def test_upstream_errors_and_broken_streams_in_google_shape(guarded):
    fake, p, _ = guarded
    client = google_sdk(p, key="sk-proxy")
    fake.add(Reply({"error": {"message": "overloaded"}}, status=503))
    with pytest.raises(genai_errors.ServerError) as info:
        client.models.generate_content(model="fake-model", contents="hi")
    assert info.value.code == 503 and info.value.status == "UNAVAILABLE"
    fake.add(Stream(chat_chunks(["Hel", "lo"]), cut_after=1))
    with pytest.raises(genai_errors.APIError) as info:
        list(client.models.generate_content_stream(model="fake-model", contents="hi"))
    assert info.value.code == 502


def test_google_paths_outside_v1beta_never_take_a_key_upstream_with_auth_off():
    """google-genai's `api_version="v1alpha"` and its file uploads were forwarded to the upstream, the client's
    Google key with them (`x-goog-api-key` and `?key=`), when auth was off."""
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as p:
        headers = {"x-goog-api-key": "GOOGLE-KEY-hdr"}
        r = requests.post(p.url + "/v1alpha/models/fake-model:generateContent?key=GOOGLE-KEY-q", json=HELLO,
                          headers=headers, timeout=30)
        assert r.status_code == 200 and r.json()["candidates"][0]["content"]["parts"], r.text
        r = requests.post(p.url + "/upload/v1beta/files?key=GOOGLE-KEY-q", data=b"x", headers=headers, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND", r.text
        assert [x.path for x in fake.received] == ["/v1/chat/completions"]
        sent = json.dumps([dict(x.headers) for x in fake.received]) + " ".join(x.path for x in fake.received)
        assert "GOOGLE-KEY" not in sent


@pytest.fixture(scope="module")
def keeping_alive():
    """One proxy for both cases: they differ only in what the client asks (the fake is reset for each)."""
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, SSE_KEEPALIVE="0.05") as p:
        yield fake, p


@pytest.mark.parametrize("sse", [True, False])
def test_keepalives_are_blank_lines_the_sdks_skip(keeping_alive, sse):
    """SSE_KEEPALIVE while the upstream is slow: blank lines (a comment would break google-genai's reader and
    hang Gemini CLI's); the SDK reads the stream, and the JSON-array stream still parses."""
    fake, p = keeping_alive
    fake.reset()
    fake.add(Stream(chat_chunks(["Hel", "lo"]), first_delay=0.5))
    if sse:
        client = google_sdk(p)
        chunks = list(client.models.generate_content_stream(model="fake-model", contents="hi"))
        assert "".join(c.text or "" for c in chunks) == "Hello"
        fake.add(Stream(chat_chunks(["Hel", "lo"]), first_delay=0.5))
    r = post(p, "/v1beta/models/fake-model:streamGenerateContent" + ("?alt=sse" if sse else ""), HELLO)
    assert r.content.startswith(b"\n") and b"keepalive" not in r.content  # committed early, blank lines
    assert r.headers["Content-Type"].startswith("text/event-stream" if sse else "application/json")
    if not sse:
        assert "".join(part["text"] for c in json.loads(r.content)
                       for part in c["candidates"][0]["content"]["parts"]) == "Hello"


def test_a_stream_the_upstream_cuts_ends_with_googles_error():
    """An upstream stream that ends, well framed, before its answer does (DashScope's last event, the one with the
    finish reason, never came): the Google door's stream ends with Google's error object, which both SDKs raise,
    not with a finishReason of STOP as if the answer were whole."""
    with FakeDashScope(api_key="ds-key") as ds, \
            running_proxy(BACKEND="dashscope", TARGET_BASE_URL=ds.base_url, DASHSCOPE_API_KEY="ds-key") as p:
        ds.reply = "Hello there, this answer is long enough to be cut."
        ds.cut_after = 3
        r = requests.post(p.url + "/v1beta/models/qwen-plus:streamGenerateContent?alt=sse", json=HELLO, timeout=30)
        lines = [line for line in r.content.split(b"\r\n") if line]
        assert lines[0].startswith(b"data: ") and b"finishReason" not in r.content, r.content
        assert json.loads(lines[-1])["error"]["status"] == "UNAVAILABLE", r.content
        ds.cut_after = 3
        client = google_sdk(p)  # kept: a client the stream outlives is closed under it
        with pytest.raises(genai_errors.ServerError) as info:
            list(client.models.generate_content_stream(model="qwen-plus", contents="hi"))
        assert info.value.code == 502
