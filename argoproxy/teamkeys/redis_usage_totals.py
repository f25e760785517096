"""The console's usage sums on Redis (usage_totals.py has SQLite's): the usage rows are one hash of counters (a
field per row and count), read in bounded HSCAN steps (one HGETALL of 400,000 fields outlives a round trip's
deadline), kept by each process for CACHE_SECONDS and summed in Python. At 100,000 rows the read takes seconds
(bench/console.py), so on Redis the console's usage is up to CACHE_SECONDS old."""

from __future__ import annotations

import threading
import time
from typing import Any

from argoproxy.teamkeys.redis_records import PREFIX, SEP
from argoproxy.teamkeys.usage_totals import Row, Total, summed_rows

CACHE_SECONDS = 30.0
SCAN_COUNT = 2_000


class RedisUsageTotals:
    redis: Any
    _usage_cache: tuple[float, list[Row]] | None = None
    _sums: dict[tuple[Any, ...], dict[str, list[int]]] = {}
    _usage_lock = threading.Lock()

    def usage_rows(self, since: str = "") -> list[Row]:
        """Every usage row (this process's copy, at most CACHE_SECONDS old) from `since`."""
        with self._usage_lock:
            cached = self._usage_cache
            if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
                cached = self._usage_cache = (time.monotonic(), self._scan_usage())
        return [row for row in cached[1] if row[2] >= since]

    def _scan_usage(self) -> list[Row]:
        counted: dict[tuple[str, str, str], dict[str, int]] = {}
        for field, number in self.redis.hscan_iter(PREFIX + "usage", count=SCAN_COUNT):
            row, _, what = field.rpartition(SEP)
            day, name, model = row.split(SEP, 2)
            counted.setdefault((day, name, model), {})[what] = int(number)
        return [(name, model, day, c.get("requests", 0), c.get("input", 0), c.get("output", 0), c.get("cost", 0),
                 c.get("unpriced", 0)) for (day, name, model), c in sorted(counted.items())]

    def usage_totals(self, group: str, since: str = "", key: str | None = None, model: str | None = None,
                     after: str = "", limit: int = 50) -> list[Total]:
        rows = self.usage_rows(since)
        read_at = self._usage_cache[0] if self._usage_cache is not None else 0.0
        asked = (read_at, group, since, key, model)  # the rows of that read, summed so
        summed = self._sums.get(asked)
        if summed is None:
            summed = summed_rows(rows, group, key, model)
            self._sums = {asked: summed}  # the last sum only: the next page of the same list reads it
        newest = group == "day"
        ordered = sorted(summed, reverse=newest)
        if after:
            ordered = [v for v in ordered if (v < after if newest else v > after)]
        return [(v, *summed[v]) for v in ordered[:limit]]  # type: ignore[misc]
