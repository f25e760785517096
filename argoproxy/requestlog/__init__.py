"""The request log: an index of the journal's lines in the key store, so that a page of requests (by person, key,
model, status, door, session and time) is read without reading the journal, and a request's line is found by its
offset (docs/journals.md, "The request log").

- rows.py: what one row holds (LogRow), the filters a page takes and its cursor (keyset pagination, newest first).
- writer.py: RequestIndex, the journal writer's side: a row queued per journal line, written in batches every
  FLUSH_SECONDS off the requests' path, the oldest removed past REQUEST_LOG_ROWS.
- sqlite_index.py, redis_index.py: the rows in the key store (a table in KEYS_DB; sorted sets and a hash in Redis).
- query.py: `page(store, filters, cursor, limit=50)` and `detail(store, request_id)` (the row and its journal line,
  read at its offset, never beyond the file).

A key store is read by its shape (a SQLite store's `path`, a Redis store's `redis`), so this room needs nothing of
teamkeys/.

May import: the shared modules, config.
"""

from argoproxy.requestlog.query import detail, index_of, page
from argoproxy.requestlog.rows import Filters, LogRow, Page
from argoproxy.requestlog.writer import RequestIndex

__all__ = ["Filters", "LogRow", "Page", "RequestIndex", "detail", "index_of", "page"]
