"""Most of a chat stream's events carry text alone: read straight from the upstream's bytes to that text, no
chunk built. A door's stream that takes such text as it is (Front.plain_texts) is handed the str instead of the
chunk (serve.FrontAnswers.chunks); every other event is read as before (answer_shape.event_chunk), and decides.

An event is read so only when the general reading would find the same: one `data: ` line of at most
CHECKED_FROM bytes, holding a chunk that answer_shape.plain_text takes (one choice, index 0, no finish reason, a
delta of non-empty `content` and at most `role`, no usage) and no `error`. The decoder reads only those fields
into a typed shape, skipping the rest (ids, model, created...), which costs about half of building the chunk and
reading it after; anything it does not take (a field of another type, a key the delta must not have, JSON that
msgspec refuses and the standard library might read) is None here, and is read the general way.

Most upstreams write each text event of a stream alike but for its text (the same id, created and model), so a
stream's reader (PlainReader) learns the bytes around the text of one event it read so, and reads a later event
made of those bytes around one JSON string as that string alone: about half the cost again."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from argoproxy.jsonfast import encode_read_text
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
    body = item[6:-2]  # a slice's copy costs less than a memoryview over it
    try:
        if not body.isascii():
            body.decode()  # msgspec skips the fields it is not asked for unread: bytes that are not UTF-8 too
        choices = _decoder.decode(body).choices
    except (ValueError, RecursionError):  # msgspec's DecodeError and ValidationError, bad UTF-8, deep nesting
        return None
    if len(choices) != 1 or choices[0].index != 0:
        return None
    return choices[0].delta.content or None


_string = msgspec.json.Decoder(str)
PROBE = b'"\\u0001"'  # a string no upstream's text event is: "\x01"
TRIES = 2  # places of the text's string tried, from the last
LEARNS = 2  # templates a stream may learn (the first text event may carry its role, the next ones not)


class PlainReader:
    """plain_text for the events of one stream (`read`), through a template once one is learned: the bytes before
    an event's text (`head`) and after it (`tail`). An event that is head, one JSON string, then tail, is the event
    learned from with another string in the place of its text, which the general reading reads as that string
    alone (the place is proven to be the text's: the learned event with PROBE there reads as PROBE's text)."""

    __slots__ = ("head", "tail", "start", "end", "learns")

    def __init__(self) -> None:
        self.head: bytes | None = None  # with the string's opening quote (and the tail with its closing one)
        self.tail = b""
        self.start = self.end = 0  # where the string (its quotes too) begins, and its end from the event's end
        self.learns = LEARNS

    def read(self, item: bytes) -> str | None:
        head = self.head
        if head is not None and item.startswith(head) and item.endswith(self.tail) and len(item) <= CHECKED_FROM:
            try:  # between the quotes: one string alone (no whitespace, so no line break, around it)
                return _string.decode(item[self.start:len(item) - self.end]) or None
            except ValueError:  # not one string, not UTF-8, a lone surrogate: read the general way
                pass
        text = plain_text(item)
        if text is not None:  # a text event the template did not fit: another one learned, or none kept
            if self.learns:
                self.learn(item, text)
            else:
                self.head = None
        return text

    def learn(self, item: bytes, text: str) -> None:
        """The template of an event plain_text read as `text`, when its place is proven: the text's string as the
        upstream most likely wrote it (one JSON string reading as the text), found with no backslash before it (a
        string begun before it would go on), and the event with PROBE in its place reads as PROBE's text. Then the
        bytes around it lex alike around any one string: the same event but for that string."""
        self.learns -= 1
        self.head = None
        if text == "\x01":
            return
        for token in {encode_read_text(text), json.dumps(text).encode()}:  # as UTF-8, or with \u escapes
            start = len(item)
            for _ in range(TRIES):  # the last ones (the same string may be the model's name too)
                start = item.rfind(token, len(HEAD), start)
                end = start + len(token)
                if start < 0:
                    break
                if item[start - 1] != 92 and plain_text(item[:start] + PROBE + item[end:]) == "\x01":
                    self.head, self.tail = item[:start + 1], item[end - 1:]
                    self.start, self.end = start, len(item) - end
                    return
