"""Most of a chat stream's events carry text alone: read straight from the upstream's bytes to that text, no
chunk built. A door's stream that takes such text as it is (Front.plain_texts) is handed the str instead of the
chunk (serve.FrontAnswers.chunks); every other event is read as before (answer_shape.event_chunk), and decides.

An event is read so only when the general reading would find the same: one `data: ` line of at most
CHECKED_FROM bytes, holding a chunk that answer_shape.plain_text takes (one choice, index 0, no finish reason, a
delta of non-empty `content` and at most `role`, no usage) and no `error`. The decoder reads only those fields
into a typed shape, skipping the rest (ids, model, created...), which costs about half of building the chunk and
reading it after; anything it does not take (a field of another type, a key the delta must not have, JSON that
msgspec refuses and the standard library might read) is None here, and is read the general way."""

from __future__ import annotations

from typing import Any

import msgspec

from argoproxy.pipeline.answer_shape import CHECKED_FROM

HEAD = b"data: "
# Events that are not plain text tried in a row, past those that were, before a stream stops trying (an upstream
# whose deltas always carry more, `"reasoning_content": null` say, would pay for each try).
MISSES = 4


# gc=False: the few objects a read builds hold no containers, so the collector need not track them.
class _Delta(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    content: str
    role: Any = None


class _Choice(msgspec.Struct, gc=False):
    delta: _Delta
    index: int = 0
    finish_reason: None = None


class _Chunk(msgspec.Struct, gc=False):
    choices: list[_Choice]
    usage: None = None
    error: msgspec.UnsetType = msgspec.UNSET  # any `error` (null too) is the general reading's


_decoder = msgspec.json.Decoder(_Chunk)


def plain_text(item: bytes) -> str | None:
    """The text of an upstream event that carries text alone, else None."""
    # one line, then the blank one: its first newline is the last byte but one, and the last byte is one too
    if item.find(b"\n") != len(item) - 2 or item[-1] != 10 or not item.startswith(HEAD) or len(item) > CHECKED_FROM:
        return None
    try:
        choices = _decoder.decode(item[6:-2]).choices  # a slice's copy costs less than a memoryview over it
    except (ValueError, RecursionError):  # msgspec's DecodeError and ValidationError, bad UTF-8, deep nesting
        return None
    if len(choices) != 1 or choices[0].index != 0:
        return None
    return choices[0].delta.content or None
