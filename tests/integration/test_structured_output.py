"""Structured output to a server that words a JSON schema its own way: llama-cpp-python takes
`{"type": "json_object", "schema": ...}` and answers OpenAI's `json_schema` type with a 500 (the fake refuses it
as the real server does). Every structured request failed there: the SDK's parse(), Codex's --output-schema, the
Responses door's text.format, the Google door's responseSchema. The proxy sends it once more in the shape the
server takes, and says so in X-Adapted-Params."""

from __future__ import annotations

import json

import pydantic
import pytest
import requests

from tests.clients import openai_sdk
from tests.fakes.fake_openai import Reply, Stream

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
          "additionalProperties": False}


@pytest.fixture
def fake(upstream):
    """The module's upstream (its proxy, conftest's `proxy`, is shared: it keeps nothing of one request for
    another), reset, and refusing `json_schema` as llama-cpp-python does unless a test lets it take it."""
    upstream.accepts_json_schema = False
    return upstream


class Person(pydantic.BaseModel):
    name: str


def completion(text: str) -> dict:
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}


def test_the_sdks_parse_gets_its_object_from_a_server_that_words_schemas_otherwise(proxy, fake):
    fake.add(Reply(completion('{"name": "Ada"}')))
    raw = openai_sdk(proxy).chat.completions.with_raw_response.parse(
        model="m", messages=[{"role": "user", "content": "who?"}], response_format=Person)
    assert raw.parse().choices[0].message.parsed == Person(name="Ada")
    assert raw.headers["X-Adapted-Params"] == "response_format=json_object"
    sent = [r.json()["response_format"] for r in fake.received]
    assert sent[0]["type"] == "json_schema" and sent[1]["type"] == "json_object"
    assert sent[1]["schema"] == sent[0]["json_schema"]["schema"]


def test_the_responses_door_and_the_google_door_too(proxy, fake):
    fake.add(Reply(completion('{"name": "Ada"}')))
    r = openai_sdk(proxy).responses.create(model="m", input="who?", text={"format": {
        "type": "json_schema", "name": "person", "schema": SCHEMA, "strict": True}})
    assert json.loads(r.output_text) == {"name": "Ada"}
    assert fake.received[-1].json()["response_format"] == {"type": "json_object", "schema": SCHEMA}
    fake.add(Reply(completion('{"name": "Ada"}')))
    g = requests.post(proxy.url + "/v1beta/models/m:generateContent", timeout=30, json={
        "contents": [{"role": "user", "parts": [{"text": "who?"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": {
            "type": "OBJECT", "properties": {"name": {"type": "STRING"}}}}})
    assert g.status_code == 200, g.text
    assert fake.received[-1].json()["response_format"]["type"] == "json_object"


def test_a_server_that_takes_json_schema_gets_it_once(proxy, fake):
    fake.accepts_json_schema = True
    fake.add(Reply(completion('{"name": "Ada"}')))
    raw = openai_sdk(proxy).chat.completions.with_raw_response.parse(
        model="m", messages=[{"role": "user", "content": "who?"}], response_format=Person)
    assert raw.parse().choices[0].message.parsed == Person(name="Ada")
    assert "X-Adapted-Params" not in raw.headers and len(fake.received) == 1


def test_another_500_is_not_sent_again(proxy, fake):
    fake.add(Reply({"error": {"message": "CUDA out of memory", "type": "internal_server_error"}}, status=500))
    r = requests.post(proxy.base_url + "/chat/completions", timeout=30, json={
        "model": "m", "messages": [{"role": "user", "content": "who?"}],
        "response_format": {"type": "json_object"}})
    assert r.status_code == 500 and len(fake.received) == 1


def test_the_shape_taken_stays_for_the_proxys_later_askings(proxy, fake):
    """A stream that ends before its first event is asked again whole (llama.cpp's tool streams): that asking
    started from the request as the client wrote it, json_schema again, and got the 500 again."""
    fake.add(Stream([]), Reply(completion('{"name": "Ada"}')))
    r = requests.post(proxy.base_url + "/chat/completions", timeout=30, json={
        "model": "m", "messages": [{"role": "user", "content": "who?"}], "stream": True,
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}})
    assert r.status_code == 200 and "Ada" in r.text, r.text
    sent = [q.json()["response_format"]["type"] for q in fake.received]
    assert sent == ["json_schema", "json_object", "json_object"], sent


def test_a_schema_echoed_back_is_not_taken_for_the_servers_words(proxy, fake):
    """A 422 that quotes the request (a schema whose description says json_object) is not the refusal."""
    fake.accepts_json_schema = True
    fake.add(Reply({"detail": [{"msg": "bad", "input": {"response_format": {"type": "json_schema",
                                                                            "description": "not json_object"}}}]},
                   status=422))
    r = requests.post(proxy.base_url + "/chat/completions", timeout=30, json={
        "model": "m", "messages": [{"role": "user", "content": "who?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}})
    assert r.status_code == 422 and len(fake.received) == 1
