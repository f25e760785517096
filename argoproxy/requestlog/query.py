"""Reading the request log: a page of rows, newest first, and one request's details with its journal line."""

from __future__ import annotations

import json
import os
from typing import Any

from argoproxy.requestlog.redis_index import RedisIndex
from argoproxy.requestlog.rows import Cursor, Filters, LogRow, Page, check_limit, read_cursor
from argoproxy.requestlog.sqlite_index import SQLiteIndex

LINE_MOST = 64 * 1024 * 1024  # the longest journal line read back (a line holds two bodies of JOURNAL_BODY_BYTES)
Index = SQLiteIndex | RedisIndex


def index_of(store: Any) -> Index:
    """The request log of a key store (a FailoverStore's primary's): Redis's when it has a client, else SQLite's
    file."""
    store = getattr(store, "primary", store)
    redis = getattr(store, "redis", None)
    if redis is not None:
        return RedisIndex(redis)
    return SQLiteIndex(store.path)


def page(store: Any, filters: Filters, cursor: str | None, limit: int = 50) -> Page:
    """One page of rows, newest first, below `cursor` (the last page's; None: the newest). ValueError for a cursor
    this log did not give or a limit out of range."""
    index = store if isinstance(store, (SQLiteIndex, RedisIndex)) else index_of(store)
    after, limit = read_cursor(cursor), check_limit(limit)
    if isinstance(index, RedisIndex):
        rows, stopped = index.page(filters, after, limit)
        if stopped is not None and len(rows) < limit:  # the scan's bound, before the page filled
            return Page(rows, stopped.text())
    else:
        rows = index.page(filters, after, limit)
    return Page(rows, Cursor(rows[-1].time, rows[-1].request_id).text() if len(rows) == limit else None)


def detail(store: Any, request_id: str) -> dict[str, Any] | None:
    """A request's row and its journal line (its bodies where the journal kept them), None for no such request.
    `line` is None and `line_missing` says why when the line is no longer where the row says."""
    index = store if isinstance(store, (SQLiteIndex, RedisIndex)) else index_of(store)
    row = index.row(request_id)
    if row is None:
        return None
    line, missing = read_line(row)
    return {"row": row.as_dict(), "line": line, **({"line_missing": missing} if missing else {})}


def read_line(row: LogRow) -> tuple[Any, str]:
    """The journal line a row names, read at its offset and never beyond the file: (the parsed line, "") or (None,
    why not)."""
    if row.length <= 0 or row.length > LINE_MOST or row.offset < 0:
        return None, "the row names no line"
    try:
        with open(row.file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if row.offset + row.length > size:
                return None, "the journal no longer holds this line (it is shorter than the row says)"
            f.seek(row.offset)
            data = f.read(row.length)
    except OSError as exc:
        return None, f"the journal cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        line = json.loads(data) if data.endswith(b"\n") else None
    except ValueError:
        line = None
    if not isinstance(line, dict) or line.get("request_id") != row.request_id:
        return None, "the journal no longer holds this line (another is at its place)"
    return line, ""
