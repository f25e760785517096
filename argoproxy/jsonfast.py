"""JSON encoding and decoding used on the request path (compact, UTF-8, bytes out)."""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(obj: Any) -> bytes:
    return _encoder.encode(obj).encode()


def loads(data: bytes | str) -> Any:
    return json.loads(data)
