"""The request log's rows in Redis: each row a field of one hash (by request id, msgspec JSON), a sorted set of
the request ids by time, and one more per filter's value (by:key:NAME, by:model:NAME, ...), so a page filtered by
one column is one range read of its set, newest first. A page filtered by more than one column reads the most
selective-looking set (key, owner, session, model, door, status, in that order) and checks the others on the rows,
reading at most SCAN_MOST rows: a page cut short there still gives a cursor, where the next goes on."""

from __future__ import annotations

from typing import Any

import msgspec

from argoproxy.requestlog.rows import Cursor, Filters, LogRow

PREFIX = "cot_proxy:reqlog:"
ROWS, TIMES = PREFIX + "rows", PREFIX + "time"
ORDER = ("key", "owner", "session", "model", "door", "status")  # the set a filtered page reads, first found
SCAN_MOST = 5000  # rows read for one page at most
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(list).decode


def by(column: str, value: object) -> str:
    return f"{PREFIX}by:{column}:{value}"


def _sets(row: LogRow) -> list[str]:
    return [by(column, getattr(row, column)) for column in ORDER if getattr(row, column) not in ("", None)]


# A batch of rows in one step, its sets written by Redis: a pipeline of a ZADD per set and row cost the worker about
# 60 µs of redis-py's CPU a row. ARGV per row: its id, its time (as text: a Lua number is written with 14 digits),
# its JSON, how many sets hold it, their names.
ADD = """
local i = 1
while i <= #ARGV do
  local id, score, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3])
  redis.call('HSET', KEYS[1], id, ARGV[i + 2])
  redis.call('ZADD', KEYS[2], score, id)
  for j = 1, n do redis.call('ZADD', ARGV[i + 3 + j], score, id) end
  i = i + 4 + n
end
return 1
"""


class RedisIndex:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._add = redis.register_script(ADD)

    def add(self, rows: list[LogRow], most: int, prune: bool) -> None:
        args: list[Any] = []
        for row in rows:
            sets = _sets(row)
            args += [row.request_id, repr(row.time), _encode(row), len(sets), *sets]
        self._add(keys=[ROWS, TIMES], args=args)
        if prune:
            self._prune(most)

    def _prune(self, most: int) -> None:
        """The oldest rows past `most` removed, from the hash and from every set that holds them."""
        over = int(self.redis.zcard(TIMES)) - most
        if over <= 0:
            return
        ids = self.redis.zrange(TIMES, 0, over - 1)
        pipe = self.redis.pipeline(transaction=False)
        for rid, found in zip(ids, self.redis.hmget(ROWS, ids)):
            if found is not None:
                for name in _sets(LogRow(*_decode(found))):
                    pipe.zrem(name, rid)
        pipe.zrem(TIMES, *ids)
        pipe.hdel(ROWS, *ids)
        pipe.execute()

    def page(self, filters: Filters, after: Cursor | None, limit: int) -> tuple[list[LogRow], Cursor | None]:
        """Rows newest first, and where the scan stopped when SCAN_MOST rows were read before the page filled."""
        equal = dict(filters.equal())
        column = next((c for c in ORDER if c in equal), None)
        source = by(column, equal[column]) if column is not None else TIMES
        high: Any = after.time if after is not None else (filters.until if filters.until is not None else "+inf")
        low: Any = filters.since if filters.since is not None else "-inf"
        found: list[LogRow] = []
        read, start, scanned = 0, 0, after
        while read < SCAN_MOST:
            chunk = max(limit * 2, 100)
            ids = self.redis.zrevrangebyscore(source, high, low, start=start, num=chunk)
            if not ids:
                return found, None
            start += len(ids)
            for raw in self.redis.hmget(ROWS, ids):
                read += 1
                if raw is None:
                    continue
                row = LogRow(*_decode(raw))
                if after is not None and (row.time, row.request_id) >= tuple(after):
                    continue
                scanned = Cursor(row.time, row.request_id)
                if filters.admits(row):
                    found.append(row)
                    if len(found) == limit:
                        return found, None
            if len(ids) < chunk:
                return found, None
        return found, scanned

    def row(self, request_id: str) -> LogRow | None:
        raw = self.redis.hget(ROWS, request_id)
        return LogRow(*_decode(raw)) if raw is not None else None

    def count(self) -> int:
        return int(self.redis.zcard(TIMES))
