"""A long request body's top-level members as the client wrote them, so that a proxy that changes a few of them
(the model, the user, stream options) sends the others as they came.

Encoding a parsed body again costs more than parsing it (a 5 MB context: 11 ms against 4 with the json
module), and most of a long body is one member (`messages`, `input`) that nothing changed. The members are
found only when the body is encoded again: msgspec reads the top level with each value left as its `Raw`
bytes, a view of the client's (no copy). Bodies that msgspec did not read (edge/msgspec_body.py: other
encodings, lone surrogates) have none and are encoded whole.
"""

from __future__ import annotations

from typing import Any, Iterable

import msgspec

from argoproxy.jsonfast import dumps

# Shorter bodies are encoded again whole when they change: well under a tenth of a millisecond.
MEMBERS_FROM = 64 * 1024

_RAW_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])


class Members:
    """The top-level members of a long body that msgspec read, found when asked for."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def pieces(self) -> dict[str, msgspec.Raw]:
        """Each top-level key's value as written in the body."""
        return _RAW_MEMBERS.decode(self.raw)


def encode_members(members: Members, body: dict[str, Any], touched: Iterable[str]) -> bytes:
    """`body` as JSON: members not in `touched` as the client wrote them, the rest encoded."""
    fresh = set(touched)
    pieces = members.pieces()
    parts: list[Any] = [b"{"]
    for key, value in body.items():
        piece = None if key in fresh else pieces.get(key)
        parts += (dumps(key), b":", piece if piece is not None else dumps(value), b",")
    if len(parts) > 1:
        parts[-1] = b"}"  # in place of the last comma
    else:
        parts.append(b"}")
    return b"".join(parts)
