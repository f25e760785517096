"""What the status page draws of spend: nano-dollars per minute over the last hour, per team key and per model, in
the workers' shared cells (one instance), so every worker's page shows the same.

Fixed size whatever the traffic: SLOTS names (keys and models together), each with its name and MINUTES buckets. A
name unseen for an hour gives its slot up; past SLOTS names in an hour, spend is drawn under "other".
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from argoproxy.shared_cells import SharedCells

MINUTES = 60
SLOTS = 128
PROBES = 16
NAME_CELLS = 8  # a name's first 64 bytes (UTF-8)
HEAD = 3 + NAME_CELLS  # tag, kind, the name's length, the name
WIDTH = HEAD + 2 * MINUTES  # then (minute, nano-dollars) per bucket
KINDS = {"key": 1, "model": 2}
OTHER = "other"


class SpendHistory:
    def __init__(self, cells: SharedCells | None = None, guard: SharedCells | None = None) -> None:
        # v2: written under the status page's one lock (`guard`, the load history's), not a lock of its own
        self.cells = cells or SharedCells("status-spend-v2.cells", SLOTS * WIDTH, guard=guard)
        self._tags: dict[tuple[str, str], tuple[int, int]] = {}  # (kind, name) -> (tag, the slot last found)

    def add(self, key: str, model: str, nanos: int, now: float | None = None) -> None:
        if nanos > 0:
            with self.cells.lock():
                self.count(key, model, nanos, now)

    def count(self, key: str, model: str, nanos: int, now: float | None = None) -> None:
        """add(), for a caller that holds the cells' lock."""
        c, minute = self.cells.cells, int((time.time() if now is None else now) // 60)
        for kind, name in (("key", key), ("model", model)):
            slot = self._slot(c, kind, name, minute)
            if slot is None:
                slot = self._slot(c, kind, OTHER, minute)
            if slot is None:
                continue
            bucket = slot + HEAD + 2 * (minute % MINUTES)
            if c[bucket] != minute:
                c[bucket], c[bucket + 1] = minute, 0
            c[bucket + 1] += nanos

    def series(self, kind: str, now: float | None = None) -> list[dict[str, Any]]:
        """[{name, minutes: nano-dollars per minute, oldest first}] of every name of that kind with spend in the
        last hour, the largest first."""
        now = time.time() if now is None else now
        current = int(now // 60)
        found = []
        with self.cells.lock() as c:
            for i in range(SLOTS):
                slot = i * WIDTH
                if not c[slot] or c[slot + 1] != KINDS[kind]:
                    continue
                minutes = []
                for minute in range(current - MINUTES + 1, current + 1):
                    bucket = slot + HEAD + 2 * (minute % MINUTES)
                    minutes.append(int(c[bucket + 1]) if c[bucket] == minute else 0)
                if any(minutes):
                    found.append({"name": _name(c, slot), "minutes": minutes})
        return sorted(found, key=lambda s: -sum(s["minutes"]))

    def _slot(self, c: memoryview, kind: str, name: str, minute: int) -> int | None:
        """The name's slot (by its tag: names are told apart by a CRC of 32 bits), claimed when it has none; the
        slot found last is tried first (another worker may have given it to another name since)."""
        known = self._tags.get((kind, name))
        if known is None:
            known = (zlib.crc32(f"{kind}:{name}".encode("utf-8", "surrogatepass")) + 1, -1)  # never 0: a free slot
            if len(self._tags) < 4 * SLOTS:
                self._tags[(kind, name)] = known
        tag, last = known
        if last >= 0 and c[last] == tag and c[last + 1] == KINDS[kind]:
            return last
        start = tag % SLOTS
        free = found = None
        for probe in range(PROBES):
            slot = ((start + probe) % SLOTS) * WIDTH
            if c[slot] == tag and c[slot + 1] == KINDS[kind]:
                found = slot
                break
            if free is None and (c[slot] == 0 or _stale(c, slot, minute)):
                free = slot
        if found is None and free is not None:
            _claim(c, free, tag, kind, name)
            found = free
        if found is not None and (kind, name) in self._tags:
            self._tags[(kind, name)] = (tag, found)
        return found


def _stale(c: memoryview, slot: int, minute: int) -> bool:
    return all(c[slot + HEAD + 2 * i] <= minute - MINUTES for i in range(MINUTES))


def _claim(c: memoryview, slot: int, tag: int, kind: str, name: str) -> None:
    data = name.encode("utf-8", "surrogatepass")[:8 * NAME_CELLS]
    c[slot], c[slot + 1], c[slot + 2] = tag, KINDS[kind], len(data)
    padded = data.ljust(8 * NAME_CELLS, b"\0")
    for i in range(NAME_CELLS):
        c[slot + 3 + i] = int.from_bytes(padded[8 * i:8 * i + 8], "little", signed=True)
    for i in range(HEAD, WIDTH):
        c[slot + i] = 0


def _name(c: memoryview, slot: int) -> str:
    raw = b"".join(int(c[slot + 3 + i]).to_bytes(8, "little", signed=True) for i in range(NAME_CELLS))
    return raw[:c[slot + 2]].decode("utf-8", "replace")
