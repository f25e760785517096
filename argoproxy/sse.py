"""Server-sent events: splitting upstream bytes into events as they arrive, and encoding events for the client."""

from __future__ import annotations

from argoproxy.jsonfast import dumps
from typing import Any, Iterable, Iterator

DONE = b"data: [DONE]\n\n"


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines (without their line ending) from byte chunks of any size, each yielded as soon as it is complete."""
    tail = b""
    for chunk in chunks:
        if not chunk:
            continue
        if tail:
            chunk = tail + chunk
        lines = chunk.split(b"\n")
        tail = lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if tail:
        yield tail.rstrip(b"\r")


def iter_events(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """Events as lists of their lines (an event ends at a blank line; the last one may end at EOF)."""
    lines: list[bytes] = []
    for line in iter_lines(chunks):
        if line:
            lines.append(line)
        elif lines:
            yield lines
            lines = []
    if lines:
        yield lines


def event_data(lines: list[bytes]) -> bytes | None:
    """The data of an event: its `data:` lines joined (None when it has none, e.g. a `: ping` comment)."""
    data = [line[6:] if line[5:6] == b" " else line[5:] for line in lines if line.startswith(b"data:")]
    if not data:
        return None
    return data[0] if len(data) == 1 else b"\n".join(data)


def encode(obj: dict[str, Any]) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def encode_raw(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n\n"
