"""The text-written tool call parser (providers/argo/text_calls.py) and its whole-answer and stream forms."""

from __future__ import annotations

import json
import time

import pytest

from argoproxy.providers.argo.text_call_answers import (StreamTextCalls, declared_names, split_text, stream_items,
                                                        transform_body, transform_completion)
from argoproxy.providers.argo.text_calls import MAX_LITERAL_ITEMS, MAX_START, TextCallScanner

NAMES = frozenset({"bash", "read", "get_weather"})
LEAK = "{'id': 'toolu_vrtx_01Hx', 'input': {'command': 'ls -la'}, 'name': 'bash', 'type': 'tool_use', 'cache_control': None}"

SAMPLES = [
    f"Let me check:{LEAK}",
    f"a{LEAK.replace('01Hx', '01A')}{LEAK.replace('01Hx', '01B')} done",
    'Sure.\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\nThen more.',
    'x {"name": "nope", "arguments": {}} y',
    'x {"name": "get_weather", "arguments": {"city": "a}b{ \\" }"}} y',
    'x {"name": "get_weather", "arguments": {"city": "Paris"} y',
    "code `x` and ```python\nprint({1: 2})\n``` {a} {} {{",
    "{'id': 'toolu_1', 'input': {'command': 'echo hi\nthere', 'flag': true, 'n': null}, 'name': 'bash'}",
    '```json\n{"name": "get_weather", "input": {"city": "A"}}\n{"name": "get_weather", "input": {"city": "B"}}\n```',
    '{"type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"X\\"}"}}',
    "{'id': 'toolu_1', 'input': {'command': 'it\\'s {fine}'}, 'name': 'bash', 'type': 'tool_use'} {'name': 'bash', 'input': {}}",
    '```json\n{"name": "bash", "input": {}}\n{"oops": 1}\n```',
]


