"""Team keys' rate windows and budget counters for one instance (the SQLite store): in the cells the workers
share (argoproxy/routing/shared.py), so admitting a request costs an flock, not a database write. Usage still
goes to SQLite (in batches); a budget's count starts from what SQLite holds for the current period when a
worker first meets the key (an hourly budget starts again after a restart: usage is stored by day).

Each key has a slot, found by its digest (open addressing): a tag, then the counting state of windows.py.
"""

from __future__ import annotations

from typing import Any, Callable

from argoproxy.routing.shared import SharedCells
from argoproxy.teamkeys import windows
from argoproxy.teamkeys.records import KeyRecord

SLOTS = 4096
PROBES = 64
STATE = len(windows.NEW_STATE)
WIDTH = 1 + STATE  # the tag, then the state


class LocalWindows:
    def __init__(self, used_in_period: Callable[[KeyRecord, float], int], cells: SharedCells | None = None) -> None:
        self.cells = cells or SharedCells("team-keys.cells", SLOTS * WIDTH)
        self.used_in_period = used_in_period  # tokens the store holds for the key's current budget period

    def admit(self, record: KeyRecord, now: float) -> tuple[float, str] | None:
        """windows.admit on the key's shared state; None when no slot is free (the caller counts elsewhere)."""
        return self._update(record, now, lambda state: windows.admit(state, record.rpm, record.tpm, record.budget,
                                                                     now))

    def add_tokens(self, record: KeyRecord, tokens: int, now: float) -> bool | None:
        """None when no slot is free (the caller counts elsewhere)."""
        def add(state: list) -> bool:
            windows.add_tokens(state, tokens, record.budget, now)
            return True
        return self._update(record, now, add)

    def _update(self, record: KeyRecord, now: float, change: Callable[[list], Any]) -> Any:
        tag = int(record.digest[:15], 16) or 1
        with self.cells.lock() as c:
            base = self._slot(c, tag)
            if base is None:
                return None
            state: list[float] = list(c[base + 1:base + WIDTH])
            fresh = c[base] != tag
            if fresh:
                state = list(windows.NEW_STATE)
        if fresh and record.budget is not None:  # a database read: outside the lock
            start, _ = windows.period_bounds(record.budget.period, now)
            state[windows.BUDGET_START], state[windows.BUDGET_USED] = int(start), self.used_in_period(record, now)
        with self.cells.lock() as c:
            base = self._slot(c, tag)
            if base is None:
                return None
            if c[base] == tag:
                state = list(c[base + 1:base + WIDTH])  # another worker may have counted meanwhile
            result = change(state)
            c[base] = tag
            for i, value in enumerate(state, base + 1):  # a memoryview of int64 cells takes one at a time
                c[i] = int(value)
            return result

    @staticmethod
    def _slot(c: Any, tag: int) -> int | None:
        start = tag % SLOTS
        for probe in range(PROBES):
            base = ((start + probe) % SLOTS) * WIDTH
            if c[base] in (tag, 0):
                return base
        return None
