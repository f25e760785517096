"""Reading a server-sent event stream (text/event-stream) as a remote MCP server writes one, bounded: an event's
data, or a line, longer than the bound is refused whole (TooLarge), never held. The fields are the HTML
standard's: `data` (lines joined with a line break), `event` (the type: `message` unless named), `id` (the last
one seen is kept, also from an event without data: a 2025-11-25 server's first event) and `retry` (milliseconds);
a line starting with `:` is a comment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator


class TooLarge(Exception):
    """A line or an event's data longer than the reader's bound."""


@dataclass(frozen=True)
class Event:
    type: str
    data: bytes


class EventReader:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._partial: list[bytes] = []  # the line being read (split over chunks)
        self._partial_size = 0
        self._data: list[bytes] = []
        self._data_size = 0
        self._type = ""

    def events(self, chunks: Iterable[bytes]) -> Iterator[Event]:
        for chunk in chunks:
            yield from self.feed(chunk)

    def feed(self, chunk: bytes) -> Iterator[Event]:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:  # the rest is a line's beginning: kept (bounded) for the next chunk
                piece = chunk[start:]
                self._partial_size += len(piece)
                if self._partial_size > self.limit:
                    raise TooLarge(f"a line longer than {self.limit} bytes")
                if piece:
                    self._partial.append(piece)
                return
            line = chunk[start:end]
            if self._partial:
                line = b"".join((*self._partial, line))
                self._partial, self._partial_size = [], 0
            start = end + 1
            event = self._line(line[:-1] if line.endswith(b"\r") else line)
            if event is not None:
                yield event

    def _line(self, line: bytes) -> Event | None:
        if not line:  # a blank line dispatches the event (one without data is none)
            data, kind = b"\n".join(self._data), self._type or "message"
            self._data, self._data_size, self._type = [], 0, ""
            return Event(kind, data) if data else None
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data_size += len(value) + 1
            if self._data_size > self.limit:
                raise TooLarge(f"an event longer than {self.limit} bytes")
            self._data.append(value)
        elif name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"id" and b"\x00" not in value:
            self.last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)
        return None
