"""OpenAI streaming chunks from ARGO: real streams (plain text) and pseudo streams (one whole answer).

ARGO's /streamchat/ body is plain UTF-8 text in arbitrary byte chunks, not SSE: a multi-byte
character can be split between two chunks, so bytes go through an incremental UTF-8 decoder and only
whole characters are emitted. Each piece of text becomes one chunk dict; the pipeline encodes the
dicts as SSE and adds `data: [DONE]`.

Chunk sequence (chat): one id for all chunks; `role: "assistant"` on the first delta; content deltas;
a final chunk with an empty delta and finish_reason "stop"; then, only when the client asked for
`stream_options.include_usage`, a usage chunk with `"choices": []` (and `"usage": null` on the others,
as OpenAI does).

An unregistered username makes ARGO stream its "AUTHENTICATION NOTICE FROM ARGO" text with status
200. The generators hold back the start of the text while it could still be that notice (nothing is
held once the text cannot be) and raise ProxyError(403) before yielding anything if it is: a pipeline
that pulls the first chunk before sending headers can still answer with a proper 403.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from argoproxy.meter import usage_block
from argoproxy.pipeline.stream_usage import OutputCount
from argoproxy.providers.argo.convert import AUTH_NOTICE, check_auth_notice, new_chat_id, new_completion_id

PSEUDO_PIECE_CHARS = 30  # argo-proxy's pseudo-stream slice size
_NOTICE = AUTH_NOTICE.upper()
_NOTICE_LEAD = " \t\r\n*#=-_>:![]()"  # decoration that may precede the notice


class _NoticeGate:
    """Holds text back only while the stream so far could still be the beginning of ARGO's auth notice."""

    def __init__(self) -> None:
        self._held = ""
        self._open = False

    def feed(self, text: str) -> str:
        if self._open:
            return text
        self._held += text
        probe = self._held.lstrip(_NOTICE_LEAD).upper()
        if probe.startswith(_NOTICE):
            check_auth_notice(self._held)  # raises the 403
        if not probe or _NOTICE.startswith(probe):
            return ""
        return self.release()

    def release(self) -> str:
        self._open = True
        held, self._held = self._held, ""
        return held


def decode_text(chunks: Iterable[bytes | str]) -> Iterator[str]:
    """Non-empty text pieces from raw byte chunks, never splitting a UTF-8 character.

    Invalid or truncated UTF-8 becomes U+FFFD rather than an exception mid-stream; str chunks pass through.
    Raises ProxyError(403) (before yielding) when the text is ARGO's auth notice.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    gate = _NoticeGate()
    for chunk in chunks:
        text = gate.feed(chunk if isinstance(chunk, str) else decoder.decode(chunk))
        if text:
            yield text
    tail = gate.feed(decoder.decode(b"", final=True)) + gate.release()
    if tail:
        yield tail


# ------------------------------------------------------------------------------ chat chunks


def _chunk(meta: Mapping[str, Any], object_name: str, choice: dict[str, Any]) -> dict[str, Any]:
    chunk = {
        "id": meta["id"],
        "object": object_name,
        "created": meta["created"],
        "model": meta["model"],
        "system_fingerprint": None,
        "choices": [choice],
    }
    if meta["include_usage"]:
        chunk["usage"] = None
    return chunk


def _chat_chunk(
    meta: Mapping[str, Any], delta: dict[str, Any], finish_reason: str | None, index: int = 0
) -> dict[str, Any]:
    return _chunk(meta, "chat.completion.chunk",
                  {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason})


def _usage_chunk(meta: Mapping[str, Any], object_name: str, usage: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "id": meta["id"],
        "object": object_name,
        "created": meta["created"],
        "model": meta["model"],
        "system_fingerprint": None,
        "choices": [],
        "usage": dict(usage) if usage else usage_block(0, 0),
    }


def _usage_after(meta: Mapping[str, Any], object_name: str, prompt_tokens: int,
                 output: OutputCount) -> Iterator[dict[str, Any]]:
    """The usage chunk that ends a stream, when the client asked for it (stream_options.include_usage)."""
    if meta["include_usage"]:
        yield _usage_chunk(meta, object_name, usage_block(prompt_tokens, output.total()))


def _meta(completion_id: str, created: int | None, model: str, include_usage: bool) -> dict[str, Any]:
    return {
        "id": completion_id,
        "created": created if created is not None else int(time.time()),
        "model": model,
        "include_usage": include_usage,
    }


def stream_chat_chunks(
    chunks: Iterable[bytes | str],
    *,
    model: str,
    prompt_tokens: int,
    include_usage: bool = False,
    completion_id: str | None = None,
    created: int | None = None,
) -> Iterator[dict[str, Any]]:
    """`chat.completion.chunk` dicts for ARGO's /streamchat/ body; `model` is the name the client sent."""
    meta = _meta(completion_id or new_chat_id(), created, model, include_usage)
    output = OutputCount()  # counted as it passes: the text itself is never kept (a stream of any length)
    first = True
    for text in decode_text(chunks):
        delta = {"role": "assistant", "content": text} if first else {"content": text}
        first = False
        output.add(text)
        yield _chat_chunk(meta, delta, None)
    if first:
        yield _chat_chunk(meta, {"role": "assistant", "content": ""}, None)
    yield _chat_chunk(meta, {}, "stop")
    yield from _usage_after(meta, "chat.completion.chunk", prompt_tokens, output)


# -------------------------------------------------------------------- legacy completion chunks


def _text_chunk(meta: Mapping[str, Any], text: str, finish_reason: str | None, index: int = 0) -> dict[str, Any]:
    return _chunk(meta, "text_completion",
                  {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason})


def stream_completion_chunks(
    chunks: Iterable[bytes | str],
    *,
    model: str,
    prompt_tokens: int,
    include_usage: bool = False,
    completion_id: str | None = None,
    created: int | None = None,
) -> Iterator[dict[str, Any]]:
    """`text_completion` chunk dicts for ARGO's /streamchat/ body (legacy /v1/completions streaming).

    finish_reason is null on text chunks and "stop" only on the final, empty one (the original put
    "stop" on every chunk).
    """
    meta = _meta(completion_id or new_completion_id(), created, model, include_usage)
    output = OutputCount()
    for text in decode_text(chunks):
        output.add(text)
        yield _text_chunk(meta, text, None)
    yield _text_chunk(meta, "", "stop")
    yield from _usage_after(meta, "text_completion", prompt_tokens, output)


