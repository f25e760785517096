"""Each `include` value OpenAI's API document lists, through the real app and the openai SDK: the ones that mean
something over a chat upstream are honoured (logprobs from the upstream's, the reasoning sealed by the proxy so
that a stateless client sends it back, input image URLs kept), the hosted tools' are accepted with nothing to
add (no such tool runs through a chat upstream), and anything else is the API's 400 naming `include`."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.clients import openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream
from tests.proxy_process import running_proxy

# The IncludeEnum of OpenAI's OpenAPI document (2.3.0).
SPEC_INCLUDE = ("file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
                "message.input_image.image_url", "computer_call_output.output.image_url",
                "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs")
REASONING = "The user greets me, so I greet them back."
LOGPROBS = [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105], "top_logprobs": []},
            {"token": "!", "logprob": -0.5, "bytes": [33], "top_logprobs": []}]
BASE = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
USAGE = {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13}


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url) as p:
        yield p


def answer(streamed: bool, reasoning: bool = False, logprobs: bool = False) -> Reply | Stream:
    if not streamed:
        message = {"role": "assistant", "content": "Hi!", **({"reasoning_content": REASONING} if reasoning else {})}
        return Reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "usage": USAGE,
                      "choices": [{"index": 0, "message": message, "finish_reason": "stop",
                                   "logprobs": {"content": LOGPROBS} if logprobs else None}]})
    deltas = ([{"reasoning_content": REASONING}] if reasoning else []) + [{"content": "Hi"}, {"content": "!"}]
    events = []
    for n, d in enumerate(deltas):
        choice = {"index": 0, "delta": d, "finish_reason": None}
        if logprobs and "content" in d:
            choice["logprobs"] = {"content": [LOGPROBS[n - len(deltas) + 2]]}
        events.append({**BASE, "choices": [choice]})
    return Stream(events + [{**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                            {**BASE, "choices": [], "usage": USAGE}, "[DONE]"])


def respond(client: openai.OpenAI, streamed: bool, **asked):
    if streamed:
        with client.responses.stream(**asked) as s:
            events = list(s)
            return s.get_final_response(), events
    return client.responses.create(**asked), []


@pytest.mark.parametrize("streamed", [False, True])
def test_logprobs_are_the_upstreams(fake, proxy, streamed):
    fake.add(answer(streamed, logprobs=True))
    response, events = respond(openai_sdk(proxy), streamed, model="m", input="Say hi",
                               include=["message.output_text.logprobs"])
    assert fake.received[-1].json()["logprobs"] is True  # asked of the upstream
    if streamed:  # each text delta carries its own
        got = [lp.token for e in events if e.type == "response.output_text.delta" for lp in e.logprobs]
    else:
        got = [lp.token for lp in response.output[0].content[0].logprobs]
    assert got == ["Hi", "!"]


@pytest.mark.parametrize("streamed", [False, True])
def test_encrypted_reasoning_goes_back_whole_from_a_stateless_client(fake, proxy, streamed):
    fake.add(answer(streamed, reasoning=True))
    client = openai_sdk(proxy)
    response, _ = respond(client, streamed, model="m", input="Say hi", store=False,
                          include=["reasoning.encrypted_content"])
    item = response.output[0]
    assert item.type == "reasoning" and item.encrypted_content.startswith("cpx1.")
    assert REASONING not in item.encrypted_content
    fake.add(answer(False))
    again = client.responses.create(model="m", store=False, include=["reasoning.encrypted_content"],
                                    input=[{"role": "user", "content": "Say hi"},
                                           *[i.model_dump(exclude_none=True) for i in response.output],
                                           {"role": "user", "content": "Once more"}])
    assert again.output_text == "Hi!"
    assert REASONING not in json.dumps(fake.received[-1].json())  # a chat upstream is not sent reasoning back


def test_without_it_reasoning_has_no_encrypted_content(fake, proxy):
    fake.add(answer(False, reasoning=True))
    response = openai_sdk(proxy).responses.create(model="m", input="Say hi")
    assert response.output[0].type == "reasoning" and response.output[0].encrypted_content is None


@pytest.mark.parametrize("value", [v for v in SPEC_INCLUDE if v not in ("message.output_text.logprobs",
                                                                        "reasoning.encrypted_content")])
def test_the_other_values_are_accepted(fake, proxy, value):
    fake.add(answer(False))
    image = "data:image/png;base64,iVBORw0KGgo="
    response = openai_sdk(proxy).responses.create(model="m", include=[value], input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is it?"}, {"type": "input_image", "image_url": image}]}])
    assert response.output_text == "Hi!"
    if value == "message.input_image.image_url":
        items = openai_sdk(proxy).responses.input_items.list(response.id, include=[value])
        assert items.data[0].content[1].image_url == image


def test_a_value_the_api_does_not_list_is_its_400(fake, proxy):
    url = proxy.url + "/v1/responses"
    before = len(fake.received)
    for include, code in ((["message.output_text.tokens"], "invalid_value"), ("reasoning.encrypted_content",
                                                                             "invalid_type"), ([3], "invalid_type")):
        r = requests.post(url, json={"model": "m", "input": "hi", "include": include}, timeout=30)
        error = r.json()["error"]
        assert r.status_code == 400 and error["type"] == "invalid_request_error" and error["param"] == "include"
        assert error["code"] == code
    assert len(fake.received) == before  # refused before the upstream
