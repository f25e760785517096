"""Chat chunks as the Responses stream's events, what it keeps bounded, and the events it writes itself
(argoproxy/fronts/responses/stream.py)."""

from __future__ import annotations

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import COMPACT, Pieces
from argoproxy.fronts.responses.answer import chat_to_response
from argoproxy.fronts.responses.stream import ResponseStream
from tests.fakes.fake_upstream import interleaved_tool_calls
from tests.unit.fronts.responses.test_request import BASE, FRONT, USAGE, chunk, exchange


def shape(events):
    """Event types with the indexes that must line up."""
    out = []
    for e in events:
        keys = {k: e[k] for k in ("output_index", "content_index") if k in e}
        out.append((e["type"], keys.get("output_index"), keys.get("content_index")))
    return out


def test_text_stream_event_sequence_exactly():
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
              chunk(finish="stop"), chunk(usage=USAGE)]
    ex = exchange()
    events = list(FRONT.stream(iter(chunks), ex))
    assert shape(events) == [
        ("response.created", None, None), ("response.in_progress", None, None),
        ("response.output_item.added", 0, None), ("response.content_part.added", 0, 0),
        ("response.output_text.delta", 0, 0), ("response.output_text.delta", 0, 0),
        ("response.output_text.done", 0, 0), ("response.content_part.done", 0, 0),
        ("response.output_item.done", 0, None), ("response.completed", None, None)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    item_id = events[2]["item"]["id"]
    assert all(e["item_id"] == item_id for e in events[3:8])
    assert [e["delta"] for e in events[4:6]] == ["Hel", "lo"]
    assert events[6]["text"] == "Hello" and events[7]["part"]["text"] == "Hello"
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["id"] == events[0]["response"]["id"]
    assert final["output"] == [events[8]["item"]] and final["usage"]["output_tokens"] == 5
    assert ex.output is final and ex.usage == USAGE


def test_reasoning_then_text_then_two_calls():
    chunks = [chunk({"role": "assistant", "reasoning_content": "hmm"}), chunk({"reasoning_content": " ok"}),
              chunk({"content": "Calling."}),
              chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                     "function": {"name": "f", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":"}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
              chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                     "function": {"name": "g", "arguments": "{}"}}]}),
              chunk(finish="tool_calls")]
    events = list(FRONT.stream(iter(chunks), exchange()))
    assert shape(events) == [
        ("response.created", None, None), ("response.in_progress", None, None),
        ("response.output_item.added", 0, None), ("response.content_part.added", 0, 0),
        ("response.reasoning_text.delta", 0, 0), ("response.reasoning_text.delta", 0, 0),
        ("response.reasoning_text.done", 0, 0), ("response.content_part.done", 0, 0),
        ("response.output_item.done", 0, None),
        ("response.output_item.added", 1, None), ("response.content_part.added", 1, 0),
        ("response.output_text.delta", 1, 0), ("response.output_text.done", 1, 0),
        ("response.content_part.done", 1, 0), ("response.output_item.done", 1, None),
        ("response.output_item.added", 2, None), ("response.function_call_arguments.delta", 2, None),
        ("response.function_call_arguments.delta", 2, None), ("response.function_call_arguments.done", 2, None),
        ("response.output_item.done", 2, None),
        ("response.output_item.added", 3, None), ("response.function_call_arguments.delta", 3, None),
        ("response.function_call_arguments.done", 3, None), ("response.output_item.done", 3, None),
        ("response.completed", None, None)]
    assert events[3]["part"] == {"type": "reasoning_text", "text": ""}
    assert events[6]["text"] == "hmm ok"
    assert events[15]["item"] == {"type": "function_call", "id": events[15]["item"]["id"], "call_id": "call_a",
                                  "name": "f", "arguments": "", "status": "in_progress"}
    assert events[18]["arguments"] == "{\"x\":1}" and events[18]["name"] == "f"
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][3]["call_id"] == "call_b" and final["output"][3]["arguments"] == "{}"


