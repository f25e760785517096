"""The core gateway through the running app (Gunicorn) against a fake upstream: forwarding, streaming,
think tags, LLM_PARAMS, health and errors, driven by the openai SDK and raw HTTP."""

from __future__ import annotations

import gzip
import json
import time

import openai
import pytest
import requests

from tests.clients import openai_sdk
from tests.fakes.fake_openai import Reply, Stream, chat_chunks, chat_completion
from tests.polling import poll
from tests.proxy_process import free_port, running_proxy

MSG = [{"role": "user", "content": "hi"}]


def client(proxy, key="sk-client-key") -> openai.OpenAI:
    return openai_sdk(proxy, key)


def stream_text(stream) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


# ------------------------------------------------------------------ forwarding
def test_chat_round_trip_forwards_body_and_headers(proxy, upstream):
    raw = json.dumps({"model": "m", "messages": MSG, "top_k": 3, "chat_template_kwargs": {"x": 1}})
    r = requests.post(proxy.base_url + "/chat/completions", data=raw,
                      headers={"Content-Type": "application/json", "Authorization": "Bearer sk-client-key",
                               "X-Custom": "kept"})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream!"
    got = upstream.received[-1]
    assert got.path == "/v1/chat/completions"  # never /v1/v1
    assert got.body == raw.encode()  # untouched bytes when nothing changed
    assert got.headers["Authorization"] == "Bearer sk-client-key"
    assert got.headers["X-Custom"] == "kept"
    assert got.headers["Host"] == f"127.0.0.1:{upstream.port}"
    assert r.headers["X-Request-ID"]


def test_sdk_non_stream_and_stream(proxy, upstream):
    c = client(proxy)
    assert c.chat.completions.create(model="m", messages=MSG).choices[0].message.content.startswith("Hello")
    assert stream_text(c.chat.completions.create(model="m", messages=MSG, stream=True)) == \
        "Hello from the fake upstream!"


def test_any_path_method_and_query_pass_through(proxy, upstream):
    r = requests.put(proxy.url + "/api/blobs/tags?verbose=1&x=%20y", data=b"\x00\x01binary", headers={"X-A": "b"})
    assert r.status_code == 200 and r.json()["method"] == "PUT"
    assert "X-Fake-Echo" not in r.headers  # the upstream's own header: not on the allow-list (docs/hardening.md)
    got = upstream.received[-1]
    assert (got.method, got.path, got.query, got.body) == ("PUT", "/v1/api/blobs/tags", "verbose=1&x=%20y", b"\x00\x01binary")


def test_multipart_upload_passes_byte_for_byte(proxy, upstream):
    payload = bytes(range(256)) * 40
    r = requests.post(proxy.base_url + "/audio/transcriptions", files={"file": ("a.wav", payload, "audio/wav")},
                      data={"model": "whisper-1"})
    assert r.status_code == 200
    got = upstream.received[-1]
    assert got.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert payload in got.body and b'name="model"' in got.body


