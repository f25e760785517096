"""Reasoning asked for reaches a local server's chat template: in front of a server that says it is llama.cpp's
(GET /props) or vLLM (GET /version), a chat request with a reasoning_effort also carries
`chat_template_kwargs.enable_thinking` (false for "none", true otherwise), under the client's own keys; OpenAI's
API (it says neither) gets no such field. The real app under Gunicorn, fake upstreams on loopback, the official
Anthropic and OpenAI SDKs as clients."""

from __future__ import annotations

import pytest

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import running_proxy

MSG = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module", params=["llama.cpp", None])
def served(request):
    """(what the upstream says it is, the fake, the proxy in front of it): llama.cpp's server, or OpenAI's API
    (vLLM takes the switch as llama.cpp does: tests/unit/providers/openai/test_template_switch.py)."""
    with FakeOpenAI(says=request.param) as fake, running_proxy(TARGET_BASE_URL=fake.base_url) as proxy:
        yield request.param, fake, proxy


def sent(fake: FakeOpenAI) -> list[dict]:
    bodies = [r.json() for r in fake.received if r.path.endswith("/chat/completions")]
    fake.reset()
    return bodies


@pytest.mark.parametrize("thinking, on", [
    ({"type": "enabled", "budget_tokens": 2048}, True),
    ({"type": "adaptive"}, True),
    ({"type": "disabled"}, False),
])
def test_messages_thinking_switches_the_template(served, thinking, on):
    server, fake, proxy = served
    fake.reset()
    message = anthropic_sdk(proxy).messages.create(model="qwen3", max_tokens=100, messages=MSG, thinking=thinking)
    assert message.content[-1].text
    body, = sent(fake)
    assert (body["reasoning_effort"] == "none") is not on
    if server is None:
        assert "chat_template_kwargs" not in body, body  # OpenAI's API refuses members it does not know
    else:
        assert body["chat_template_kwargs"] == {"enable_thinking": on}, body


def test_no_thinking_asked_leaves_the_template_alone(served):
    _, fake, proxy = served
    fake.reset()
    anthropic_sdk(proxy).messages.create(model="qwen3", max_tokens=100, messages=MSG)
    body, = sent(fake)
    assert "chat_template_kwargs" not in body and "reasoning_effort" not in body, body


def test_a_model_that_does_not_reason_gets_no_switch(served):
    """gpt-4o (the capabilities table: no reasoning): the effort is dropped, and so is the switch."""
    _, fake, proxy = served
    fake.reset()
    anthropic_sdk(proxy).messages.create(model="gpt-4o", max_tokens=100, messages=MSG, thinking={"type": "disabled"})
    body, = sent(fake)
    assert "chat_template_kwargs" not in body and "reasoning_effort" not in body, body


@pytest.mark.parametrize("own, expected", [
    ({"custom": 1}, {"enable_thinking": True, "custom": 1}),
    ({"enable_thinking": False, "custom": 1}, {"enable_thinking": False, "custom": 1}),  # the client's key wins
])
def test_a_chat_clients_own_kwargs_win(served, own, expected):
    server, fake, proxy = served
    fake.reset()
    openai_sdk(proxy).chat.completions.create(model="qwen3", messages=MSG, reasoning_effort="high",
                                              extra_body={"chat_template_kwargs": own})
    body, = sent(fake)
    assert body["chat_template_kwargs"] == (own if server is None else expected), body
    assert body["reasoning_effort"] == "high"