def test_reasoning_as_the_summary_when_asked():
    """reasoning.summary set: the reasoning is the item's summary (summary_text), streamed with the summary events
    the SDK's schema names, not as reasoning_text content."""
    chunks = [chunk({"role": "assistant", "reasoning": "hmm"}), chunk({"reasoning": " ok"}), chunk({"content": "Hi"}),
              chunk(finish="stop"), chunk(usage=USAGE)]
    ex = exchange(reasoning={"effort": "low", "summary": "auto"})
    assert ex.asks_reasoning
    events = list(FRONT.stream(iter(chunks), ex))
    assert [(e["type"], e.get("output_index"), e.get("summary_index")) for e in events[2:9]] == [
        ("response.output_item.added", 0, None), ("response.reasoning_summary_part.added", 0, 0),
        ("response.reasoning_summary_text.delta", 0, 0), ("response.reasoning_summary_text.delta", 0, 0),
        ("response.reasoning_summary_text.done", 0, 0), ("response.reasoning_summary_part.done", 0, 0),
        ("response.output_item.done", 0, None)]
    assert events[2]["item"] == {"type": "reasoning", "id": events[2]["item"]["id"], "summary": [],
                                 "status": "in_progress"}
    assert events[3]["part"] == {"type": "summary_text", "text": ""} and events[6]["text"] == "hmm ok"
    assert events[7]["part"] == {"type": "summary_text", "text": "hmm ok"} and "status" not in events[7]
    done = {"type": "reasoning", "id": events[2]["item"]["id"], "summary": [{"type": "summary_text", "text": "hmm ok"}],
            "status": "completed"}
    final = events[-1]["response"]
    assert events[8]["item"] == done and final["output"][0] == done
    assert final["reasoning"] == {"effort": "low", "summary": "auto"}
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}
    answer = {"role": "assistant", "content": "Hi", "reasoning_content": "hmm ok"}
    whole = FRONT.from_chat({"choices": [{"index": 0, "finish_reason": "stop", "message": answer}]},
                            exchange(reasoning={"summary": "detailed"}))
    assert whole["output"][0]["summary"] == [{"type": "summary_text", "text": "hmm ok"}]
    assert "content" not in whole["output"][0] and whole["reasoning"]["summary"] == "detailed"
    assert not exchange(reasoning={"effort": "high"}).asks_reasoning


def test_reasoning_hidden_when_not_wanted():
    ex = exchange()
    ex.thinking = False
    events = list(FRONT.stream(iter([chunk({"reasoning_content": "secret"}), chunk({"content": "hi"}),
                                      chunk(finish="stop")]), ex))
    assert "secret" not in str(events)


def test_length_stream_ends_incomplete_and_empty_stream_has_a_message():
    events = list(FRONT.stream(iter([chunk(finish="length")]), exchange()))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"  # the item cut short, as OpenAI marks it
    whole = FRONT.from_chat({"choices": [{"index": 0, "finish_reason": "length",
                                          "message": {"role": "assistant", "content": "cut"}}]}, exchange())
    assert whole["output"][0]["status"] == "incomplete"
    cut_call = FRONT.from_chat({"choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "x", "tool_calls": [{"id": "c", "type": "function",
                                                             "function": {"name": "f", "arguments": '{"a":'}}]}}]},
        exchange())
    assert [item["status"] for item in cut_call["output"]] == ["completed", "incomplete"]
    done = list(FRONT.stream(iter([chunk({"content": "x"}), chunk(finish="stop")]), exchange()))
    assert [e["item"]["status"] for e in done if e["type"] == "response.output_item.done"] == ["completed"]


