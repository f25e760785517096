"""JSON encoding and decoding used on the request path (compact, UTF-8, bytes out).

msgspec does the work, several times faster than the standard library (a 5 MiB translated request body:
about 9 -> 1.4 ms to encode ASCII text, 39 -> 8 ms with escapes and non-ASCII; an SSE chunk: about 3.4 -> 0.3 µs
to encode, 3.2 -> 1.0 µs to decode), and the standard library decides wherever the two would differ, so every
caller sees `json`'s behaviour:
- decoding: msgspec is the stricter reader (it refuses NaN and Infinity, lone surrogate escapes, a byte-order
  mark, numbers out of a float's range, nesting past its limit); what it refuses, `json` reads or refuses.
  What it reads it reads as `json` does (integers of any length exact, the last of a repeated key).
- encoding: msgspec refuses text with lone surrogates (not UTF-8) and nesting past its limit; those go to
  `json`. It writes exponents as `1e16` where `json` writes `1e+16` (the same number), and NaN and Infinity as
  null where `json` writes the non-JSON `NaN`: so the NaN, Infinity and -Infinity (and 1e400) that `json` reads
  are read as `NonFinite`, a float msgspec refuses to write, and an upstream's `"logprob": -Infinity` goes on
  as `-Infinity` whether or not the proxy re-encoded its event (it went on as null when the think filter or a
  front door had parsed it, while the events beside it kept `-Infinity`).
- msgspec also writes what `json` refuses (sets, bytes, enums, dates, dataclasses) and writes float keys its
  own way (`1e16`, `nan`); dumps is meant for JSON-shaped values only: what loads read, and the dicts and lists
  of str, int, float, bool and None the proxy builds.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

_decoder = msgspec.json.Decoder()
_fast_encoder = msgspec.json.Encoder()
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ascii_encoder = json.JSONEncoder(separators=(",", ":"))


class NonFinite(float):
    """NaN or an infinity read from JSON text: a float like any other, which msgspec refuses to encode (a float
    subclass), so dumps writes it through `json` as `NaN`, `Infinity` or `-Infinity`, as it was read."""

    __slots__ = ()


def _constant(name: str) -> float:
    return NonFinite(name)  # "NaN", "Infinity", "-Infinity": float() reads all three


def _float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(value)  # 1e400


class Encoded(dict[str, Any]):
    """A JSON object whose encoding was made already (`raw`, dumps's own), which dumps writes as it is: an answer
    the proxy keeps (a stored response) is encoded once for the store and for its client."""

    __slots__ = ("raw",)

    def __init__(self, obj: dict[str, Any], raw: bytes) -> None:
        super().__init__(obj)
        self.raw = raw


# A str's JSON, for a str msgspec read (valid UTF-8, no lone surrogate: dumps's fallbacks are never needed), on a
# path where a call to dumps costs more than the encoding.
encode_read_text = _fast_encoder.encode


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; text holding a lone surrogate (valid in JSON as "\\ud800", not in UTF-8) is
    encoded with \\u escapes instead, so it goes on as the client wrote it."""
    if type(obj) is Encoded:
        return obj.raw
    try:
        return _fast_encoder.encode(obj)
    except (msgspec.EncodeError, UnicodeEncodeError, TypeError, OverflowError, RecursionError):
        pass
    text = _encoder.encode(obj)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _ascii_encoder.encode(obj).encode()


def loads(data: bytes | str) -> Any:
    """json.loads; a text nested too deeply to parse is a ValueError like any other invalid JSON (Python's parser
    raises RecursionError past about 1,000 levels, and an upstream, or a model writing tool arguments, can send
    that: it was a 500 wherever the caller caught only ValueError)."""
    try:
        return _decoder.decode(data)
    except (ValueError, RecursionError, TypeError):  # msgspec.DecodeError is a ValueError
        pass
    try:
        return json.loads(data, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None
