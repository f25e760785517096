"""The chat path's split-tag guarantees hold on every front: the think transform runs on the chat chunks
before a front translates them, so a tag cut anywhere still gives the same reasoning and answer."""

from __future__ import annotations

import pytest

from argoproxy.fronts.messages import MessagesFront
from argoproxy.fronts.responses import ResponsesFront
from argoproxy.pipeline.filters import think_items
from argoproxy.pipeline.think import ThinkConfig

TEXT = "<think>weigh it</think>The answer."
BASE = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunks(pieces):
    for piece in pieces:
        yield {**BASE, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    yield {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def splits():
    for i in range(1, len(TEXT)):
        for j in range(i + 1, len(TEXT), 5):
            yield [TEXT[:i], TEXT[i:j], TEXT[j:]]


@pytest.mark.parametrize("mode", ["reasoning", "strip"])
def test_responses_front_after_the_think_transform(mode):
    front = ResponsesFront()
    for pieces in splits():
        _, ex = front.to_chat({"model": "m", "input": "x", "stream": True})
        events = list(front.stream(think_items(chunks(pieces), ThinkConfig(mode)), ex))
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        reasoning = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_text.delta")
        assert text == "The answer.", pieces
        assert reasoning == ("weigh it" if mode == "reasoning" else ""), pieces


@pytest.mark.parametrize("thinking", [True, False])
def test_messages_front_after_the_think_transform(thinking):
    front = MessagesFront()
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "stream": True}
    if thinking:
        body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    for pieces in splits():
        _, ex = front.to_chat(body)
        events = list(front.stream(think_items(chunks(pieces), ThinkConfig("reasoning")), ex))
        deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
        assert "".join(d.get("text", "") for d in deltas) == "The answer.", pieces
        assert "".join(d.get("thinking", "") for d in deltas) == ("weigh it" if thinking else ""), pieces
        assert "<" not in str(deltas)