def test_an_error_mid_stream_ends_with_response_failed():
    def chunks():
        yield chunk({"content": "par"})
        raise ProxyError(502, "The upstream server closed the stream.", code="upstream_stream_incomplete")

    ex = exchange()
    events = list(FRONT.stream(chunks(), ex))
    types = [e["type"] for e in events]
    assert types[-5:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "error", "response.failed"]
    assert events[-2]["code"] == "upstream_stream_incomplete" and "closed" in events[-2]["message"]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-3]["item"]["status"] == "incomplete" and events[-1]["response"]["output"][0]["status"] == "incomplete"
    # the response object says server_error (a code the API lists), the error event the precise one
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert ex.error is not None and ex.error.status == 502
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_an_event_repeating_a_long_text_is_written_in_slices_with_the_same_bytes() -> None:
    from argoproxy.fronts import long_strings
    text = "é\"\n" * (long_strings.SLICE // 2) + "tail"
    event = {"type": "response.output_text.done", "text": text, "part": {"text": text}, "small": "x"}
    pieces = list(FRONT.encode_pieces(event))
    assert b"".join(pieces) == FRONT.encode_event(event)
    assert max(len(p) for p in pieces) < 3 * long_strings.SLICE  # never the whole text in one piece
    # a client's string that spells a marker's shape is just text
    tricky = {"type": "x", "text": "\x00cot-proxy-long-0\x00", "long": "a" * (long_strings.SLICE + 1)}
    assert b"".join(FRONT.encode_pieces(tricky)) == FRONT.encode_event(tricky)


def test_output_past_the_kept_budget_ends_the_stream_as_incomplete() -> None:
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    ex.keep = 10
    events = list(FRONT.stream(iter([chunk({"content": "abcdef"}), chunk({"content": "ghijkl"}),
                                     chunk({"content": "never read"})]), ex))
    final = events[-1]
    assert final["type"] == "response.incomplete" and final["response"]["incomplete_details"] == {
        "reason": "max_output_tokens"}
    assert final["response"]["output"][0]["content"][0]["text"] == "abcdef"  # exactly what the deltas sent
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["abcdef"]
    assert ex.cut


def test_tool_arguments_past_the_kept_budget_fail_the_stream_naming_the_setting() -> None:
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    ex.keep = 10
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": "'}}
    more = {"index": 0, "function": {"arguments": "x" * 20}}
    events = list(FRONT.stream(iter([chunk({"tool_calls": [call]}), chunk({"tool_calls": [more]})]), ex))
    assert events[-1]["type"] == "response.failed" and "MAX_SSE_EVENT_BYTES" in events[-2]["message"]
    assert events[-1]["response"]["output"] == []  # the cut call is not repeated in part


def test_an_encoder_that_does_not_write_json_strings_gets_the_event_whole() -> None:
    from argoproxy.fronts import long_strings
    from argoproxy.fronts.front import Front

    class Plain(Front):
        def encode_event(self, event):
            return str(sorted(event.items())).encode()  # no JSON: the markers are not where the slices go

    event = {"type": "x", "text": "b" * (long_strings.SLICE + 5)}
    assert list(Plain().encode_pieces(event)) == [Plain().encode_event(event)]


def test_interleaved_parallel_calls_come_out_one_whole_item_each():
    events = list(FRONT.stream(iter(interleaved_tool_calls()), exchange()))
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [(d["name"], d["call_id"], d["arguments"]) for d in done] == [("f0", "call_0", '{"a": 1}'),
                                                                         ("f1", "call_1", '{"b": 2}')]
    streamed: dict[int, str] = {}
    for e in events:
        if e["type"] == "response.function_call_arguments.delta":
            streamed[e["output_index"]] = streamed.get(e["output_index"], "") + e["delta"]
        if e["type"] == "response.function_call_arguments.done":
            assert streamed[e["output_index"]] == e["arguments"]
    assert streamed == {0: '{"a": 1}', 1: '{"b": 2}'}
    assert [o["arguments"] for o in events[-1]["response"]["output"]] == ['{"a": 1}', '{"b": 2}']
    added = [i for i, e in enumerate(events) if e["type"] == "response.output_item.added"]
    closed = [i for i, e in enumerate(events) if e["type"] == "response.output_item.done"]
    assert added[1] > closed[0]  # one item at a time


def test_kept_pieces_are_joined_as_they_grow_and_count_only_their_characters() -> None:
    """The text a Responses stream repeats in its closing events is kept joined every COMPACT pieces (a string
    per tiny delta cost 25 times its text), and MAX_SSE_EVENT_BYTES counts its characters only: one-token
    deltas are not cut at a ninth of the limit."""
    pieces = Pieces()
    for i in range(COMPACT * 3 + 5):
        pieces.append("ab")
    assert len(pieces) == 3 + 5 and "".join(pieces) == "ab" * (COMPACT * 3 + 5)
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    ex.keep = 4 * 20_000
    events = list(FRONT.stream(iter([chunk({"content": "abc "}) for _ in range(20_000)]), ex))
    assert events[-1]["type"] == "response.completed" and not ex.cut
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "abc " * 20_000


def test_fragments_of_a_call_that_waits_are_joined_as_they_grow() -> None:
    """An interleaved call waits whole behind the open one: its fragments are joined as they come (two-byte
    fragments up to ARGS_LIMIT were 4 million strings, 250 MB)."""
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    state = ResponseStream(ex)
    state.tool_call(0, {"index": 0, "id": "c0", "function": {"name": "f", "arguments": "{"}})
    for i in range(COMPACT * 4):
        state.tool_call(1, {"index": 1, "function": {"arguments": "ab"}})
    pieces = state.waiting[1][2]
    assert len(pieces) <= COMPACT and "".join(pieces) == "ab" * COMPACT * 4


def test_late_fragments_of_a_finished_call_reach_the_final_response_whole() -> None:
    """A call closed by what came next (text) gets more fragments: the final response has its whole arguments,
    joined once at the end (joined per fragment before: quadratic in a hostile upstream's fragments)."""
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    first = {"index": 0, "id": "c0", "type": "function", "function": {"name": "f", "arguments": '{"a": "'}}
    late = [chunk({"tool_calls": [{"index": 0, "function": {"arguments": "x"}}]}) for _ in range(20_000)]
    events = list(FRONT.stream(iter([chunk({"tool_calls": [first]}), chunk({"content": "and text"}), *late,
                                     chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"}'}}]}),
                                     chunk(finish="tool_calls")]), ex))
    call = next(item for item in events[-1]["response"]["output"] if item["type"] == "function_call")
    assert call["arguments"] == '{"a": "' + "x" * 20_000 + '"}'


LOGPROB = {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.1,
                                                                                   "bytes": [72, 105]}]}


