"""Chat chunks as the Messages stream's events, and what it holds bounded
(argoproxy/fronts/messages/stream.py)."""

from __future__ import annotations

import json

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import ARGS_LIMIT, PIECE_COST
from argoproxy.fronts.messages.answer import thinking_block
from tests.fakes.fake_upstream import interleaved_tool_calls
from tests.unit.fronts.messages.test_request import FRONT, chunk, exchange, usage_chunk


def test_stream_sequence_with_thinking_text_and_tool_use():
    ex = exchange(thinking={"type": "adaptive"})
    ex.input_tokens = 42
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"reasoning_content": "let"}),
              chunk({"reasoning_content": " me"}), chunk({"content": "Hi"}), chunk({"content": "!"}),
              chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
              chunk(finish="tool_calls"), usage_chunk()]
    events = list(FRONT.stream(iter(chunks), ex))
    assert [(e["type"], e.get("index"), (e.get("delta") or e.get("content_block") or {}).get("type"))
            for e in events] == [
        ("message_start", None, None), ("ping", None, None),
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"), ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None), ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"), ("content_block_stop", 2, None),
        ("message_delta", None, None), ("message_stop", None, None)]
    start = events[0]["message"]
    assert (start["usage"]["input_tokens"], start["usage"]["output_tokens"]) == (42, 0) and start["stop_reason"] is None
    assert start["content"] == [] and start["model"] == "claude-x"
    assert events[2]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[11]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {},
                                           "caller": {"type": "direct"}}
    assert "".join(e["delta"]["partial_json"] for e in events[12:14]) == "{\"a\":1}"
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None, "stop_details": None,
                                   "container": None}
    assert events[-2]["usage"]["output_tokens"] == 6 and events[-2]["usage"]["input_tokens"] == 16
    signed = thinking_block("let me")  # the signature is the whole answer's, though the text came in pieces
    assert events[5]["delta"] == {"type": "signature_delta", "signature": signed["signature"]}
    assert signed["signature"] and signed["signature"] != thinking_block("let me!")["signature"]
    assert ex.output["content"] == [signed, {"type": "text", "text": "Hi!", "citations": None},
                                    {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1},
                                     "caller": {"type": "direct"}}]


def test_blocks_pair_and_indexes_are_dense():
    chunks = [chunk({"content": "a"}),
              chunk({"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "f", "arguments": "{}"}},
                                    {"index": 1, "id": "c1", "function": {"name": "g", "arguments": "{}"}}]}),
              chunk(finish="tool_calls")]
    events = list(FRONT.stream(iter(chunks), exchange()))
    starts = [e["index"] for e in events if e["type"] == "content_block_start"]
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert starts == stops == [0, 1, 2]
    opened = None
    for e in events:  # every delta belongs to the one open block
        if e["type"] == "content_block_start":
            assert opened is None
            opened = e["index"]
        elif e["type"] == "content_block_delta":
            assert e["index"] == opened
        elif e["type"] == "content_block_stop":
            assert e["index"] == opened
            opened = None


def test_reasoning_stripped_in_stream_without_thinking_and_empty_answer_has_a_block():
    events = list(FRONT.stream(iter([chunk({"reasoning_content": "secret"}), chunk(finish="stop")]), exchange()))
    assert "secret" not in json.dumps(events)
    assert [e["type"] for e in events] == ["message_start", "ping", "content_block_start", "content_block_stop",
                                           "message_delta", "message_stop"]


def test_error_mid_stream_is_an_error_event():
    def chunks():
        yield chunk({"content": "x"})
        raise ProxyError(504, "The upstream server did not answer in time.")

    ex = exchange()
    events = list(FRONT.stream(chunks(), ex))
    assert events[-1] == {"type": "error", "error": {"type": "timeout_error",
                                                     "message": "The upstream server did not answer in time."},
                          "request_id": None}
    assert ex.error.status == 504


