"""The reference transport (FAST_PATH=off): a stock requests Session, Session.request(stream=True), bodies
read with iter_content. Here the `responses` library stands in for the upstream, both for the upstream
client alone and for the whole app in-process (Flask's test client)."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from argoproxy.serve.flask_app import create_app
from argoproxy.errors import ProxyError
from argoproxy.config.settings import load_settings
from argoproxy.upstream.client import Upstream
from argoproxy.upstream.stock import StockResponse
from argoproxy.upstream.wire import UpstreamRequest, read_chunks

BASE = "http://upstream.test/v1/"
CHAT = BASE + "chat/completions"
ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "<think>hmm</think>Hello"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}


def sse(*chunks: dict) -> str:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def chunk(content: str | None, finish: str | None = None) -> dict:
    delta = {} if content is None else {"content": content}
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def stock_upstream(retries: int = 0) -> Upstream:
    return Upstream(connect_timeout=1, read_timeout=5, max_retries=retries)


@responses.activate
def test_a_whole_answer_through_the_stock_session():
    responses.post(CHAT, json=ANSWER, headers={"X-Upstream": "1"})
    with stock_upstream().send(UpstreamRequest("POST", CHAT, {"Content-Type": "application/json"}, b"{}")) as resp:
        assert isinstance(resp, StockResponse)
        assert resp.status_code == 200 and resp.headers["x-upstream"] == "1"
        assert resp.json() == ANSWER
    assert responses.calls[0].request.body == b"{}"


@responses.activate
def test_a_body_is_read_as_it_comes():
    body = sse(chunk("a"), chunk("b", "stop"))
    responses.post(CHAT, body=body, content_type="text/event-stream")
    with stock_upstream().send(UpstreamRequest("POST", CHAT, {}, b"{}")) as resp:
        assert b"".join(read_chunks(resp)) == body.encode()


@responses.activate
def test_a_whole_body_is_bounded_by_max_response_bytes():
    responses.post(CHAT, body=b"a" * 5000)
    upstream = Upstream(connect_timeout=1, read_timeout=5, max_retries=0, max_response_bytes=1000)
    with upstream.send(UpstreamRequest("POST", CHAT, {}, b"{}")) as resp, pytest.raises(ProxyError) as err:
        resp.content
    assert err.value.status == 502 and "MAX_RESPONSE_BYTES" in err.value.message


@responses.activate
def test_an_overloaded_upstream_is_retried_then_answers():
    responses.post(CHAT, status=503, headers={"Retry-After": "0"})
    responses.post(CHAT, json=ANSWER)
    with stock_upstream(retries=2).send(UpstreamRequest("POST", CHAT, {}, b"{}")) as resp:
        assert resp.status_code == 200
    assert len(responses.calls) == 2


@responses.activate
def test_a_connection_failure_is_a_502_in_words():
    responses.post(CHAT, body=requests.ConnectionError("Connection refused"))
    with pytest.raises(ProxyError) as err:
        stock_upstream().send(UpstreamRequest("POST", CHAT, {}, b"{}"))
    assert err.value.status == 502 and "upstream.test" in err.value.message


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off", "TARGET_BASE_URL": BASE})
    return create_app(settings).test_client()


@responses.activate
def test_the_app_strips_think_tags_from_a_mocked_answer(client):
    responses.post(CHAT, json=ANSWER)
    r = client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    assert r.get_json()["choices"][0]["message"]["content"] == "Hello"
    assert json.loads(responses.calls[0].request.body)["model"] == "m"


@responses.activate
def test_the_app_streams_a_mocked_stream(client):
    responses.post(CHAT, body=sse(chunk("<think>x</think>Hi"), chunk(" there", "stop")),
                   content_type="text/event-stream")
    r = client.post("/v1/chat/completions", json={"model": "m", "stream": True,
                                                  "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    events = [line[6:] for line in r.get_data(as_text=True).splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in map(json.loads, events[:-1]) if c["choices"])
    assert text == "Hi there"


@responses.activate
def test_the_app_passes_an_upstream_error_on(client):
    responses.post(CHAT, status=429, json={"error": {"message": "slow down", "type": "rate_limit", "code": "rl"}})
    r = client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 429 and r.get_json()["error"]["message"] == "slow down"
