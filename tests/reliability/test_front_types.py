"""Typed input on the front doors through the running app (issue 20, item 5): the wrong-typed fields that were
500s are 400s in the door's own shape naming the field, sent nowhere; a request nested deeper than MAX_DEPTH is
refused before it is sent, and one just under it is served, answered (a Responses answer echoes its tools) and
journaled. tests/unit/test_fronts_types.py tries every field with every type in-process."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from argoproxy.edge.request_body import MAX_DEPTH
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream
from tests.polling import poll
from tests.proxy_process import running_proxy

pytestmark = pytest.mark.timeout(120)

USER = {"role": "user", "content": "hi"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    logs = tmp_path_factory.mktemp("journal")
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, LOG_DIR=str(logs)) as p:
            yield fake, p, logs


def messages(*turns: dict, **extra: Any) -> dict:
    return {"model": "fake-model", "max_tokens": 10, "messages": [*turns], **extra}


def responses(*items: dict, **extra: Any) -> dict:
    return {"model": "fake-model", "input": [*items], **extra}


def text_turn(role: str, *blocks: dict) -> dict:
    return {"role": role, "content": list(blocks)}


MESSAGES_CASES = [
    (messages(USER, text_turn("assistant", {"type": "text", "text": 5}), USER), "messages.1.content.0.text"),
    (messages(text_turn("user", {"type": "document", "source": {"type": "content", "content": 5}})),
     "messages.0.content.0.source.content"),
    (messages(text_turn("user", {"type": "document", "source": {"type": "content",
                                                                  "content": [{"type": "text", "text": 5}]}})),
     "messages.0.content.0.source.content.0.text"),
    (messages(USER, tools=[{"type": "web_search_20250305", "name": ["web_search"]},
                           {"name": "get", "input_schema": {"type": "object"}}],
              tool_choice={"type": "tool", "name": "get"}), "tools.0.name"),
]
RESPONSES_CASES = [
    (responses(text_turn("user", {"type": "input_text", "text": 5})), "input[0].content[0].text"),
    (responses(text_turn("assistant", {"type": "output_text", "text": ["x"]})), "input[0].content[0].text"),
    (responses(text_turn("assistant", {"type": "refusal", "refusal": 7})), "input[0].content[0].refusal"),
    (responses({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
               {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": 5}]}),
     "input[1].output[0].text"),
]


@pytest.mark.parametrize("body,param", MESSAGES_CASES)
def test_messages_wrong_types_are_400s_naming_the_field(env, body, param):
    fake, p, _ = env
    sent = len(fake.received)
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        r = requests.post(p.url + path, json=body, timeout=30)
        assert r.status_code == 400, r.text
        error = r.json()
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert error["error"]["message"].startswith(param + ":"), error
    assert len(fake.received) == sent


@pytest.mark.parametrize("body,param", RESPONSES_CASES)
def test_responses_wrong_types_are_400s_naming_the_field(env, body, param):
    fake, p, _ = env
    sent = len(fake.received)
    r = requests.post(p.url + "/v1/responses", json=body, timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and f"`{param}`" in error["message"] and error["type"] == "invalid_request_error"
    assert len(fake.received) == sent


def nested(depth: int) -> dict:
    """JSON schema `parameters` whose objects nest `depth` levels."""
    value: dict = {"type": "string"}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def journal_lines(logs) -> list[dict]:
    path = logs / "client_interaction.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_request_nested_too_deeply_is_refused_before_it_is_sent(env):
    fake, p, _ = env
    sent = len(fake.received)
    deep = '{"a":' * 949 + '{"type":"string"}' + "}" * 949  # written out: json.dumps itself stops at 1000 levels
    tool = '{"type":"function","name":"f","parameters":' + deep + "}"
    raw = '{"model":"fake-model","input":[{"role":"user","content":"hi"}],"tools":[' + tool + "]}"
    r = requests.post(p.url + "/v1/responses", data=raw, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
    assert f"more than {MAX_DEPTH} levels" in r.json()["error"]["message"]
    r = requests.post(p.url + "/v1/chat/completions", timeout=30,
                      json={"model": "fake-model", "messages": [USER], "metadata": nested(480)})
    assert r.status_code == 400, r.text
    assert len(fake.received) == sent


@pytest.mark.parametrize("stream", [False, True])
def test_the_deepest_request_accepted_is_answered_and_journaled(env, stream):
    fake, p, logs = env
    tool = {"type": "function", "name": "f", "parameters": nested(MAX_DEPTH - 4)}  # body, tools, [0], parameters
    body = responses(USER, tools=[tool], stream=stream)
    r = requests.post(p.url + "/v1/responses", json=body, timeout=30)
    assert r.status_code == 200, r.text
    if stream:
        assert "response.completed" in r.text
    else:
        assert r.json()["tools"][0]["parameters"] == nested(MAX_DEPTH - 4)
    line = poll(lambda: next((line for line in journal_lines(logs) if line["input"] == body), None))
    assert line["status"] == 200


@pytest.mark.parametrize("path,body", [("/v1/responses", {"model": "fake-model", "input": "hi"}),
                                       ("/v1/messages", messages(USER))])
def test_an_upstream_answer_too_deep_to_parse_is_a_502_not_a_500(env, path, body):
    fake, p, _ = env
    deep = '{"a":' * 3000 + "1" + "}" * 3000  # past what Python's JSON parser takes: RecursionError, not ValueError
    answer = ('{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"finish_reason":"stop",'
              '"message":{"role":"assistant","content":"hi","extra":' + deep + "}}]}").encode()
    fake.add(Reply(answer, headers={"Content-Type": "application/json"}))
    r = requests.post(p.url + path, json=body, timeout=30)
    assert r.status_code == 502, r.text
    fake.add(Stream([b'data: {"choices":[{"index":0,"delta":{"content":"hi","x":' + deep.encode() + b"}}]}\n\n",
                     b"data: [DONE]\n\n"]))
    r = requests.post(p.url + path, json={**body, "stream": True}, timeout=30)
    # the event's text cannot be read: the stream ends in the door's failure events, not as if whole
    assert r.status_code == 200 and "cannot be understood" in r.text, r.text[-300:]
    assert ("response.failed" in r.text or "event: error" in r.text) and "response.completed" not in r.text
