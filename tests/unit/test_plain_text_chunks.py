"""The plain-text shortcut of the stream translators (answer_shape.plain_text): a chunk that carries only its
text is read without the general walk. Checked against the general reading on chunks that are plain, almost
plain and not plain at all: the same shape verdict, and every front door writes the same events."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from argoproxy import ids
from argoproxy.errors import ProxyError
from argoproxy.fronts import front as front_module
from argoproxy.fronts import front_named
from argoproxy.fronts.front import Exchange
from argoproxy.fronts.responses import tools as responses_tools
from argoproxy.pipeline import answer_shape
from argoproxy.pipeline.answer_shape import check_chunk, plain_text

MISSING = object()  # a key left out
ANY_JSON = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["", "x", "stop", "assistant"]),
                     st.just([]), st.just({}), st.just([{"index": 0, "function": {"arguments": "{"}}]))


def usually(usual: Any, *other: st.SearchStrategy) -> st.SearchStrategy:
    """The usual value four times in five, else one of `other`."""
    return st.integers(0, 4).flatmap(lambda n: st.one_of(*other) if n == 0 else st.just(usual))


def _put(obj: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    if value is not MISSING:
        obj[key] = value
    return obj


@st.composite
def chunks(draw: Any) -> dict[str, Any]:
    """A text delta with a field or two moved off its usual value (all of them now and then)."""
    delta = _put({}, "content", draw(usually("tok ", st.sampled_from(["", "<think>", "é"]), ANY_JSON)))
    _put(delta, "role", draw(usually(MISSING, ANY_JSON)))
    for key in ("tool_calls", "reasoning_content", "reasoning", "refusal"):
        _put(delta, key, draw(usually(MISSING, ANY_JSON)))
    choice = _put({}, "index", draw(usually(0, st.just(MISSING), ANY_JSON)))
    _put(choice, "delta", draw(usually(delta, ANY_JSON)))
    _put(choice, "finish_reason", draw(usually(None, st.just(MISSING), ANY_JSON)))
    choices = draw(usually([choice], st.just([choice, dict(choice)]), ANY_JSON))
    chunk = _put({"id": "c", "object": "chat.completion.chunk"}, "choices", choices)
    return _put(chunk, "usage", draw(usually(MISSING, st.none(), ANY_JSON, st.just(
        {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}))))


def _verdict(check: Any, chunk: dict[str, Any]) -> str:
    try:
        check(chunk)
    except ProxyError as err:
        return err.message
    return "ok"


def _events(door: str, chunk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    counter = itertools.count()
    counted = lambda n: next(counter).to_bytes(n, "big").hex()  # noqa: E731
    monkeypatch.setattr(ids, "random_hex", counted)
    monkeypatch.setattr(responses_tools, "random_hex", counted)  # item ids: their own digits, then the response's
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)  # one second for both readings
    front = front_named(door)
    ex = Exchange(model="m", stream=True, request={})
    return [front.encode_event(e) for e in front.stream(iter([chunk, chunk]), ex)]


@settings(max_examples=400, deadline=None)
@given(chunk=chunks())
def test_the_shortcut_reads_every_chunk_as_the_general_path_does(chunk: dict[str, Any]) -> None:
    general = _verdict(lambda c: answer_shape._check(c, "delta"), chunk)
    assert _verdict(check_chunk, chunk) == general
    if plain_text(chunk) is not None:
        assert general == "ok"
    if general != "ok":
        return
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast = {door: _events(door, chunk, monkeypatch) for door in ("responses", "messages", "google")}
        monkeypatch.setattr(front_module, "chunk_text", lambda chunk: answer_shape._check(chunk, "delta"))
        slow = {door: _events(door, chunk, monkeypatch) for door in ("responses", "messages", "google")}
    assert fast == slow


def test_the_shortcut_takes_the_usual_chunks_and_only_those() -> None:
    text = {"index": 0, "delta": {"content": "tok"}, "finish_reason": None}
    assert plain_text({"choices": [text]}) == "tok"
    assert plain_text({"choices": [{**text, "delta": {"role": "assistant", "content": "tok"}}], "usage": None}) == "tok"
    assert plain_text({"choices": [{"delta": {"content": "tok"}}]}) == "tok"  # index 0 by default
    for other in ({**text, "index": False}, {**text, "index": 1}, {**text, "finish_reason": "stop"},
                  {**text, "delta": {"content": "tok", "reasoning_content": "r"}},
                  {**text, "delta": {"content": "tok", "tool_calls": []}}, {**text, "delta": {"content": ""}}):
        assert plain_text({"choices": [other]}) is None
    assert plain_text({"choices": [text], "usage": {"total_tokens": 3}}) is None
    assert plain_text({"choices": [text, text]}) is None
