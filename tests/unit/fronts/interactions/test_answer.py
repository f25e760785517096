"""The internal answer -> an Interaction and the Interactions stream's events (argoproxy/fronts/interactions/
answer.py), from what a capable model answers (reasoning, text, two tool calls, usage with cached and reasoning
tokens)."""

from __future__ import annotations

import json

from argoproxy.errors import ProxyError
from argoproxy.fronts.interactions.answer import InteractionsExchange, InteractionsStream, chat_to_interaction
from tests.fakes import capable_model as capable


def exchange(**request) -> InteractionsExchange:
    return InteractionsExchange(model="m", stream=False, request={"model": "m", "input": "x", **request},
                                interaction_id="v1_1")


def test_a_whole_answer_has_its_thought_its_output_and_its_calls():
    out = chat_to_interaction(capable.whole(), exchange(system_instruction="Be brief."))
    assert (out["id"], out["object"], out["model"], out["status"]) == ("v1_1", "interaction", "m", "requires_action")
    assert out["system_instruction"] == "Be brief." and out["created"].endswith("Z")
    assert [s["type"] for s in out["steps"]] == ["thought", "model_output", "function_call", "function_call"]
    assert out["steps"][0]["summary"] == [{"type": "text", "text": capable.REASONING}]
    assert out["steps"][1]["content"] == [{"type": "text", "text": capable.TEXT}]
    assert out["steps"][2] == {"type": "function_call", "id": "call_paris", "name": "get_weather",
                               "arguments": {"city": "Paris"}}
    assert out["usage"] == {"total_input_tokens": 120, "total_output_tokens": 28, "total_thought_tokens": 20,
                            "total_cached_tokens": 64, "total_tokens": 168}


def test_thoughts_are_left_out_when_their_summaries_are_not_asked_and_a_limit_is_incomplete():
    ex = exchange(generation_config={"thinking_summaries": "none"})
    ex.thinking = False
    out = chat_to_interaction(capable.whole(calls=False, finish="length"), ex)
    assert [s["type"] for s in out["steps"]] == ["model_output"] and out["status"] == "incomplete"


def test_a_stream_opens_and_stops_each_step_and_ends_with_the_interaction():
    events = list(InteractionsStream(exchange()).run(c for c in capable.chunks() if isinstance(c, dict)))
    kinds = [e["event_type"] for e in events]
    assert kinds[0] == "interaction.created" and kinds[-1] == "interaction.completed"
    assert [e["event_id"] for e in events] == [str(n) for n in range(len(events))]  # a follower resumes after one
    starts = [e["step"] for e in events if e["event_type"] == "step.start"]
    assert [s["type"] for s in starts] == ["thought", "model_output", "function_call", "function_call"]
    assert starts[2]["arguments"] == {"city": "Paris"}  # a call comes whole
    assert kinds.count("step.stop") == 4
    texts = "".join(e["delta"]["text"] for e in events if e.get("delta", {}).get("type") == "text")
    thoughts = "".join(e["delta"]["content"]["text"] for e in events
                       if e.get("delta", {}).get("type") == "thought_summary")
    assert (texts, thoughts) == (capable.TEXT, capable.REASONING)
    final = events[-1]["interaction"]
    assert final["status"] == "requires_action" and final["usage"]["total_thought_tokens"] == 20
    assert [s["type"] for s in final["steps"]] == ["thought", "model_output", "function_call", "function_call"]
    assert events[0]["interaction"]["status"] == "in_progress" and "steps" not in events[0]["interaction"]


def test_a_stream_cut_short_ends_with_an_error_event():
    def cut():
        yield capable.chunks(calls=False, reasoning=False)[1]
        raise ProxyError(502, "The upstream went away.", code="upstream_error")
    events = list(InteractionsStream(exchange()).run(cut()))
    assert [e["event_type"] for e in events][-2:] == ["step.stop", "error"]
    assert events[-1]["error"] == {"code": "unavailable", "message": "The upstream went away."}
    json.dumps(events)  # all of it JSON