def test_gzip_bodies_reach_the_client_correctly(proxy, upstream):
    body = {"object": "list", "data": [{"id": "x" * 2000}]}
    upstream.add(Reply(body, gzip=True))
    r = requests.get(proxy.base_url + "/files", headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip" and r.json() == body
    upstream.add(Reply(chat_completion("zipped"), gzip=True))
    raw = requests.post(proxy.base_url + "/chat/completions", json={"model": "m", "messages": MSG},
                        headers={"Accept-Encoding": "gzip"}, stream=True)
    data = raw.raw.read(decode_content=False)
    if raw.headers.get("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    assert json.loads(data)["choices"][0]["message"]["content"] == "zipped"


@pytest.fixture
def targeted(request, upstream, base):
    """A proxy whose TARGET_BASE_URL is the upstream's root + base: the module's own where that is its target (the
    same settings: no start of its own), else one of its own."""
    target = upstream.root_url + base
    if target == upstream.base_url:
        yield request.getfixturevalue("proxy")
    else:
        with running_proxy(TARGET_BASE_URL=target) as p:
            yield p


@pytest.mark.parametrize("base,path,expected", [
    ("v1/", "/v1/models", "/v1/models"), ("", "/v1/models", "/v1/models"), ("v1/", "/models", "/v1/models")])
def test_target_with_or_without_v1(targeted, upstream, base, path, expected):
    assert requests.get(targeted.url + path).status_code == 200
    assert upstream.received[-1].path == expected


# ------------------------------------------------------------------ streaming
def test_events_are_relayed_as_they_arrive(proxy, upstream):
    upstream.add(Stream(chat_chunks(["one", "two", "three"]), delay=0.6))
    start = time.monotonic()
    arrivals = []
    with requests.post(proxy.base_url + "/chat/completions", json={"model": "m", "messages": MSG, "stream": True},
                       stream=True) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["X-Accel-Buffering"] == "no"
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                arrivals.append(time.monotonic() - start)
    # Spread out as the upstream sent them (0.6 s apart), not held until the stream ends; a busy machine can
    # only delay an event, never bring the last one closer to the first.
    assert arrivals[-1] - arrivals[0] > 1.2
    assert arrivals[-1] > 2.0


def test_client_disconnect_closes_the_upstream_stream(proxy, upstream):
    upstream.add(Stream(chat_chunks([f"t{i}" for i in range(100)]), delay=0.05))
    before = upstream.closed_streams
    with requests.post(proxy.base_url + "/chat/completions", json={"model": "m", "messages": MSG, "stream": True},
                       stream=True) as r:
        next(r.iter_lines())
    deadline = time.monotonic() + 3
    while upstream.closed_streams == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.closed_streams == before + 1


def test_upstream_cut_mid_stream_gives_an_sse_error(proxy, upstream):
    upstream.add(Stream(chat_chunks(["partial", "more", "x"]), cut_after=3))
    with pytest.raises(openai.APIError) as err:
        stream_text(client(proxy).chat.completions.create(model="m", messages=MSG, stream=True))
    assert "broke off the response" in str(err.value)
    upstream.add(Stream(chat_chunks(["partial", "more", "x"])[:3]))  # ends cleanly, but without finish or [DONE]
    with pytest.raises(openai.APIError) as err:
        stream_text(client(proxy).chat.completions.create(model="m", messages=MSG, stream=True))
    assert "closed the stream before the answer was complete" in str(err.value)


# ------------------------------------------------------------------ think tags
def test_think_stripped_non_stream(proxy, upstream):
    upstream.add(Reply(chat_completion("<think>secret plan</think>\n\nThe answer", n=2)))
    r = client(proxy).chat.completions.create(model="m", messages=MSG, n=2)
    assert [c.message.content for c in r.choices] == ["The answer", "The answer"]


def test_think_escaped_in_json_is_still_found(proxy, upstream):
    upstream.add(Reply(b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
                       b'"message":{"role":"assistant","content":"\\u003cthink\\u003eno\\u003c/think\\u003eyes"},'
                       b'"finish_reason":"stop"}]}'))
    assert client(proxy).chat.completions.create(model="m", messages=MSG).choices[0].message.content == "yes"


def test_think_split_across_events_and_implicit_start(proxy, upstream):
    upstream.add(Stream(chat_chunks(["<th", "ink>hid", "den</th", "ink>", "Vis", "ible"]), split=True))
    assert stream_text(client(proxy).chat.completions.create(model="m", messages=MSG, stream=True)) == "Visible"
    upstream.add(Stream(chat_chunks(["I should", " think</th", "ink>\n\nAnswer"], model="DeepSeek-R1-Distill-Qwen-7B")))
    out = client(proxy).chat.completions.create(model="DeepSeek-R1-Distill-Qwen-7B", messages=MSG, stream=True)
    assert stream_text(out) == "Answer"


def test_reasoning_mode_moves_text_to_reasoning_content(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url, THINK_MODE="reasoning") as p:
        fake.add(Reply(chat_completion("<think>why</think>Because")))
        msg = client(p).chat.completions.create(model="m", messages=MSG).choices[0].message
        assert (msg.content, msg.model_extra["reasoning_content"]) == ("Because", "why")
        fake.add(Stream(chat_chunks(["<think>a", "b</think>", "c"])))
        chunks = list(client(p).chat.completions.create(model="m", messages=MSG, stream=True))
        reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
        assert (stream_text(chunks), reasoning) == ("c", "ab")


def test_keep_mode_and_per_model_tags(fake):
    params = "model=keeper,think_mode=keep;model=seed,think_tag_start=<seed:think>,think_tag_end=</seed:think>"
    with running_proxy(TARGET_BASE_URL=fake.base_url, LLM_PARAMS=params) as p:
        fake.add(Reply(chat_completion("<think>x</think>y")), Reply(chat_completion("<seed:think>x</seed:think>y")))
        assert client(p).chat.completions.create(model="keeper", messages=MSG).choices[0].message.content == "<think>x</think>y"
        assert client(p).chat.completions.create(model="seed", messages=MSG).choices[0].message.content == "y"


# ------------------------------------------------------------------ LLM_PARAMS
def test_llm_params_override_and_pseudo_models(fake):
    params = "model=fast,upstream_model_name=qwen3-8b,append_to_last_user_message=\\n/no_think,temperature=0.1;" \
             "model=*,top_k=20"
    with running_proxy(TARGET_BASE_URL=fake.base_url, LLM_PARAMS=params) as p:
        client(p).chat.completions.create(model="fast", messages=MSG, temperature=1.5)
        sent = fake.received[-1].json()
        assert (sent["model"], sent["temperature"], sent["top_k"]) == ("qwen3-8b", 0.1, 20)
        assert sent["messages"][-1]["content"] == "hi\n/no_think"
        assert not {"upstream_model_name", "append_to_last_user_message"} & set(sent)
        ids = [m.id for m in client(p).models.list()]
        assert "fast" in ids and "fake-model" in ids


# ------------------------------------------------------------------ errors and health
def test_bad_requests_get_openai_errors(proxy, upstream):
    cases = [
        (requests.post(proxy.base_url + "/chat/completions", data="{bad", headers={"Content-Type": "application/json"}), 400),
        (requests.post(proxy.base_url + "/chat/completions", json=[1, 2]), 400),
        (requests.get(proxy.base_url + "/chat/completions"), 405),
        (requests.post(proxy.url + "/health"), 405),
        (requests.post(proxy.base_url + "/chat/completions", data=b"x" * (33 * 1024 * 1024)), 413),
    ]
    for r, status in cases:
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert set(err) >= {"message", "type", "param", "code"}
    assert not upstream.received


def test_upstream_errors_keep_status_and_retry_after(proxy, upstream):
    upstream.add(Reply({"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}},
                       status=401))
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        client(proxy).chat.completions.create(model="m", messages=MSG)
    upstream.add(*[Reply({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=429,
                         headers={"Retry-After": "120"})])
    r = requests.post(proxy.base_url + "/chat/completions", json={"model": "m", "messages": MSG})
    assert r.status_code == 429 and r.headers["Retry-After"] == "120"
    upstream.add(Reply(b"<html>Bad gateway</html>", status=502, headers={"Content-Type": "text/html"}),
                 Reply(b"<html>Bad gateway</html>", status=502, headers={"Content-Type": "text/html"}),
                 Reply(b"<html>Bad gateway</html>", status=502, headers={"Content-Type": "text/html"}))
    r = requests.post(proxy.base_url + "/chat/completions", json={"model": "m", "messages": MSG})
    assert r.status_code == 502 and r.json()["error"]["message"]


def test_connection_refused_is_502_and_health_503():
    port = free_port()
    with running_proxy(TARGET_BASE_URL=f"http://127.0.0.1:{port}/v1/", MAX_RETRIES="0") as p:
        r = requests.post(p.base_url + "/chat/completions", json={"model": "m", "messages": MSG},
                          headers={"Authorization": "Bearer sk-secret-value"})
        assert r.status_code == 502 and "refused" in r.json()["error"]["message"]
        assert "sk-secret-value" not in r.text
        start = time.monotonic()
        h = requests.get(p.url + "/health")
        assert h.status_code == 503 and h.json()["status"] == "unhealthy" and time.monotonic() - start < 5


def test_read_timeout_is_504(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url, TIMEOUT="1", MAX_RETRIES="0") as p:
        fake.add(Reply(chat_completion("late"), delay=3))
        r = requests.post(p.base_url + "/chat/completions", json={"model": "m", "messages": MSG})
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"


def test_health_is_cached(proxy, upstream):
    assert requests.get(proxy.url + "/health").json() == {"status": "healthy", "target_url": upstream.base_url}
    count = len(upstream.received)
    for _ in range(5):
        requests.get(proxy.url + "/health")
    assert len(upstream.received) - count <= 1


def test_debug_logs_one_line_per_request_without_secrets(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url, DEBUG="true") as p:
        client(p, key="sk-canary-123456").chat.completions.create(model="m", messages=MSG)
        poll(lambda: "status=200" in p.read_log())  # logged as the answer ends
    log = p.stop()
    assert "POST /v1/chat/completions model=m status=200" in log
    assert f"upstream=127.0.0.1:{fake.port}/v1/chat/completions upstream_model=m upstream_status=200" in log
    assert "sk-canary-123456" not in log
