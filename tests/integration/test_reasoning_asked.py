"""Reasoning asked for on the Messages and Google doors reaches a chat upstream, through the real app under
Gunicorn in front of the fake OpenAI upstream, with the official SDKs as clients: Messages `thinking` and Google
`thinkingConfig` become the reasoning_effort the upstream receives, by docs/client-apis.md's table (a budget below
4,096 tokens low, below 16,384 medium, else high; adaptive or dynamic medium; disabled or 0 none); a model the
capabilities table marks as not reasoning (gpt-4o, which OpenAI's API refuses it for) gets none and answers."""

from __future__ import annotations

import pytest
from google.genai import types

from tests.clients import anthropic_sdk, google_sdk
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.proxy_process import running_proxy

MSG = [{"role": "user", "content": "Say hello"}]
REASONING = "The user wants a greeting."


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(fake):
    with running_proxy(TARGET_BASE_URL=fake.base_url) as p:
        yield p


def sent(fake: FakeOpenAI) -> list[dict]:
    """The chat requests the upstream received (then forgotten, for the next case)."""
    bodies = [r.json() for r in fake.received if r.path.endswith("/chat/completions")]
    fake.reset()
    return bodies


@pytest.mark.parametrize("thinking, effort", [
    ({"type": "enabled", "budget_tokens": 1024}, "low"),
    ({"type": "enabled", "budget_tokens": 4095}, "low"),
    ({"type": "enabled", "budget_tokens": 4096}, "medium"),
    ({"type": "enabled", "budget_tokens": 16383}, "medium"),
    ({"type": "enabled", "budget_tokens": 16384}, "high"),
    ({"type": "adaptive"}, "medium"),
    ({"type": "disabled"}, "none"),
])
def test_messages_thinking_becomes_reasoning_effort(fake, proxy, thinking, effort):
    fake.reset()
    message = anthropic_sdk(proxy).messages.create(model="m", max_tokens=20000, messages=MSG, thinking=thinking)
    assert message.content[-1].text
    assert [b["reasoning_effort"] for b in sent(fake)] == [effort]


def test_messages_effort_with_adaptive_thinking_says_how_much(fake, proxy):
    """Claude Code's turn: adaptive thinking with output_config.effort."""
    fake.reset()
    anthropic_sdk(proxy).messages.create(model="m", max_tokens=100, messages=MSG, thinking={"type": "adaptive"},
                                         extra_body={"output_config": {"effort": "low"}})
    assert [b["reasoning_effort"] for b in sent(fake)] == ["low"]


def test_messages_without_thinking_asks_no_reasoning(fake, proxy):
    fake.reset()
    anthropic_sdk(proxy).messages.create(model="m", max_tokens=100, messages=MSG)
    assert ["reasoning_effort" in b for b in sent(fake)] == [False]


@pytest.mark.parametrize("thinking", [{"type": "enabled", "budget_tokens": 2048}, {"type": "adaptive"},
                                      {"type": "disabled"}])
def test_messages_thinking_to_a_model_that_does_not_reason(fake, proxy, thinking):
    """gpt-4o: OpenAI refuses reasoning_effort (the fake does too); it is not sent, once, and the turn answers."""
    fake.reset()
    message = anthropic_sdk(proxy).messages.create(model="gpt-4o", max_tokens=100, messages=MSG, thinking=thinking)
    assert message.content[-1].text
    assert ["reasoning_effort" in b for b in sent(fake)] == [False]


def test_messages_returned_reasoning_is_a_thinking_block_with_its_tokens(fake, proxy):
    fake.reset()
    fake.add(Reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                    "usage": {"prompt_tokens": 5, "completion_tokens": 20, "total_tokens": 25,
                              "completion_tokens_details": {"reasoning_tokens": 12}},
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": "Hello!", "reasoning_content": REASONING}}]}))
    message = anthropic_sdk(proxy).messages.create(model="m", max_tokens=8000, messages=MSG,
                                                   thinking={"type": "enabled", "budget_tokens": 2000})
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == REASONING
    assert message.model_dump()["usage"]["output_tokens_details"]["thinking_tokens"] == 12
    assert [b["reasoning_effort"] for b in sent(fake)] == ["low"]


@pytest.mark.parametrize("config, effort", [
    (types.ThinkingConfig(thinking_budget=1024), "low"),
    (types.ThinkingConfig(thinking_budget=4096), "medium"),
    (types.ThinkingConfig(thinking_budget=16384), "high"),
    (types.ThinkingConfig(thinking_budget=-1, include_thoughts=True), "medium"),
    (types.ThinkingConfig(thinking_budget=0), "none"),
    (types.ThinkingConfig(thinking_level=types.ThinkingLevel.HIGH), "high"),
])
def test_google_thinking_config_becomes_reasoning_effort(fake, proxy, config, effort):
    fake.reset()
    client = google_sdk(proxy)  # kept: collected, it closes its HTTP client
    answer = client.models.generate_content(model="m", contents="Say hello",
                                            config=types.GenerateContentConfig(thinking_config=config))
    assert answer.text
    assert [b["reasoning_effort"] for b in sent(fake)] == [effort]


def test_google_thinking_budget_to_a_model_that_does_not_reason(fake, proxy):
    fake.reset()
    client = google_sdk(proxy)
    answer = client.models.generate_content(
        model="gpt-4o", contents="Say hello",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=8000)))
    assert answer.text
    assert ["reasoning_effort" in b for b in sent(fake)] == [False]


def test_google_thinking_budget_below_dynamic_is_refused(fake, proxy):
    fake.reset()
    client = google_sdk(proxy)
    with pytest.raises(Exception) as caught:
        client.models.generate_content(
            model="m", contents="Say hello",
            config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=-2)))
    assert getattr(caught.value, "code", None) == 400 and "thinkingBudget" in str(caught.value)
    assert sent(fake) == []


def test_google_returned_reasoning_is_a_thought_part_with_its_tokens(fake, proxy):
    fake.reset()
    fake.add(Reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                    "usage": {"prompt_tokens": 5, "completion_tokens": 20, "total_tokens": 25,
                              "completion_tokens_details": {"reasoning_tokens": 12}},
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": "Hello!", "reasoning_content": REASONING}}]}))
    client = google_sdk(proxy)
    config = types.ThinkingConfig(thinking_budget=20000, include_thoughts=True)
    answer = client.models.generate_content(model="m", contents="Say hello",
                                            config=types.GenerateContentConfig(thinking_config=config))
    parts = answer.candidates[0].content.parts
    assert [(p.thought, p.text) for p in parts] == [(True, REASONING), (None, "Hello!")]
    assert answer.usage_metadata.thoughts_token_count == 12
    assert [b["reasoning_effort"] for b in sent(fake)] == ["high"]


def test_messages_streamed_thinking_becomes_reasoning_effort(fake, proxy):
    """Claude Code streams every turn."""
    fake.reset()
    with anthropic_sdk(proxy).messages.stream(model="m", max_tokens=10000, messages=MSG,
                                              thinking={"type": "enabled", "budget_tokens": 8000}) as stream:
        message = stream.get_final_message()
    assert message.content[-1].text
    assert [(b["reasoning_effort"], b["stream"]) for b in sent(fake)] == [("medium", True)]
