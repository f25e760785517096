"""How long each key's requests waited in admission's queue lately, for the status page: the last RING waits of
each key (its name, then when each ended and how long it took) in the cells the workers share
(argoproxy/shared_cells.py), so every worker's page shows the same figures; the page reads the p50 and p95 of
those within the last RECENT_SECONDS. A request let in at once waited 0 s and counts as such.

Fixed size whatever the traffic: KEY_SLOTS keys (a key past them is not shown; /metrics still counts it).
"""

from __future__ import annotations

import math
import time
import zlib

from argoproxy.shared_cells import SharedCells

KEY_SLOTS = 256
PROBES = 16
RING = 64
NAME_CELLS = 16  # a key's name, cut to 128 bytes
RECENT_SECONDS = 600.0
# A key's slot: a tag (the name's hash), the waits counted so far, the name's length, the name, then RING pairs
# of (ended at, waited), in milliseconds.
TAG, COUNT, NAME_LENGTH, NAME, WAITS = 0, 1, 2, 3, 3 + NAME_CELLS
WIDTH = WAITS + 2 * RING


class QueueWaits:
    def __init__(self, cells: SharedCells | None = None, guard: SharedCells | None = None) -> None:
        # v2: written under the queue's lock (`guard`: admission/queue.py's cells), in the section that seats
        self.cells = cells or SharedCells("queue-waits-v2.cells", KEY_SLOTS * WIDTH, guard=guard)

    def add(self, key: str, seconds: float, now: float | None = None) -> None:
        """One request of `key` (a key's name, or "none") got its slot after `seconds`."""
        with self.cells.lock():
            self.count(key, seconds, now)

    def count(self, key: str, seconds: float, now: float | None = None) -> None:
        """add(), for a caller that holds the cells' lock."""
        c, now = self.cells.cells, time.time() if now is None else now
        slot = self._slot(c, key)
        if slot is None:
            return
        at = slot + WAITS + 2 * (c[slot + COUNT] % RING)
        c[at], c[at + 1] = int(now * 1000), int(seconds * 1000)
        c[slot + COUNT] += 1

    def recent(self, now: float | None = None) -> dict[str, dict[str, float | int]]:
        """Each key's waits ended in the last RECENT_SECONDS: how many, and their p50 and p95 in seconds."""
        now = time.time() if now is None else now
        since = int((now - RECENT_SECONDS) * 1000)
        found: dict[str, dict[str, float | int]] = {}
        with self.cells.lock() as c:
            for slot in range(0, KEY_SLOTS * WIDTH, WIDTH):
                if not c[slot + TAG]:
                    continue
                kept = min(int(c[slot + COUNT]), RING)
                waits = sorted(c[slot + WAITS + 2 * i + 1] for i in range(kept) if c[slot + WAITS + 2 * i] >= since)
                if waits:
                    found[self._name(c, slot)] = {"waits": len(waits), "p50": _quantile(waits, 0.5) / 1000,
                                                  "p95": _quantile(waits, 0.95) / 1000}
        return found

    def _slot(self, c: memoryview, key: str) -> int | None:
        name = key.encode("utf-8", "surrogatepass")[:NAME_CELLS * 8]
        tag = zlib.crc32(name) + 1  # never 0, the free slot's tag
        start = tag % KEY_SLOTS
        for probe in range(PROBES):
            slot = ((start + probe) % KEY_SLOTS) * WIDTH
            if c[slot + TAG] == tag:
                return slot
            if c[slot + TAG] == 0:
                c[slot + TAG], c[slot + COUNT], c[slot + NAME_LENGTH] = tag, 0, len(name)
                raw = c[slot + NAME:slot + WAITS].cast("B")
                raw[:len(name)] = name
                return slot
        return None

    @staticmethod
    def _name(c: memoryview, slot: int) -> str:
        raw = c[slot + NAME:slot + WAITS].cast("B")
        return bytes(raw[:c[slot + NAME_LENGTH]]).decode("utf-8", "replace")


def _quantile(values: list[int], q: float) -> int:
    """The nearest-rank quantile of sorted values."""
    return values[max(0, math.ceil(q * len(values)) - 1)]
