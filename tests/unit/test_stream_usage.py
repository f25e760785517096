"""Usage the proxy keeps or estimates for streams (argoproxy/pipeline/stream_usage.py) and the messages every chat
server takes (argoproxy/pipeline/upstream_messages.py): pure functions, no wire."""

from __future__ import annotations

import json

from argoproxy.upstream import sse
from argoproxy.meter.template_overhead import template_tokens
from argoproxy.meter.tokens import count_text
from argoproxy.pipeline.stream_usage import SAMPLE, OutputCount, UsageTap, native_usage
from argoproxy.pipeline.upstream_messages import normalize

CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def chunk(content: str | None = None, usage: dict | None = None, choices: bool = True) -> dict:
    obj = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}] if choices else []}
    if usage is not None:
        obj["usage"] = usage
    return obj


def test_output_count_is_exact_for_a_short_answer_and_scaled_past_the_sample():
    count = OutputCount()
    for piece in ("Hello", " there", ", general", " Kenobi"):
        count.add_delta({"content": piece})
    count.add_delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]})
    assert count.total() == count_text("Hello there, general Kenobi" + '{"a": 1}')
    long = OutputCount()
    for _ in range(3 * SAMPLE // 5):
        long.add(" word")  # 5 characters, one token
    assert 0.95 * 3 * SAMPLE // 5 <= long.total() <= 1.05 * 3 * SAMPLE // 5
    assert OutputCount().total() == 0


def test_meter_takes_the_usage_out_for_a_client_that_did_not_ask():
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    meter = UsageTap(strip=True)
    assert meter.item(sse.encode(chunk("Hi"))) == sse.encode(chunk("Hi"))
    with_null = meter.item(sse.encode(chunk("!", usage=None) | {"usage": None}))
    assert "usage" not in json.loads(with_null[6:])  # OpenAI's `"usage": null` on every chunk goes too
    assert meter.item(sse.encode(chunk(usage=usage, choices=False))) is None
    assert meter.item(chunk(usage=usage, choices=False)) is None  # chunk dicts (ARGO, DashScope) alike
    assert meter.settled({"messages": []}) == (usage, False)


def test_meter_takes_out_a_null_usage_as_it_was_written():
    """A client that did not ask gets the bytes it would have got: `"usage":null` removed as written (spaces and
    escapes kept); a chunk where that text is not found once is encoded again."""
    meter = UsageTap(strip=True)
    plain = b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"caf\\u00e9 1.50"}}]}\n\n'
    assert meter.item(plain[:-3] + b',"usage":null}\n\n') == plain
    assert meter.item(plain[:-3] + b', "usage" : null}\n\n') == plain
    assert meter.item(b'data: {"usage":null,' + plain[7:]) == plain
    nested = b'data: {"id":"x","choices":[{"index":0,"delta":{"x":{"usage":null}}}],"usage":null}\n\n'
    assert json.loads(meter.item(nested)[6:]) == {"id": "x", "choices": [{"index": 0, "delta": {"x": {"usage": None}}}]}


def test_a_long_stream_without_usage_is_estimated_from_the_events_kept():
    """Events with no usage object pass unparsed; should no usage come, the first of them are counted and the
    count scaled to the bytes of them all (about one token a word here, whatever the length)."""
    meter = UsageTap(strip=True)
    for i in range(3000):  # about 400 KB of events, past what is kept
        assert meter.item(sse.encode(chunk(" word"))) is not None
    assert meter.kept_bytes < meter.unread_bytes
    got, estimated = meter.settled(None)
    assert estimated and 2850 <= got["completion_tokens"] <= 3150


def test_meter_keeps_the_usage_a_client_asked_for_and_estimates_when_none_comes():
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    meter = UsageTap(strip=False)
    item = sse.encode(chunk(usage=usage, choices=False))
    assert meter.item(item) is item and meter.settled(None) == (usage, False)
    silent = UsageTap(strip=True)
    for piece in ("one", " two", " three"):
        silent.item(sse.encode(chunk(piece)))
    asked = {"messages": [{"role": "user", "content": "count these words"}]}
    got, estimated = silent.settled(asked)
    prompt = 3 + template_tokens(asked)  # the texts, and the chat template around them
    assert estimated and got == {"prompt_tokens": prompt, "completion_tokens": 3, "total_tokens": prompt + 3}


def test_messages_normalized_for_chat_servers():
    messages = [{"role": "developer", "content": "rules"}, {"role": "user", "content": "q"},
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "tool_call_id": "c1", "content": "r"}]
    assert normalize(messages, keep_developer=False)
    assert [m["role"] for m in messages][:2] == ["system", "user"]
    assert messages[2]["content"] == "" and messages[3]["content"] == ""
    assert not normalize(messages, keep_developer=False)  # nothing left to change: the body is not re-encoded
    kept = [{"role": "developer", "content": "rules"}]
    assert not normalize(kept, keep_developer=True) and kept[0]["role"] == "developer"
    argo = [{"role": "assistant", "content": "", "tool_calls": [CALL]}, {"role": "assistant", "content": ""}]
    assert normalize(argo, keep_developer=False, tool_turn_content=None)  # ARGO: null beside tool calls
    assert argo[0]["content"] is None and argo[1]["content"] == ""
    assert not normalize("not a list", keep_developer=False)


