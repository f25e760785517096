"""Reasoning tokens in every door's usage, whole and streamed: the upstream's completion_tokens_details.
reasoning_tokens as the door's own field (Responses output_tokens_details.reasoning_tokens, Messages
output_tokens_details.thinking_tokens, Google thoughtsTokenCount), and counted from the reasoning's text where
the upstream's usage leaves them out (llama.cpp, vLLM), whether or not the client sees the reasoning."""

from __future__ import annotations

import json

import pytest

from argoproxy.fronts import DoorArgs, front_named

BASE = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
REASONING = "Let me weigh the three options one by one before I answer the question."
REQUESTS = {  # each door's request, asking for reasoning where its API has a switch
    "responses": {"model": "m", "input": "x", "reasoning": {"summary": "auto"}},
    "messages": {"model": "m", "max_tokens": 99, "messages": [{"role": "user", "content": "x"}],
                 "thinking": {"type": "adaptive"}},
    "google": {"contents": [{"role": "user", "parts": [{"text": "x"}]}],
               "generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
}


def reasoning_tokens(door: str, answer: dict) -> int | None:
    """The door's reasoning-token count in its answer (a whole answer, or a stream's last usage)."""
    if door == "responses":
        return answer["usage"]["output_tokens_details"]["reasoning_tokens"]
    if door == "messages":
        return (answer["usage"].get("output_tokens_details") or {}).get("thinking_tokens")
    return answer["usageMetadata"].get("thoughtsTokenCount")


def exchange(door: str, stream: bool, asked: bool = True):
    body = dict(REQUESTS[door])
    if not asked:
        body.pop("reasoning" if door == "responses" else "thinking" if door == "messages" else "generationConfig")
    if door != "google":
        body["stream"] = stream
    return front_named(door).to_chat(body, args=DoorArgs(model="m", stream=stream))[1]


def usage(details: bool) -> dict:
    out = {"prompt_tokens": 5, "completion_tokens": 40, "total_tokens": 45}
    if details:
        out["completion_tokens_details"] = {"reasoning_tokens": 30}
    return out


def whole(door: str, details: bool, asked: bool = True) -> dict:
    completion = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "usage": usage(details),
                  "choices": [{"index": 0, "finish_reason": "stop", "message": {
                      "role": "assistant", "content": "B.", "reasoning_content": REASONING}}]}
    return front_named(door).from_chat(completion, exchange(door, False, asked))


def streamed(door: str, details: bool, asked: bool = True) -> dict:
    chunks = [{**BASE, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
              for d in ({"reasoning": REASONING[:20]}, {"reasoning": REASONING[20:]}, {"content": "B."})]
    chunks += [{**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
               {**BASE, "choices": [], "usage": usage(details)}]
    ex = exchange(door, True, asked)
    events = list(front_named(door).stream(iter(chunks), ex))
    if door == "google":
        return json.loads(front_named(door).encode_event(events[-1]).split(b"data: ", 1)[1])
    if door == "messages":
        return next(e for e in reversed(events) if e["type"] == "message_delta")
    return events[-1]["response"]


@pytest.mark.parametrize("door", sorted(REQUESTS))
@pytest.mark.parametrize("answer", [whole, streamed])
def test_the_upstreams_reasoning_tokens_in_the_doors_field(door, answer):
    assert reasoning_tokens(door, answer(door, details=True)) == 30


@pytest.mark.parametrize("door", sorted(REQUESTS))
@pytest.mark.parametrize("answer", [whole, streamed])
@pytest.mark.parametrize("asked", [True, False])
def test_reasoning_tokens_counted_when_the_upstream_leaves_them_out(door, answer, asked):
    counted = reasoning_tokens(door, answer(door, details=False, asked=asked))
    assert counted is not None and 10 <= counted <= 20  # about 15 tokens of text; never above the completion's 40
