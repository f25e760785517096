"""How many times a byte occurs in a request body (or a character in one of its strings), fast on long texts
where it is rare.

A text at least FIND_FROM long is counted by jumping from one occurrence to the next (find is memchr, about
0.06 ms for 5 MB) rather than by count (a byte-by-byte loop, 1.5-3 ms for 5 MB): a long context or a base64
image is mostly text between few brackets and colons. Dense texts fall back to count after SPARSE_PER_BYTE of
them.
"""

from __future__ import annotations

from typing import TypeVar

Text = TypeVar("Text", bytes, str)

FIND_FROM = 256 * 1024
SPARSE_PER_BYTE = 1 / 4096


def count_byte(raw: Text, byte: Text) -> int:
    """How many times `byte` (one byte, or one character of a str) occurs in `raw`."""
    if len(raw) < FIND_FROM:
        return raw.count(byte)
    cap = int(len(raw) * SPARSE_PER_BYTE)
    find = raw.find
    count, at = 0, find(byte)
    while at >= 0:
        count += 1
        if count > cap:  # dense after all: one byte-by-byte pass costs less than more jumps
            return raw.count(byte)
        at = find(byte, at + 1)
    return count


def brackets(raw: bytes) -> int:
    """How many `{` and `[` a text holds (inside strings too)."""
    return count_byte(raw, b"{") + count_byte(raw, b"[")
