"""A long request body's top-level members as the client wrote them, so that a proxy that changes a few of them
(the model, the user, stream options) sends the others as they came.

Encoding a parsed body again costs more than parsing it (a 5 MB context: 11 ms against 4 with the json
module), and most of a long body is one member (`messages`, `input`) that nothing changed. The members are
found only when the body is encoded again: msgspec reads the top level with each value left as its `Raw`
bytes, a view of the client's (no copy). That reading still walks the whole text (a 5 MB context: 1.3 ms), so
where the proxy only added members after those the client wrote (ARGO's `user`, stream options), the client's
bytes are sent as they came with the new members after them, and nothing is read again. Bodies that msgspec did
not read (edge/msgspec_body.py: other encodings, lone surrogates) have none and are encoded whole.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterable

import msgspec

from argoproxy.jsonfast import dumps

# Shorter bodies are encoded again whole when they change: well under a tenth of a millisecond.
MEMBERS_FROM = 64 * 1024

_RAW_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])


class Members:
    """The top-level members of a long body that msgspec read, found when asked for."""

    __slots__ = ("raw", "keys")

    def __init__(self, raw: bytes, keys: tuple[str, ...]) -> None:
        self.raw = raw
        self.keys = keys  # the top-level keys as written, in order

    def pieces(self) -> dict[str, msgspec.Raw]:
        """Each top-level key's value as written in the body."""
        return _RAW_MEMBERS.decode(self.raw)


def encode_members(members: Members, body: dict[str, Any], touched: Iterable[str]) -> bytes:
    """`body` as JSON: members not in `touched` as the client wrote them, the rest encoded."""
    fresh = set(touched)
    written = members.keys
    if fresh.isdisjoint(written) and tuple(islice(body, len(written))) == written:
        return _appended(members.raw, written, body)
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


def _appended(raw: bytes, written: tuple[str, ...], body: dict[str, Any]) -> bytes:
    """The client's object with the members of `body` after its `written` ones added before its closing brace
    (the last `}` of the text: only whitespace may follow it)."""
    added = list(islice(body.items(), len(written), None))
    parts: list[Any] = [memoryview(raw)[:raw.rindex(b"}")]]  # a view: the join copies the text once
    for i, (key, value) in enumerate(added):
        parts += (b"," if written or i else b"", dumps(key), b":", dumps(value))
    parts.append(b"}")
    return b"".join(parts)
