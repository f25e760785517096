"""JSON encoding and decoding used on the request path (compact, UTF-8, bytes out)."""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


_ascii_encoder = json.JSONEncoder(separators=(",", ":"))


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; text holding a lone surrogate (valid in JSON as "\\ud800", not in UTF-8) is
    encoded with \\u escapes instead, so it goes on as the client wrote it."""
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
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None