def test_a_long_streamed_answer_is_translated_in_linear_time():
    # `text += piece` on the block copied the answer so far per chunk: 100,000 chunks took 13 s.
    import time
    from argoproxy.fronts import front_named
    from argoproxy.fronts.front import Exchange
    chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"reasoning_content": "r" * 20} if i < 50_000 else
                            {"content": "a" * 20}, "finish_reason": None}]} for i in range(100_000)]
    ex = Exchange(model="m", stream=True, request={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    started = time.process_time()  # CPU, not wall time: the machine may be busy with other work
    events = list(front_named("messages").stream(iter(chunks), ex))
    assert time.process_time() - started < 3.0
    assert [b["type"] for b in ex.output["content"]] == ["thinking", "text"]
    assert ex.output["content"][1]["text"] == "a" * 1_000_000 and len(ex.output["content"][0]["thinking"]) == 1_000_000
    assert sum(1 for e in events if e["type"] == "content_block_delta") == 100_001  # and one signature_delta


def test_text_and_arguments_past_the_kept_budget_only_pass_through():
    """No Messages event repeats what was streamed: past ex.keep (what a journal records whole) nothing more
    is kept, and every delta still goes out."""
    ex = exchange()
    ex.keep = 5 + PIECE_COST  # each kept piece counts PIECE_COST more than its characters
    call = {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a":'}}
    chunks = [chunk({"role": "assistant", "content": "abc"}), chunk({"content": "defgh"}),
              chunk({"tool_calls": [call]}), chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
              chunk(finish="tool_calls")]
    events = list(FRONT.stream(iter(chunks), ex))
    deltas = [e["delta"].get("text") or e["delta"].get("partial_json") for e in events
              if e["type"] == "content_block_delta"]
    assert deltas == ["abc", "defgh", '{"a":', "1}"]
    assert ex.output["content"][0]["text"] == "abc"  # the budget ran out at "defgh"
    assert events[-1]["type"] == "message_stop"


def test_interleaved_parallel_calls_come_out_one_whole_block_each():
    ex = exchange()
    events = list(FRONT.stream(iter([chunk({"content": "Let me look."})] + interleaved_tool_calls()), ex))
    starts = [(e["index"], e["content_block"]) for e in events if e["type"] == "content_block_start"]
    assert [(i, b["type"], b.get("name")) for i, b in starts] == [(0, "text", None), (1, "tool_use", "f0"),
                                                                  (2, "tool_use", "f1")]
    args: dict[int, str] = {}
    open_block = None
    for e in events:  # one block at a time, as the Messages format has it
        if e["type"] == "content_block_start":
            assert open_block is None
            open_block = e["index"]
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_block
            args[e["index"]] = args.get(e["index"], "") + e["delta"].get("partial_json", "")
        elif e["type"] == "content_block_stop":
            open_block = None
    assert json.loads(args[1]) == {"a": 1} and json.loads(args[2]) == {"b": 2}
    assert [b["input"] for b in ex.output["content"][1:]] == [{"a": 1}, {"b": 2}]
    assert ex.output["stop_reason"] == "tool_use"


def test_a_call_that_waits_is_bounded_and_text_after_it_does_not_overtake_it():
    head = [chunk({"tool_calls": [{"index": i, "id": f"c{i}", "function": {"name": f"f{i}", "arguments": ""}}]})
            for i in (0, 1)]
    piece = "x" * (1 << 20)
    huge = [chunk({"tool_calls": [{"index": 1, "function": {"arguments": piece}}]})] * (ARGS_LIMIT // len(piece) + 1)
    ex = exchange()
    events = list(FRONT.stream(iter(head + huge + [chunk(finish="tool_calls")]), ex))
    assert events[-1]["type"] == "error" and "arguments held back exceed" in events[-1]["error"]["message"]
    assert ex.error is not None and ex.error.code == "upstream_answer_too_large"
    after = head + [chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}), chunk({"content": "done"}),
                    chunk(finish="stop")]
    starts = [e["content_block"]["type"] for e in FRONT.stream(iter(after), exchange())
              if e["type"] == "content_block_start"]
    assert starts == ["tool_use", "tool_use", "text"]
