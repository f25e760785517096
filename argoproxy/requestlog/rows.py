"""A request log row, the filters a page is asked with and the cursor that continues it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

MAX_LIMIT = 500  # the most rows a page holds


class LogRow(NamedTuple):
    """One journal line's row. `owner`: the key's owner (a person's id; "" for a service key or none); `door`: the
    API the client spoke (the call's front); `cost` in nano-dollars; `file`, `offset`, `length`: where the journal
    line is."""
    time: float
    request_id: str
    key: str
    owner: str
    model: str
    status: int
    door: str
    session: str
    input_tokens: int
    output_tokens: int
    cost: int
    file: str
    offset: int
    length: int

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


FILTERED = ("owner", "key", "model", "status", "door", "session")  # the columns a page may be filtered by


@dataclass(frozen=True)
class Filters:
    """What a page is filtered by: each given column equal, and the time within [since, until)."""
    owner: str | None = None
    key: str | None = None
    model: str | None = None
    status: int | None = None
    door: str | None = None
    session: str | None = None
    since: float | None = None
    until: float | None = None

    def equal(self) -> list[tuple[str, Any]]:
        """(column, value) of each column asked for."""
        return [(name, getattr(self, name)) for name in FILTERED if getattr(self, name) is not None]

    def admits(self, row: LogRow) -> bool:
        return all(getattr(row, name) == value for name, value in self.equal()) and \
            (self.since is None or row.time >= self.since) and (self.until is None or row.time < self.until)


@dataclass(frozen=True)
class Page:
    rows: list[LogRow]
    cursor: str | None  # the next page's cursor; None: no more rows


class Cursor(NamedTuple):
    """Where a page ends: the last row's time and request id (the next page starts below it)."""
    time: float
    request_id: str

    def text(self) -> str:
        return f"{self.time!r}~{self.request_id}"


def read_cursor(text: str | None) -> Cursor | None:
    """A page's cursor as a client sent it back; ValueError for one this module did not make."""
    if not text:
        return None
    when, sep, request_id = text.partition("~")
    try:
        at = float(when)
    except ValueError:
        at = math.nan
    if not sep or not math.isfinite(at) or not request_id or len(request_id) > 128 or not request_id.isascii() \
            or not request_id.isprintable():
        raise ValueError("cursor: not one this log gave")
    return Cursor(at, request_id)


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: 1 to {MAX_LIMIT}")
    return limit
