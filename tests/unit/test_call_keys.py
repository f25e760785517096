"""Which call a streamed tool-call fragment adds to (argoproxy/pipeline/call_keys.py)."""

from __future__ import annotations

from argoproxy.pipeline.call_keys import AGAIN, CallKeys


def keys(fragments: list[tuple[int, dict]]) -> list[int]:
    calls = CallKeys()
    return [calls.key(position, fragment) for position, fragment in fragments]


def test_openai_indexes_interleaved_and_repeated_ids_stay_their_calls():
    assert keys([(0, {"index": 0, "id": "a"}), (1, {"index": 1, "id": "b"}), (0, {"index": 0}),
                 (0, {"index": 1, "id": "b"}), (0, {"index": 0, "id": "a"})]) == [0, 1, 0, 1, 0]


def test_a_new_id_at_an_index_in_use_begins_a_call_its_later_fragments_join():
    assert keys([(0, {"index": 0, "id": "a"}), (0, {"index": 0, "id": "b"}), (0, {"index": 0}),
                 (0, {"index": 0, "id": "c"})]) == [0, AGAIN, AGAIN, AGAIN + 1]
    assert keys([(0, {"id": "a"}), (0, {"id": "b"})]) == [0, AGAIN]  # no index: the position


def test_an_id_given_after_the_first_fragment_is_the_same_call():
    assert keys([(0, {"index": 0}), (0, {"index": 0, "id": "late"}), (0, {"index": 0, "id": "late"})]) == [0, 0, 0]