def test_token_logprobs_are_asked_for_and_come_back_whole_or_with_each_delta():
    chat, ex = FRONT.to_chat({"model": "m", "input": "x", "top_logprobs": 1})
    assert chat["top_logprobs"] == 1 and chat["logprobs"] is True  # chat servers refuse top_logprobs alone
    chat, _ = FRONT.to_chat({"model": "m", "input": "x", "include": ["message.output_text.logprobs"]})
    assert chat["logprobs"] is True
    assert "logprobs" not in FRONT.to_chat({"model": "m", "input": "x"})[0]
    ex.chat = {"logprobs": True}
    completion = {**BASE, "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": "Hi"}, "logprobs": {"content": [LOGPROB]}}]}
    assert chat_to_response(completion, ex)["output"][0]["content"][0]["logprobs"] == [LOGPROB]
    streamed = {**chunk({"content": "Hi"}), "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None,
                                                         "logprobs": {"content": [LOGPROB]}}]}
    events = list(FRONT.stream(iter([streamed, chunk(finish="stop")]), ex))
    assert [e["logprobs"] for e in events if e["type"] == "response.output_text.delta"] == [[LOGPROB]]


def test_events_the_stream_writes_itself_are_the_bytes_the_encoder_writes(monkeypatch) -> None:
    """Its events going straight to the encoder, a stream writes them itself (as bytes; those made at one moment
    joined): the bytes encode_event writes for each event, whatever the text (quotes, newlines, non-ASCII, a lone
    surrogate)."""
    from argoproxy.fronts.responses import answer, response, stream
    for module in (answer, stream):
        monkeypatch.setattr(module, "output_item_id", lambda prefix, resp_id: prefix + "0" * 32)
    monkeypatch.setattr(response.time, "time", lambda: 1_800_000_000.0)
    texts = ["plain", 'quo"te\\', "line\nbreak\t", "é ✓ 𝄞", "\ud800 lone", "</script>"]
    chunks = [chunk({"content": t}) for t in texts] + [chunk(finish="stop"), chunk(usage=USAGE)]

    def run(wire: bool) -> list:
        ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
        ex.encoded_events, ex.created = wire, 1_800_000_000
        ex.state = {"id": "resp_" + "1" * 24, "store": True}
        return list(FRONT.stream(iter(chunks), ex))

    plain, wired = run(False), run(True)
    assert not any(isinstance(e, bytes) for e in plain) and all(isinstance(e, bytes) for e in wired)
    assert b"".join(wired) == b"".join(FRONT.encode_event(e) for e in plain)
    assert len(wired) < len(plain)  # the events made at one moment (the opening ones, the closing ones) as one piece