def _calls(calls: list[dict]) -> list[tuple[str, dict]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


def _fed(text: str, cuts: list[int]) -> tuple[str, list[dict]]:
    scanner = TextCallScanner(NAMES)
    pieces = []
    for start, end in zip([0, *cuts], [*cuts, len(text)]):
        pieces += scanner.feed(text[start:end])
    pieces += scanner.finish()
    return "".join(p for p in pieces if isinstance(p, str)), [p for p in pieces if isinstance(p, dict)]


def test_the_leaked_repr_becomes_a_call_with_its_id_and_the_text_stays():
    text, calls = split_text(f"Let me check:{LEAK} Done.", NAMES)
    assert text == "Let me check: Done."
    assert calls == [{"id": "toolu_vrtx_01Hx", "type": "function",
                      "function": {"name": "bash", "arguments": '{"command": "ls -la"}'}}]


@pytest.mark.parametrize("sample", SAMPLES)
def test_split_at_every_offset_and_char_by_char_gives_the_whole_answer(sample):
    whole_text, whole_calls = split_text(sample, NAMES)
    for cut in range(len(sample) + 1):
        text, calls = _fed(sample, [cut])
        assert (text, _calls(calls)) == (whole_text, _calls(whole_calls)), cut
    text, calls = _fed(sample, list(range(1, len(sample))))
    assert (text, _calls(calls)) == (whole_text, _calls(whole_calls))


@pytest.mark.parametrize("text, calls", [
    ('x {"name": "nope", "arguments": {}} y', []),  # not declared: left as text
    ('x {"name": "get_weather", "arguments": {"city": "Paris"} y', []),  # never closed
    ('{"name": "bash", "arguments": {"command": ls}}', []),  # closed but not JSON nor a literal
    ('{"name": "bash"}', []),  # no arguments: a mention, not a call
    ('{"name": "bash", "arguments": [1]}', []),  # arguments must be an object
    ('{"name": "bash", "arguments": {}, "note": 1}', []),  # a key a call does not have
    ('{"name": "bash", "type": "message", "input": {}}', []),
    ("{'name': 'bash', 'input': {'x': __import__('os').getcwd()}}", []),  # parsed, never evaluated
    ("{'name': 'bash', 'input': {'x': (lambda: 1)()}}", []),
])
def test_what_stays_text(text, calls):
    assert split_text(text, NAMES) == (text, calls)


def test_nested_braces_and_quotes_inside_strings():
    text, calls = split_text('{"name": "bash", "arguments": {"command": "echo \'}\' \\"{\\" `x`"}}', NAMES)
    assert text == "" and _calls(calls) == [("bash", {"command": "echo '}' \"{\" `x`"})]


def test_python_literals_true_none_and_json_names_mixed():
    _, calls = split_text("{'name': 'bash', 'input': {'a': True, 'b': None, 'c': false, 'd': -2.5, 'e': (1, 2)}}",
                          NAMES)
    assert _calls(calls) == [("bash", {"a": True, "b": None, "c": False, "d": -2.5, "e": [1, 2]})]


def test_several_calls_in_a_row_and_in_one_fence():
    _, calls = split_text(SAMPLES[1], NAMES)
    assert [c["id"] for c in calls] == ["toolu_vrtx_01A", "toolu_vrtx_01B"]
    text, calls = split_text(SAMPLES[8], NAMES)
    assert text == "" and [json.loads(c["function"]["arguments"])["city"] for c in calls] == ["A", "B"]


def test_a_fence_that_holds_more_than_calls_keeps_its_text():
    text, calls = split_text(SAMPLES[11], NAMES)
    assert text == '```json\n\n{"oops": 1}\n```' and _calls(calls) == [("bash", {})]


def test_only_what_could_still_be_a_call_is_held():
    scanner = TextCallScanner(NAMES)
    assert scanner.feed("Prose, `code`, {a}, {} and ```python\nx = {1: 2}") == \
        ["Prose, `code`, {a}, {} and ```python\nx = {1: 2}"]
    assert scanner.idle
    assert scanner.feed('Now {"name": "get_wea') == ["Now "] and not scanner.idle
    assert scanner.feed('ther", "arguments": {"city": "P') == []
    assert scanner.feed('aris"}} ok')[0]["function"]["name"] == "get_weather"
    other = TextCallScanner(NAMES)
    assert other.feed('{"name": "package-x", "version": "1.0", ') == ['{"name": "package-x", "version": "1.0", ']
    assert other.idle  # an undeclared name is text as soon as it is read
    assert TextCallScanner(NAMES).feed('{"description": "x", ') == ['{"description": "x", ']


def test_a_held_candidate_over_the_limit_is_released_as_text_and_not_rescanned():
    scanner = TextCallScanner(NAMES, limit=200)
    big = '{"name": "bash", "arguments": {"command": "' + "x" * 300 + '"}}'
    out = scanner.feed(big[:150]) + scanner.feed(big[150:]) + scanner.finish()
    assert "".join(out) == big and scanner.idle and scanner.calls == 0
    assert TextCallScanner(NAMES).feed("{" + " " * (MAX_START + 5) + '"name": "bash"')[0].startswith("{ ")


def test_a_python_literal_with_too_much_structure_is_not_parsed_but_json_is():
    # Python's AST costs about 1 KB per element (330,000 numbers: 310 MB); JSON is parsed without one.
    numbers = ", ".join(["1"] * (MAX_LITERAL_ITEMS + 10))
    literal = "{'name': 'bash', 'input': {'a': [" + numbers + "]}}"
    assert split_text(literal, NAMES) == (literal, [])
    _, calls = split_text(literal.replace("'", '"'), NAMES)
    assert len(json.loads(calls[0]["function"]["arguments"])["a"]) == MAX_LITERAL_ITEMS + 10


@pytest.mark.parametrize("unit", ["{", "`", "{ ", "```json\n", "{'id': ", '{"name": ', '{"id"',
                                  "{'name': 'bash', 'input': {}}"])
def test_linear_time_on_adversarial_text(unit):
    # Quadratic rescans (think.py and sse.py had them: 972eec3, 6c4150b) show as time growing with the square:
    # four times the text must cost well under sixteen times the CPU.
    def cpu(repeats: int) -> float:
        text = unit * repeats
        started = time.process_time()
        split_text(text, NAMES)
        return time.process_time() - started
    small_size = 30_000 // len(unit)
    small = min(cpu(small_size) for _ in range(3))
    large = min(cpu(4 * small_size) for _ in range(3))  # the least of three: a busy machine's stalls cancel
    assert large < max(10 * small, 0.2), (small, large)


# ------------------------------------------------------------------ answers


def test_declared_names_and_whole_completion():
    assert declared_names({"tools": [{"type": "function", "function": {"name": "bash"}}, {"type": "x"}]}) == {"bash"}
    obj = {"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
                                                      "message": {"role": "assistant", "content": LEAK}}]}
    assert transform_completion(obj, NAMES)
    choice = obj["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["id"] == "toolu_vrtx_01Hx"
    untouched = json.dumps({"object": "chat.completion", "choices": [{"message": {"content": "no {call}"}}]}).encode()
    assert transform_body(untouched, NAMES) is untouched


def _chunk(content=None, finish=None, **delta):
    if content is not None:
        delta["content"] = content
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "claude",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_stream_chunks_text_then_a_complete_call_then_finish_tool_calls():
    text = f"Look:{LEAK}!"
    items = [_chunk("", role="assistant")] + [_chunk(text[i:i + 7]) for i in range(0, len(text), 7)]
    items += [_chunk(finish="stop"), {"id": "c1", "choices": [], "usage": {"total_tokens": 3}}]
    out = list(stream_items(items, NAMES))
    deltas = [c["choices"][0]["delta"] for c in out if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Look:!"
    calls = [call for d in deltas for call in d.get("tool_calls", ())]
    assert calls == [{"index": 0, "id": "toolu_vrtx_01Hx", "type": "function",
                      "function": {"name": "bash", "arguments": '{"command": "ls -la"}'}}]
    assert [c["choices"][0]["finish_reason"] for c in out if c["choices"]][-1] == "tool_calls"
    assert out[-1]["usage"] == {"total_tokens": 3}


def test_raw_events_without_calls_pass_as_bytes_and_indexes_follow_the_upstreams():
    plain = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]}\n\n'
    assert list(stream_items([plain], NAMES)) == [plain]
    state = StreamTextCalls(NAMES)
    state.chunk(_chunk(tool_calls=[{"index": 0, "id": "call_up", "function": {"name": "read", "arguments": "{}"}}]))
    out = state.chunk(_chunk('{"name": "bash", "input": {}}', finish="tool_calls"))
    assert out[0]["choices"][0]["delta"]["tool_calls"][0]["index"] == 1
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_stream_that_ends_without_finish_releases_what_it_held():
    state = StreamTextCalls(NAMES)
    assert state.chunk(_chunk('see {"name": "bash", "inp')) is not None
    tail = state.flush()
    assert tail[0]["choices"][0]["delta"] == {"content": '{"name": "bash", "inp'}