class Counted:
    """What native_usage hands on (the answer side's note_usage)."""
    usage: dict | None = None
    usage_estimated = False

    def __call__(self, usage: dict, estimated: bool) -> None:
        self.usage, self.usage_estimated = usage, estimated


def _native(pieces: list[bytes]) -> dict | None:
    counted = Counted()
    list(native_usage(iter(pieces), counted))
    return counted.usage


def test_a_native_answers_usage_is_read_from_its_bytes_wherever_the_reads_cut_them():
    """Anthropic's stream: input (cached tokens added) in message_start, output in the last message_delta; text
    that quotes a usage object is escaped and never read; reads may cut a key or a number anywhere."""
    def event(e: dict) -> bytes:
        return f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()
    stream = b"".join([
        event({"type": "message_start", "message": {"usage": {"input_tokens": 12345, "cache_read_input_tokens": 1000,
                                                             "output_tokens": 1}}}),
        event({"type": "content_block_delta", "delta": {"text": 'a "usage": {"output_tokens": 9}'}}),
        event({"type": "message_delta", "usage": {"output_tokens": 70000}})])
    for cut in range(0, len(stream), 5):
        assert _native([stream[:cut], stream[cut:]]) == {
            "input_tokens": 13345, "output_tokens": 70000,
            "input_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 0}}, cut


def test_a_native_answers_priced_parts_are_kept():
    """What is priced apart (argoproxy/spend/): cached reads, cache writes (one-hour ones too) and reasoning, in the
    Responses API's shape whatever the relayed API's, so the answer is charged as the upstream bills it."""
    messages = json.dumps({"usage": {"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 50,
                                     "cache_creation": {"ephemeral_5m_input_tokens": 80,
                                                        "ephemeral_1h_input_tokens": 120},
                                     "output_tokens": 30}}).encode()
    assert _native([messages]) == {"input_tokens": 260, "output_tokens": 30, "input_tokens_details": {
        "cached_tokens": 50, "cache_write_tokens": 200, "cache_write_1h_tokens": 120}}
    responses = json.dumps({"type": "response.completed", "response": {"usage": {
        "input_tokens": 100, "input_tokens_details": {"cached_tokens": 60}, "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 25}, "total_tokens": 140}}}).encode()
    assert _native([responses]) == {"input_tokens": 100, "output_tokens": 40, "output_tokens_details": {
        "reasoning_tokens": 25}, "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 0}}


def test_a_usage_member_in_a_tools_input_is_not_the_answers():
    whole = json.dumps({"content": [{"type": "tool_use", "input": {"usage": "x", "input_tokens": 999999,
                                                                    "output_tokens": 888888}}],
                        "usage": {"input_tokens": 3, "output_tokens": 5}}).encode()
    assert _native([whole]) == {"input_tokens": 3, "output_tokens": 5}
    assert _native([b'{"type":"response.created","response":{"usage":null}}']) is None  # the estimate stands


def test_a_native_answer_without_usage_is_estimated_from_its_request_and_texts():
    """No usage object in the bytes: the request's prompt and the texts the answer carried are counted (a
    Responses body's `instructions` and `input` items, the stream's deltas); with a usage object, it stands."""
    body = {"model": "m", "instructions": "be brief", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hello there"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "c", "output": "sunny"}]}
    delta = {"type": "response.output_text.delta", "delta": "General Kenobi"}
    out = Counted()
    list(native_usage(iter([f"data: {json.dumps(delta)}\n\n".encode()]), out, body))
    expected_in = sum(count_text(t) for t in ("be brief", "hello there", '{"city": "Paris"}', "sunny"))
    expected_in += template_tokens(body)
    assert out.usage == {"input_tokens": expected_in, "output_tokens": count_text("General Kenobi")}
    assert out.usage_estimated
    counted = Counted()
    list(native_usage(iter([b'data: {"delta": "x", "usage": {"input_tokens": 7, "output_tokens": 3}}\n\n']), counted,
                      body))
    assert counted.usage == {"input_tokens": 7, "output_tokens": 3} and not counted.usage_estimated


def test_a_hostile_answers_texts_are_kept_bounded():
    """An answer of texts past SAMPLE characters keeps that much and scales the count by what it skipped."""
    from argoproxy.pipeline.stream_usage import AnswerTexts
    said = AnswerTexts()
    event = b'data: {"delta": "' + b"word " * 20_000 + b'"}\n\n'
    rounds = 2 * (1 << 20) // len(event) + 2
    for _ in range(rounds):
        said.add(event)
    assert said.deltas._kept <= SAMPLE and said.deltas._chars == rounds * 100_000
    one = count_text("word " * 20_000)
    assert said.total() >= one * rounds * 0.9


def test_an_answer_of_usage_keys_repeated_is_read_in_bounded_spans():
    """A file of `"usage"` repeated (300,000 to the MB) was searched 4 KB per occurrence: 2.3 s of CPU per MB.
    At most MAX_SPANS are read at each end of a read; the last counts still win."""
    from argoproxy.pipeline.stream_usage import MAX_SPANS, _usage_spans
    junk = b'"usage"' * 100_000
    assert len(_usage_spans(junk, True)) == 2 * MAX_SPANS and len(_usage_spans(junk, False)) == MAX_SPANS
    last = b'"usage": {"input_tokens": 9, "output_tokens": 11}'
    assert _native([junk + last]) == {"input_tokens": 9, "output_tokens": 11}
    few = b'"usage": {"output_tokens": 1} ' * 10
    assert [b - a for a, b in _usage_spans(few, True)][:1] == [len(few) // 10]  # each ends where the next begins


def test_a_responses_stream_text_is_counted_once():
    """Its deltas, then the same text in output_text.done, content_part.done, output_item.done and
    response.completed: counted once (it was five times)."""
    from argoproxy.pipeline.stream_usage import AnswerTexts
    text = "the quick brown fox " * 20
    said = AnswerTexts()
    for piece in (text[:100], text[100:]):
        said.add(b'data: {"type":"response.output_text.delta","delta":' + json.dumps(piece).encode() + b'}\n\n')
    said.add(b'data: {"type":"response.output_text.done","text":' + json.dumps(text).encode() + b'}\n\n')
    said.add(b'data: {"type":"response.completed","response":{"output":[{"content":[{"text":'
             + json.dumps(text).encode() + b'}]}]}}\n\n')
    assert said.total() == count_text(text)  # once (the deltas joined), not five times


def test_a_usage_object_cut_between_reads_is_read_whole_whatever_follows():
    """message_start's input count cut between two reads, the next read holding many more "usage" keys: the
    object begun in the carried bytes is read again whole."""
    start = b'event: message_start\ndata: {"message": {"usage": {"input_tokens": 123456, "output_tokens": 1}}}\n\n'
    cut = start.index(b"3456")
    filler = b'data: {"usage": null}\n\n' * 80
    end = b'data: {"type": "message_delta", "usage": {"output_tokens": 70}}\n\n'
    assert _native([start[:cut], start[cut:] + filler + end]) == {"input_tokens": 123456, "output_tokens": 70}


def test_ollamas_own_counts_are_its_usage_wherever_the_reads_cut_them():
    """Ollama's /api/chat and /api/generate (passed through) end with prompt_eval_count and eval_count, and no
    usage object: 20,000-token streams were charged 0."""
    lines = [{"model": "m", "message": {"role": "assistant", "content": "hi"}, "done": False},
             {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "length",
              "total_duration": 99, "prompt_eval_count": 26, "prompt_eval_duration": 5, "eval_count": 20000,
              "eval_duration": 7}]
    stream = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    for cut in range(0, len(stream), 7):
        assert _native([stream[:cut], stream[cut:]]) == {"input_tokens": 26, "output_tokens": 20000}, cut
    cached = {"model": "m", "response": "x", "done": True, "eval_count": 12}  # a prompt all cached: no count
    assert _native([json.dumps(cached).encode()]) == {"input_tokens": 0, "output_tokens": 12}


def test_llama_cpps_own_counts_are_its_usage():
    timings = {"choices": [], "timings": {"prompt_n": 40, "prompt_ms": 3.1, "predicted_n": 300, "predicted_ms": 9}}
    assert _native([b"data: " + json.dumps(timings).encode() + b"\n\n"]) == {"input_tokens": 40,
                                                                            "output_tokens": 300}
    completion = {"content": "x", "stop": True, "tokens_evaluated": 11, "tokens_predicted": 500}
    assert _native([json.dumps(completion).encode()]) == {"input_tokens": 11, "output_tokens": 500}
    quoted = {"content": 'as "eval_count": 9 and "timings" say', "stop": True}  # escaped in the text: not counts
    assert _native([json.dumps(quoted).encode()]) is None


def test_an_ollama_answer_without_counts_is_estimated_from_its_generated_text():
    out = Counted()
    line = {"model": "m", "response": "General Kenobi", "done": False}
    list(native_usage(iter([json.dumps(line).encode()]), out, {"model": "m", "prompt": "hello there"}))
    assert out.usage == {"input_tokens": count_text("hello there"), "output_tokens": count_text("General Kenobi")}
    assert out.usage_estimated
