"""Server-sent events: splitting upstream bytes into events as they arrive, and encoding events for the client."""

from __future__ import annotations

import time
from itertools import chain
from typing import Any, Iterable, Iterator

from argoproxy.errors import ProxyError
from argoproxy.jsonfast import dumps, loads
from argoproxy.turns import turn

DONE = b"data: [DONE]\n\n"
DEFAULT_MAX_EVENT = 16 * 1024 * 1024  # MAX_SSE_EVENT_BYTES' default


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


class EventSplitter:
    """Splits byte chunks into whole events (each returned as its bytes, ending in a blank line).

    Upstreams usually write one event per chunk; such a chunk is returned as it is, without being split
    into lines, which keeps relaying cheap. Anything else goes through the line splitter."""

    __slots__ = ("tail", "scanned", "max_event")

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT) -> None:
        self.tail = bytearray()  # an unfinished event, grown in place (not copied whole on every chunk)
        self.scanned = 0  # how much of the tail is known to hold no blank line
        self.max_event = max_event

    def feed(self, chunk: bytes) -> list[bytes]:
        if not self.tail and chunk.endswith(b"\n\n") and chunk.find(b"\n\n") == len(chunk) - 2 \
                and b"\r" not in chunk and len(chunk) <= self.max_event:
            return [chunk]
        tail = self.tail
        tail += chunk
        # A blank line may straddle the old end (3 bytes at most of a 4-byte "\r\n\r\n" before it).
        end, size = _event_end(tail, max(0, self.scanned - 3))
        if end < 0:
            if _over(tail, self.max_event):  # an event that never ends must not fill the worker's memory
                self.tail, self.scanned = bytearray(), 0
                raise event_too_large(self.max_event)
            self.scanned = len(tail)
            return []
        data = bytes(tail)
        whole = len(data) <= self.max_event  # no event in it can be over the limit
        if b"\r" not in data:  # only `\n\n` ends an event: a block is its lines already, bar one leading \n
            blocks = data.split(b"\n\n")
            rest = blocks.pop()
            events = [block.lstrip(b"\n") + b"\n\n" for block in blocks if block.strip(b"\n")]
            if not whole:
                self._within_limit(events)
            return self._keep(rest, events)
        events, pos = [], 0
        ends = _EventEnds(data)
        while end >= 0:
            block = data[pos:end]
            pos = end + size
            lines = _lines(block)
            if lines:
                events.append(encode_raw(lines))
                if not whole:
                    self._within_limit(events)
            end, size = ends.first(pos)
        return self._keep(data[pos:], events)

    def _within_limit(self, events: list[bytes]) -> None:
        """A whole event that came in one chunk is held to the limit too (a chunk's size is the upstream's); the
        events before it in the chunk go first (EventTooLarge.before)."""
        for i, event in enumerate(events):
            if len(event) > self.max_event + 2:  # its blank line not counted
                self.tail, self.scanned = bytearray(), 0
                raise EventTooLarge(self.max_event, events[:i])

    def _keep(self, rest: bytes, events: list[bytes]) -> list[bytes]:
        """`events`, keeping `rest` (the start of the next event) for the next chunk."""
        if _over(rest, self.max_event):
            self.tail, self.scanned = bytearray(), 0
            raise event_too_large(self.max_event)
        self.tail = bytearray(rest)
        self.scanned = len(rest)
        return events

    def finish(self) -> list[bytes]:
        """The last event when the stream ended without its blank line."""
        tail, self.tail, self.scanned = bytes(self.tail), bytearray(), 0
        lines = [line for line in _lines(tail) if line.strip()]
        return [encode_raw(lines)] if lines else []


def _over(start: bytes | bytearray, limit: int) -> bool:
    """Is an event begun (`start`) over the limit already? The line ends before it (the end of the blank line
    before it, split off by the chunking) are not its bytes."""
    return len(start) > limit and len(start.lstrip(b"\r\n")) > limit


