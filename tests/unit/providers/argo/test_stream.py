"""ARGO streams (plain-text bytes) -> OpenAI chunk dicts."""

from __future__ import annotations

import time

import pytest
import requests

from argoproxy.meter import tokens
from argoproxy.providers.argo.stream import decode_text, stream_chat_chunks, stream_completion_chunks
from argoproxy.errors import ProxyError
from tests.fakes.fake_argo import AUTH_NOTICE_TEXT, STREAM_PATH, FakeArgo

TEXT = "Grüße, 世界! 🎉 done"


def byte_chunks(text: str, size: int) -> list[bytes]:
    data = text.encode("utf-8")
    return [data[i:i + size] for i in range(0, len(data), size)]


def content_of(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# ------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 1000])
def test_multibyte_characters_split_across_chunks_survive(size):
    pieces = list(decode_text(byte_chunks(TEXT, size)))
    assert "".join(pieces) == TEXT
    assert all(pieces) and "\ufffd" not in "".join(pieces)


def test_a_four_byte_emoji_split_into_single_bytes_arrives_whole():
    emoji = "🎉".encode()
    assert list(decode_text([b"x", emoji[:1], emoji[1:2], emoji[2:3], emoji[3:], b"y"])) == ["x", "🎉", "y"]


def test_truncated_utf8_at_the_end_becomes_a_replacement_char():
    assert "".join(decode_text([b"ok", "é".encode()[:1]])) == "ok\ufffd"


def test_str_chunks_pass_through():
    assert list(decode_text(["x", "", "y"])) == ["x", "y"]


def test_decoding_is_lazy():
    def source():
        yield b"first"
        raise AssertionError("read too far")

    assert next(iter(decode_text(source()))) == "first"


# -------------------------------------------------------------------------- real chat stream


def test_chat_stream_shape():
    chunks = list(stream_chat_chunks(byte_chunks(TEXT, 3), model="argo:gpt-4o", prompt_tokens=4, created=99))
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "argo:gpt-4o" and c["created"] == 99 for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    assert content_of(chunks) == TEXT
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all("usage" not in c for c in chunks)


def test_chat_stream_usage_chunk_only_when_asked():
    chunks = list(stream_chat_chunks(byte_chunks(TEXT, 4), model="m", prompt_tokens=4, include_usage=True))
    usage = chunks[-1]
    assert usage["choices"] == []
    completion = tokens.count_text(TEXT)
    assert usage["usage"] == {"prompt_tokens": 4, "completion_tokens": completion, "total_tokens": 4 + completion}
    assert usage["id"] == chunks[0]["id"]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_chat_stream_yields_one_chunk_per_upstream_piece():
    chunks = list(stream_chat_chunks([b"Hel", b"lo", b" world"], model="m", prompt_tokens=0))
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["Hel", "lo", " world", None]


def test_empty_chat_stream_still_has_role_and_stop():
    chunks = list(stream_chat_chunks([], model="m", prompt_tokens=0))
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": ""}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_stream_with_given_id():
    chunks = list(stream_chat_chunks([b"x"], model="m", prompt_tokens=0, completion_id="chatcmpl-fixed"))
    assert {c["id"] for c in chunks} == {"chatcmpl-fixed"}


# ---------------------------------------------------------------- auth notice while streaming


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_auth_notice_stream_raises_403_before_any_chunk(size):
    gen = stream_chat_chunks(byte_chunks(AUTH_NOTICE_TEXT, size), model="m", prompt_tokens=0)
    with pytest.raises(ProxyError) as caught:
        next(gen)
    assert caught.value.status == 403


def test_decorated_auth_notice_is_caught():
    with pytest.raises(ProxyError):
        list(decode_text([b"\n*** ", b"authentication notice from argo ***"]))


def test_text_that_merely_starts_like_the_notice_is_released():
    assert "".join(decode_text([b"AUTH", b"ORS write books"])) == "AUTHORS write books"
    assert "".join(decode_text([b"Au"])) == "Au"  # held until the end, then released


def test_ordinary_text_is_not_held_back():
    def source():
        yield b"Hello"
        raise AssertionError("the first piece must come out before the next read")

    gen = decode_text(source())
    assert next(gen) == "Hello"


# ---------------------------------------------------------------------- legacy completions


def test_completion_stream_shape():
    chunks = list(stream_completion_chunks(byte_chunks(TEXT, 2), model="argo:gpt-4o", prompt_tokens=3, include_usage=True))
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["id"].startswith("cmpl-")
    assert all(c["object"] == "text_completion" for c in chunks)
    text_chunks = chunks[:-2]
    assert "".join(c["choices"][0]["text"] for c in text_chunks) == TEXT
    assert all(c["choices"][0]["finish_reason"] is None for c in text_chunks)
    assert chunks[-2]["choices"][0] == {"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 3
    assert chunks[-1]["usage"]["completion_tokens"] == tokens.count_text(TEXT)


def test_completion_stream_without_usage():
    chunks = list(stream_completion_chunks([b"a"], model="m", prompt_tokens=0))
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "stop"]
    assert all("usage" not in c for c in chunks)


# --------------------------------------------------------------------------- pseudo streaming


# ------------------------------------------------------------ through the fake ARGO over HTTP


def _stream_from_fake(argo: FakeArgo, headers: dict[str, str], encoding: str | None = None) -> list[dict]:
    body = {"user": "alice", "model": "gpt4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with requests.post(argo.stream_url, json=body, headers=headers, stream=True, timeout=5) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        assert reply.headers.get("content-encoding") == encoding
        return list(stream_chat_chunks(reply.iter_content(chunk_size=None), model="argo:gpt-4o", prompt_tokens=1))


def test_real_stream_from_fake_argo_split_bytes():
    with FakeArgo() as argo:
        argo.reply = TEXT
        argo.stream_chunk_size = 1  # every multi-byte character arrives split
        chunks = _stream_from_fake(argo, {"Accept-Encoding": "identity"})
        sent = argo.requests_to(STREAM_PATH)[0]
    assert content_of(chunks) == TEXT
    assert sent.headers["accept-encoding"] == "identity"


def test_real_stream_from_fake_argo_gzip():
    with FakeArgo() as argo:
        argo.reply = TEXT * 3
        argo.stream_chunk_size = 5
        argo.stream_gzip = True
        chunks = _stream_from_fake(argo, {"Accept-Encoding": "gzip"}, encoding="gzip")
    assert content_of(chunks) == TEXT * 3


def test_fake_argo_streams_incrementally():
    with FakeArgo() as argo:
        argo.reply = "abcdef"
        argo.stream_chunk_size = 2
        argo.stream_delay = 0.2
        body = {"user": "alice", "model": "gpt4o", "messages": []}
        start = time.monotonic()
        with requests.post(argo.stream_url, json=body, stream=True, timeout=5) as reply:
            pieces = reply.iter_content(chunk_size=None)
            first = next(pieces)
            first_at = time.monotonic() - start
            rest = b"".join(pieces)
    assert first == b"ab" and rest == b"cdef"
    assert first_at < 0.2  # the first piece did not wait for the rest


def test_auth_notice_from_fake_argo_stream():
    with FakeArgo() as argo:
        argo.registered_users = {"bob"}
        with pytest.raises(ProxyError) as caught:
            _stream_from_fake(argo, {})
    assert caught.value.status == 403


def test_chunks_validate_as_openai_sdk_types():
    from openai.types import Completion
    from openai.types.chat import ChatCompletionChunk

    for chunk in stream_chat_chunks(byte_chunks(TEXT, 3), model="m", prompt_tokens=1, include_usage=True):
        ChatCompletionChunk.model_validate(chunk)
    for chunk in stream_completion_chunks(byte_chunks(TEXT, 3), model="m", prompt_tokens=1, include_usage=True):
        # OpenAI's own legacy streams send finish_reason null on text chunks; the SDK builds stream
        # chunks without validation, but its Completion type allows only a final reason.
        for choice in chunk["choices"]:
            choice["finish_reason"] = choice["finish_reason"] or "stop"
        Completion.model_validate(chunk)


def test_fake_argo_models_route():
    with FakeArgo() as argo:
        listing = requests.get(argo.models_url, timeout=5).json()
    assert {"internal_id": "gpt4o"}.items() <= listing["data"][0].items()
