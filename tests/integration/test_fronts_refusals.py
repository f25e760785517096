"""A model's refusal (chat's `refusal` field: what OpenAI's models send under structured outputs) through each
front door, whole and streamed, read by the official SDKs: the Responses door answers a `refusal` content part
(streamed as response.refusal.delta/done, so the SDK's parse helpers leave `output_parsed` empty instead of
failing on an empty JSON text); Messages says the refusal as text with `stop_reason: refusal`; Gemini, which
has no place of its own for one, says it as text."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.clients import anthropic_sdk, google_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream
from tests.proxy_process import running_proxy

REFUSAL = "I'm sorry, I can't help with that."
BASE = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}


class City(BaseModel):
    city: str


def whole() -> Reply:
    return Reply({"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o", "choices": [{
        "index": 0, "message": {"role": "assistant", "content": None, "refusal": REFUSAL}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 9, "total_tokens": 10}})


def streamed() -> Stream:
    deltas = [{"role": "assistant", "content": None, "refusal": ""}, {"refusal": REFUSAL[:10]}, {"refusal": REFUSAL[10:]}]
    return Stream([{**BASE, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
                  + [{**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, "[DONE]"])


@pytest.fixture(scope="module")
def fake_and_proxy():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as proxy:
        fake.accepts_null_content = fake.accepts_json_schema = True  # OpenAI's own API
        yield fake, proxy


@pytest.mark.parametrize("answer", [whole, streamed])
def test_responses_door_answers_a_refusal_part(fake_and_proxy, answer):
    fake, proxy = fake_and_proxy
    fake.add(answer())
    client = openai_sdk(proxy)
    if answer is whole:
        response = client.responses.parse(model="gpt-4o", input="x", text_format=City)
    else:
        with client.responses.stream(model="gpt-4o", input="x", text_format=City) as stream:
            kinds = [event.type for event in stream]
            response = stream.get_final_response()
        assert kinds.count("response.refusal.delta") == 2 and "response.output_text.delta" not in kinds
    parts = [(part.type, getattr(part, "refusal", None)) for item in response.output for part in item.content]
    assert parts == [("refusal", REFUSAL)] and response.output_parsed is None


@pytest.mark.parametrize("answer", [whole, streamed])
def test_messages_door_says_the_refusal_and_stops_for_it(fake_and_proxy, answer):
    fake, proxy = fake_and_proxy
    fake.add(answer())
    client = anthropic_sdk(proxy)
    ask = {"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
    if answer is whole:
        message = client.messages.create(**ask)
    else:
        with client.messages.stream(**ask) as stream:
            message = stream.get_final_message()
    assert [block.text for block in message.content] == [REFUSAL] and message.stop_reason == "refusal"


@pytest.mark.parametrize("answer", [whole, streamed])
def test_google_door_says_the_refusal_as_text(fake_and_proxy, answer):
    fake, proxy = fake_and_proxy
    fake.add(answer())
    client = google_sdk(proxy)
    if answer is whole:
        text = client.models.generate_content(model="gpt-4o", contents="x").text
    else:
        text = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(model="gpt-4o", contents="x"))
    assert text == REFUSAL
