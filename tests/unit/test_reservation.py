"""What a request reserves of a token limit: its counted input plus the most it may answer, read where each door
sets it (the answer limit at Front.renamed's max_tokens)."""

from __future__ import annotations

from argoproxy.fronts import FRONTS
from argoproxy.pipeline.reservation import DEFAULT_ANSWER_TOKENS, door_limit, reservation
from argoproxy.pipeline.tokens import count_text

TEXT = "the quick brown fox jumps over the lazy dog " * 40


def test_a_chat_request_reserves_its_prompt_and_its_max_tokens():
    asked = reservation({"model": "m", "messages": [{"role": "user", "content": TEXT}], "max_tokens": 100})
    assert count_text(TEXT) + 100 <= asked < count_text(TEXT) + 100 + 40  # the template's few tokens


def test_a_body_in_no_chat_shape_is_counted_by_its_strings():
    google = {"contents": [{"role": "user", "parts": [{"text": TEXT}]}]}
    assert reservation(google) >= count_text(TEXT) + DEFAULT_ANSWER_TOKENS


def test_each_doors_answer_limit_is_read_where_the_door_sets_it():
    by_door = {front.name: front.renamed.get("max_tokens") for front in FRONTS.values()}
    assert by_door["google"] == "generationConfig.maxOutputTokens" and by_door["ollama"] == "options.num_predict"
    google = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 9000}}
    assert reservation(door_limit(google, by_door["google"])) > 9000
    for unlimited in (-1, 0, "9000", True, None):  # Ollama's negative num_predict: no limit; junk: not read
        ollama = {"messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": unlimited}}
        assert reservation(door_limit(ollama, by_door["ollama"])) < DEFAULT_ANSWER_TOKENS + 40
    chat = {"messages": [], "max_tokens": 5, "options": {"num_predict": 9000}}
    assert door_limit(chat, "options.num_predict") is chat  # max_tokens set: the body's own