def _lines(block: bytes) -> list[bytes]:
    """The non-empty lines of a block, each line ended by CRLF, LF or CR."""
    return [line for line in block.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n") if line]


def event_too_large(limit: int) -> ProxyError:
    return EventTooLarge(limit)


class EventTooLarge(ProxyError):
    """An upstream event over MAX_SSE_EVENT_BYTES; `before`: the whole events that came ahead of it in the same
    chunk, still the client's."""

    def __init__(self, limit: int, before: list[bytes] | None = None) -> None:
        super().__init__(502, f"An upstream stream event is larger than MAX_SSE_EVENT_BYTES ({limit} bytes).",
                         code="upstream_event_too_large")
        self.before = before or []


def split_events(chunks: Iterable[bytes], stall_seconds: float, max_event: int = DEFAULT_MAX_EVENT) -> Iterator[bytes]:
    """Whole events from upstream byte chunks, each within `stall_seconds` of the previous one: the per-read
    timeout alone lets a server that drips bytes without ever finishing an event hold a stream forever.
    Time the consumer spends with an event already yielded does not count. Raises TimeoutError on a stall
    and ProxyError(502) for an event over `max_event` bytes."""
    splitter = EventSplitter(max_event)
    since = time.monotonic()
    chunks = _without_bom(chunks)
    unpaused, unpaused_bytes = 0, 0  # events and bytes since the worker's other requests last had a turn
    for chunk in chunks:
        if time.monotonic() - since > stall_seconds:
            raise TimeoutError(f"no complete event within {stall_seconds:g}s")
        try:
            events = splitter.feed(chunk)
        except EventTooLarge as err:
            yield from err.before
            raise
        unpaused_bytes += len(chunk)
        if events:
            unpaused += len(events)
            if unpaused < TURN_EVERY and unpaused_bytes < TURN_BYTES:
                yield from events
            else:
                yield from _with_turns(events)
                unpaused, unpaused_bytes = 0, 0
            since = time.monotonic()
    yield from splitter.finish()


# Events between two turns given to the worker's other requests: an upstream flooding events a door turns into
# nothing for its client (comments, empty deltas, reasoning not asked for) never waits on a socket, and one such
# stream held a gevent worker for 33 s (the relay gives turns only for what it sends).
TURN_EVERY = 64
# ... or bytes: 64 events of 64 KB held a worker's other connections for a second at a time.
TURN_BYTES = 1 << 20


def _with_turns(events: list[bytes]) -> Iterator[bytes]:
    """The events, with a turn for the worker's other requests every TURN_EVERY of them (argoproxy/turns.py)."""
    for n, event in enumerate(events, 1):
        yield event
        if not n % TURN_EVERY:
            turn()
    turn()


def _without_bom(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The stream without the UTF-8 byte-order mark it may open with (the SSE grammar drops it; left, it made
    the first event a line no reader knows)."""
    pieces = iter(chunks)
    head = b""
    for chunk in pieces:
        head += chunk
        if len(head) >= 3 or not BOM.startswith(head):
            break
    return chain((head[3:] if head.startswith(BOM) else head,), pieces)  # chain: no Python step per event


BOM = b"\xef\xbb\xbf"


def _event_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """Where the first event of data (from `start`) ends, and the length of the blank line that ends it."""
    best = (-1, 0)
    for sep in _SEPARATORS:
        i = data.find(sep, start)
        if i >= 0 and (best[0] < 0 or i < best[0]):
            best = (i, len(sep))
    return best


class _EventEnds:
    """The blank lines of one buffer in order. Where each kind of blank line next occurs is remembered, so
    that a kind the upstream does not use (`\n\n` in a `\r\n` stream) is not searched for to the end of the
    buffer again after every event: many events in one chunk took time quadratic in their number."""

    __slots__ = ("data", "next")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.next = {sep: -2 for sep in _SEPARATORS}  # -2: not searched yet; -1: none left

    def first(self, start: int) -> tuple[int, int]:
        best = (-1, 0)
        for sep, at in self.next.items():
            if at == -2 or 0 <= at < start:
                at = self.next[sep] = self.data.find(sep, start)
            if at >= 0 and (best[0] < 0 or at < best[0]):
                best = (at, len(sep))
        return best


# Every blank line: two line ends in a row, each CRLF, LF or CR (the SSE grammar), in any mix. Where two start at
# the same place the longer comes first and is taken (LF CRLF before LF CR); a bare LF left over by a shorter
# one starts the next event's text as an empty line, which is dropped.
_SEPARATORS = (b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n", b"\r\n\n", b"\n\r")


def block_data(block: bytes) -> bytes | None:
    """The data of an event given as its bytes."""
    return event_data([line for line in block.split(b"\n") if line])


def event_data(lines: list[bytes]) -> bytes | None:
    """The data of an event: its `data:` lines joined (None when it has none, e.g. a `: ping` comment)."""
    data = [line[6:] if line[5:6] == b" " else line[5:] for line in lines if line.startswith(b"data:")]
    if not data:
        return None
    return data[0] if len(data) == 1 else b"\n".join(data)


def sse_object(item: bytes) -> dict[str, Any] | None:
    """The JSON object an SSE event's data holds; None for a comment, [DONE] or anything not an object."""
    if item.startswith(b"data: ") and item.find(b"\n", 6) == len(item) - 2 and item.endswith(b"\n\n"):
        data: bytes | None = item[6:-2]  # the usual event, one data line: what the general path finds, sooner
    else:
        data = event_data([line for line in item.split(b"\n") if line])
    if data is None:
        return None
    try:
        obj = loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def encode(obj: dict[str, Any]) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def encode_raw(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n\n"
