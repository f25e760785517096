"""Anthropic API version 2026-10-21 (the default of Anthropic's SDK 2.x) toward an upstream that speaks Messages
itself, ARGO's native Claude endpoint: the version relayed as the client sent it, no temperature, top_p or top_k
added by LLM_PARAMS (a warning once per model), and nothing the proxy changes becoming what that version refuses.
The fake refuses what the real API refuses under that version (tests/fakes/argo_rules.py: version_refusal)."""

from __future__ import annotations

import anthropic
import pytest
import requests

from tests.clients import anthropic_sdk as ant
from tests.fakes.fake_argo import NATIVE_COUNT_PATH, NATIVE_MESSAGES_PATH, FakeArgo
from tests.integration.test_argo import argo_env
from tests.polling import poll
from tests.proxy_process import running_proxy

NEW, OLD = "2026-10-21", "2023-06-01"
SAMPLING = ("temperature", "top_p", "top_k")
MSG = [{"role": "user", "content": "Say hello"}]
REPLY = "Hello from strict ARGO."
PARAMS = "model=*,temperature=0.3,top_k=7,append_to_last_user_message=\\n(be brief);model=claude-opus-4-6,top_p=0.9"
WARNING = "which its clients' API version refuses"


@pytest.fixture(scope="module")
def native():
    """ARGO native mode with LLM_PARAMS that set every sampling parameter (and append a line to the last user
    turn) in front of the strict fake ARGO."""
    with FakeArgo() as fake:
        fake.reply = REPLY
        with running_proxy(**argo_env(fake, USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=fake.native_base_url,
                                      LLM_PARAMS=PARAMS)) as p:
            yield fake, p


@pytest.fixture
def argo(native):
    fake, p = native
    fake.reset()
    return fake, p


def sent(fake: FakeArgo, path: str = NATIVE_MESSAGES_PATH):
    return fake.requests_to(path)[-1]


def test_sdk_2_requests_get_no_sampling_from_llm_params(argo):
    """The SDK's own request (Bearer key, its default version): messages and count_tokens accepted by the strict
    upstream, the version relayed as the SDK sent it, LLM_PARAMS' other overrides still applied."""
    fake, p = argo
    raw = ant(p).messages.with_raw_response.create(model="claude-opus-4-6", max_tokens=64, messages=MSG)
    assert raw.http_request.headers["anthropic-version"] >= NEW and "x-api-key" not in raw.http_request.headers
    assert raw.parse().content[-1].text == REPLY
    up = sent(fake)
    assert up.headers["anthropic-version"] == raw.http_request.headers["anthropic-version"]
    assert not set(SAMPLING) & up.json.keys() and up.json["messages"][-1]["content"] == "Say hello\n(be brief)"
    count = ant(p).messages.count_tokens(model="claude-sonnet-4-6", messages=MSG)
    assert count.input_tokens > 0 and not set(SAMPLING) & sent(fake, NATIVE_COUNT_PATH).json.keys()
    with ant(p).messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=MSG) as stream:
        assert stream.get_final_text() == REPLY
    assert not set(SAMPLING) & sent(fake).json.keys()


@pytest.mark.parametrize("version", ["2027-03-01", "2023-06-01, 2026-10-21"])
def test_a_later_version_is_held_the_same_and_relayed_as_sent(argo, version):
    fake, p = argo
    r = requests.post(p.url + "/v1/messages", headers={"x-api-key": "k", "anthropic-version": version}, timeout=30,
                      json={"model": "claude-opus-4-6", "max_tokens": 64, "messages": MSG})
    assert r.status_code == 200, r.text
    assert sent(fake).headers["anthropic-version"] == version and not set(SAMPLING) & sent(fake).json.keys()


def test_an_older_version_still_gets_them(argo):
    fake, p = argo
    m = ant(p).messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MSG,
                               extra_headers={"anthropic-version": OLD})
    assert m.content[-1].text == REPLY
    up = sent(fake)
    assert up.headers["anthropic-version"] == OLD
    assert up.json["temperature"] == 0.3 and up.json["top_k"] == 7
    r = requests.post(p.url + "/v1/messages", json={"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": MSG},
                      timeout=30)  # no version at all: the proxy's default, the one Anthropic's API began with
    assert r.status_code == 200 and sent(fake).headers["anthropic-version"] == OLD
    assert sent(fake).json["temperature"] == 0.3


def test_the_warning_is_said_once_per_model(argo):
    fake, p = argo
    for model in ("claude-haiku-4-5", "claude-haiku-4-5", "claude-haiku-4-5", "claude-opus-4-5"):
        ant(p).messages.create(model=model, max_tokens=64, messages=MSG)
    said = lambda: [line for line in p.read_log().splitlines() if WARNING in line and "-4-5'" in line]  # noqa: E731
    lines = poll(lambda: len(said()) >= 2) and said()
    assert sum("'claude-haiku-4-5'" in line for line in lines) == 1, lines
    assert sum("'claude-opus-4-5'" in line for line in lines) == 1, lines
    assert all("LLM_PARAMS sets temperature, top_k for model" in line for line in lines), lines


def test_the_clients_own_sampling_is_its_word_and_refused_in_anthropics_shape(argo):
    """A client under the new version that sends temperature itself (the SDK 2.x has no parameter for it, so
    extra_body) gets the upstream's 400 as it came: the proxy neither drops nor adds its words."""
    fake, p = argo
    with pytest.raises(anthropic.BadRequestError) as info:
        ant(p).messages.create(model="claude-opus-4-6", max_tokens=64, messages=MSG, extra_body={"temperature": 1})
    assert info.value.status_code == 400 and "temperature" in info.value.body["error"]["message"]
    assert sent(fake).json["temperature"] == 1


def test_nothing_the_proxy_changes_is_refused_by_the_new_version(argo):
    """Turns under the new version (a user's document with citations enabled, extended thinking the model does not
    take, the assistant's answer given back as the SDK returned it) with LLM_PARAMS appending to the last user turn:
    every change the proxy makes (alias, user, adaptation, LLM_PARAMS) is one the version takes."""
    fake, p = argo
    client = ant(p)
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Paris is big."},
                "title": "notes", "citations": {"enabled": True}}
    turn = {"role": "user", "content": [document, {"type": "text", "text": "Summarise."}]}
    first = client.messages.create(model="claude-sonnet-4-5", max_tokens=2048, messages=[turn],
                                   thinking={"type": "enabled", "budget_tokens": 1024})
    assert sent(fake).json["output_config"] == {"effort": "low"} and "thinking" not in sent(fake).json
    history = [turn, {"role": "assistant", "content": first.content},
               {"role": "user", "content": [{"type": "text", "text": "And again, shorter."}]}]
    again = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=history)
    assert again.content[-1].text == REPLY
    body = sent(fake).json
    assert body["messages"][-1]["content"][-1]["text"] == "And again, shorter.\n(be brief)"
    assert body["messages"][0]["content"][0] == document and body["messages"][1]["role"] == "assistant"
    cited = {"type": "text", "text": "Paris is big.", "citations": [
        {"type": "char_location", "cited_text": "Paris", "document_index": 0, "document_title": None,
         "start_char_index": 0, "end_char_index": 5}]}
    with pytest.raises(anthropic.BadRequestError):  # the client's own, relayed: the fake holds the version's rule
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                               messages=[{"role": "user", "content": [cited]}])
