"""Which call a streamed tool-call fragment adds to (argoproxy/pipeline/call_keys.py)."""

from __future__ import annotations

from argoproxy.pipeline.call_keys import AGAIN, CallKeys


def keys(fragments: list[tuple[int, dict]]) -> list[int]:
    calls = CallKeys()
    return [calls.key(position, fragment) for position, fragment in fragments]


def test_openai_indexes_interleaved_and_repeated_ids_stay_their_calls():
    assert keys([(0, {"index": 0, "id": "a"}), (1, {"index": 1, "id": "b"}), (0, {"index": 0}),
                 (0, {"index": 1, "id": "b"}), (0, {"index": 0, "id": "a"})]) == [0, 1, 0, 1, 0]


F = {"function": {"name": "f", "arguments": "{}"}}  # a call whole in one fragment, as Ollama sends each


def test_a_new_id_and_name_at_an_index_in_use_begins_a_call_its_later_fragments_join():
    assert keys([(0, {"index": 0, "id": "a", **F}), (0, {"index": 0, "id": "b", **F}), (0, {"index": 0}),
                 (0, {"index": 0, "id": "c", **F})]) == [0, AGAIN, AGAIN, AGAIN + 1]
    assert keys([(0, {"id": "a", **F}), (0, {"id": "b", **F})]) == [0, AGAIN]  # no index: the position


def test_an_id_that_changes_within_a_call_without_a_name_continues_it():
    """Poolside: one id with the name, another on every argument fragment; mlx-openai-server: a new id on
    every fragment. Only a fragment that names a function begins a call."""
    args = {"function": {"arguments": "{"}}
    assert keys([(0, {"index": 0, "id": "A", "function": {"name": "f", "arguments": ""}}),
                 (0, {"index": 0, "id": "B", **args}), (0, {"index": 0, "id": "B", **args})]) == [0, 0, 0]
    assert keys([(0, {"index": 0, "id": "x1", "function": {"name": "f"}}), (0, {"index": 0, "id": "x2", **args}),
                 (0, {"index": 0, "id": "x3", **args})]) == [0, 0, 0]


def test_an_id_given_after_the_first_fragment_is_the_same_call():
    assert keys([(0, {"index": 0}), (0, {"index": 0, "id": "late"}), (0, {"index": 0, "id": "late"})]) == [0, 0, 0]


def test_the_chat_filter_leaves_well_numbered_streams_as_they_came():
    """Events without tool calls, and calls the server numbered apart, pass as the same bytes (nothing
    re-encoded); only a call begun again at an index in use is given the next index."""
    import json

    from argoproxy.pipeline.call import Call, Planned
    from argoproxy.pipeline.filters import tool_call_indexes
    call = Call.of("chat", "POST", "v1/chat/completions")
    call.planned = Planned({"tools": [{"type": "function"}]})

    def event(calls):
        return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": calls}}]}).encode() + b"\n\n"
    text = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'
    good = [text, event([{"index": 0, "id": "a", "function": {"name": "f"}}]),
            event([{"index": 1, "id": "b", "function": {"name": "g"}}]), event([{"index": 0, "function": {"arguments": "{}"}}])]
    out = list(tool_call_indexes(call, iter(good)))
    assert all(o is g for o, g in zip(out, good)) and len(out) == 4
    ollama = [event([{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]),
              event([{"index": 0, "id": "b", "function": {"name": "f", "arguments": "{}"}}]),
              event([{"id": "c", "function": {"name": "f", "arguments": "{}"}}])]
    out = list(tool_call_indexes(call, iter(ollama)))
    assert out[0] is ollama[0]
    assert [o["choices"][0]["delta"]["tool_calls"][0]["index"] for o in out[1:]] == [1, 2]
    plain = iter(ollama)
    assert tool_call_indexes(Call.of("chat", "POST", "v1/chat/completions", body={}), plain) is plain  # no tools


def test_relayed_indexes_stay_apart_once_a_call_was_begun_again():
    """[A], [B] at index 0 (B begun again), then [C, D] by position: D's own index 1 was given to B already."""
    calls = CallKeys()
    named = [("A", 0), ("B", 0), ("C", 0), ("D", 1)]
    wire = [calls.index(calls.key(position, {"id": i, "function": {"name": "f"}})) for i, position in named]
    assert wire == [0, 1, 2, 3]
    plain = CallKeys()  # a server that numbers its calls: its indexes pass as they are
    assert [plain.index(plain.key(0, {"index": n, "id": str(n), "function": {"name": "f"}})) for n in (0, 1, 2)] == [0, 1, 2]


def test_a_repeated_id_and_name_are_told_from_a_new_call_and_from_argument_pieces():
    calls = CallKeys()
    head = {"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}
    assert not calls.repeats(calls.key(0, head), head)  # a call's first fragment keeps its id and name
    for later, repeated in (({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}, True),
                            ({"index": 0, "function": {"name": "f", "arguments": "}"}}, True),
                            ({"index": 0, "id": "a", "function": {"arguments": "1"}}, True),
                            ({"index": 0, "function": {"arguments": "2"}}, False),  # nothing to leave out
                            ({"index": 0, "id": "z", "function": {"arguments": "3"}}, False),  # another id
                            ({"index": 0, "function": {"name": "f2", "arguments": ""}}, False)):  # a name piece
        assert calls.repeats(calls.key(0, later), later) is repeated, later



def test_an_id_or_name_first_given_later_is_not_repeated_after_it():
    """A first fragment with the id but no name, then the name, then both on every fragment: the OpenAI SDK's
    helper joined them into call_1call_1call_1 and get_weatherget_weather."""
    calls = CallKeys()
    seen = []
    for fragment in ({"index": 0, "id": "call_1", "function": {"arguments": ""}},
                     {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": "{"}},
                     {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": "}"}}):
        seen.append(calls.repeats(calls.key(0, fragment), fragment))
    assert seen == [False, False, True]
