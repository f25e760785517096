"""What a request reserves of a token limit: its counted input plus the most it may answer; an API door's
request as the chat request the door makes of it (DoorRequest), so the door's own spellings are read as the door
reads them and what it ignores is ignored."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts import FRONTS
from argoproxy.fronts.front import DoorArgs
from argoproxy.pipeline.reservation import DEFAULT_ANSWER_TOKENS, DoorRequest, reservation
from argoproxy.pipeline.tokens import count_text

TEXT = "the quick brown fox jumps over the lazy dog " * 40
IMAGE = "iVBORw0KGgo" * 100_000  # about a megabyte of base64


def door(name: str, body: dict, **args) -> DoorRequest:
    front = FRONTS[name]
    return DoorRequest(body, lambda: front.to_chat(body, False, DoorArgs(**args) if args else None)[0])


def test_a_chat_request_reserves_its_prompt_and_its_max_tokens():
    asked = reservation({"model": "m", "messages": [{"role": "user", "content": TEXT}], "max_tokens": 100})
    assert count_text(TEXT) + 100 <= asked < count_text(TEXT) + 100 + 40  # the template's few tokens


def test_a_body_in_no_chat_shape_is_counted_by_its_strings():
    assert reservation({"contents": [{"parts": [{"text": TEXT}]}]}) >= count_text(TEXT) + DEFAULT_ANSWER_TOKENS


@pytest.mark.parametrize("config", [{"generationConfig": {"maxOutputTokens": 9000}},
                                    {"generation_config": {"max_output_tokens": 9000}},
                                    {"generationConfig": {"max_output_tokens": 9000.0}}])
def test_gemini_answer_limit_in_every_spelling_the_door_takes(config):
    body = {"contents": [{"role": "user", "parts": [{"text": TEXT}]}], **config}
    assert reservation(door("google", body, model="m")) >= count_text(TEXT) + 9000


def test_members_a_door_ignores_do_not_lower_its_reservation():
    """A stray max_tokens or chat-shaped key beside Gemini's contents (the door sends contents and its own
    limit upstream) reserved 1 token plus the stray's text."""
    body = {"contents": [{"role": "user", "parts": [{"text": TEXT}]}], "max_tokens": 1, "input": "",
            "generationConfig": {"maxOutputTokens": 9000}}
    assert reservation(door("google", body, model="m")) >= count_text(TEXT) + 9000
    ollama = {"model": "m", "messages": [{"role": "user", "content": TEXT}], "max_tokens": 1,
              "options": {"num_predict": 9000}}
    assert reservation(door("ollama", ollama)) >= count_text(TEXT) + 9000


def test_an_image_is_not_counted_as_text():
    body = {"contents": [{"role": "user", "parts": [{"text": "what is this?"}, {"inlineData": {
        "mimeType": "image/png", "data": IMAGE}}]}], "generationConfig": {"maxOutputTokens": 100}}
    assert reservation(door("google", body, model="m")) < 2000


def test_ollama_no_limit_reserves_the_default():
    for unlimited in (-1, 0):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": unlimited}}
        assert DEFAULT_ANSWER_TOKENS <= reservation(door("ollama", body)) < DEFAULT_ANSWER_TOKENS + 40


def test_a_body_the_door_refuses_raises_its_error():
    with pytest.raises(ProxyError) as refused:
        reservation(door("google", {"contents": "nope"}, model="m"))
    assert refused.value.status == 400
