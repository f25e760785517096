"""The fair queue's flows in the shared cells (Admission has these methods; the layout: admission/cells.py): a
flow's cells found by open addressing on a digest of its pool and name, an idle flow's slot reused, its weight
noted, and a pool's tags moved back by its virtual time once it passes REBASE_AT (their order unchanged)."""

from __future__ import annotations

import hashlib

from argoproxy.admission.cells import (F_FINISH, F_HELD, F_POOL, F_ROWS, F_SEEN, F_TAG, F_WEIGHT, F_WIDTH, FLOWS,
                                       FREE, P_VTIME, P_WIDTH, W_FINISH, W_POOL, W_START, W_STATE)

SCALE = 1000
# Tags are int64 cells. One request moves them by at most MOST_UNITS (a reservation of 2^40 tokens, or a weight of
# 1e-6, went past 2^63), a flow's start is at most queue.AHEAD past the virtual time (refused and departed waiters
# push their flow's tags without being served), and a pool's tags move back by its virtual time once it passes
# REBASE_AT.
MOST_UNITS, REBASE_AT = 1 << 50, 1 << 60


class FlowTable:
    p0: int  # where the pools' cells start
    f0: int  # where the flows' cells start
    pools: list[list[int]]
    rows: range

    def _flow(self, c: memoryview, pool: int, flow: str, now: float, weight: float) -> int:
        """The flow's cells (open addressing by a digest of pool and name), its weight noted; an idle flow's slot
        is reused."""
        slot = self._flow_slot(c, pool, flow, now)
        c[slot + F_WEIGHT] = max(1, min(MOST_UNITS, int(weight * SCALE)))
        return slot

    def _flow_slot(self, c: memoryview, pool: int, flow: str, now: float) -> int:
        name = f"{pool}\0{flow}".encode(errors="surrogatepass")  # a name may hold a lone surrogate (JSON allows one)
        tag = int.from_bytes(hashlib.blake2b(name, digest_size=7).digest(), "big") or 1
        vtime = c[self.p0 + pool * P_WIDTH + P_VTIME]
        reusable = -1
        for probe in range(FLOWS):
            slot = self.f0 + ((tag + probe) % FLOWS) * F_WIDTH
            if c[slot + F_TAG] == tag:
                c[slot + F_SEEN] = int(now * 1000)
                return slot
            if c[slot + F_TAG] == 0:
                reusable = slot if reusable < 0 else reusable
                break
            if reusable < 0 and not c[slot + F_HELD] and not c[slot + F_ROWS] and \
                    c[slot + F_FINISH] <= self._vtime_of(c, slot, vtime):
                reusable = slot  # nothing held, nothing waiting, no backlog: forgetting its tags changes no order
        if reusable < 0:
            reusable = self.f0 + (tag % FLOWS) * F_WIDTH  # a full table: share a slot (fairness between the two lost)
        else:
            c[reusable + F_FINISH], c[reusable + F_HELD], c[reusable + F_ROWS] = 0, 0, 0
        c[reusable + F_TAG], c[reusable + F_POOL], c[reusable + F_SEEN] = tag, pool + 1, int(now * 1000)
        return reusable

    def _rebase(self, c: memoryview, pool: int) -> None:
        """The pool's tags moved back by its virtual time once it passes REBASE_AT (their order unchanged)."""
        shift = c[self.p0 + pool * P_WIDTH + P_VTIME]
        if shift < REBASE_AT:
            return
        c[self.p0 + pool * P_WIDTH + P_VTIME] = 0
        for slot in self._flow_slots():
            if c[slot + F_POOL] == pool + 1:
                c[slot + F_FINISH] = max(0, c[slot + F_FINISH] - shift)
        for row in self.rows:
            if c[row + W_STATE] != FREE and c[row + W_POOL] == pool:
                c[row + W_START] -= shift
                c[row + W_FINISH] -= shift

    def _vtime_of(self, c: memoryview, slot: int, fallback: int) -> int:
        pool = int(c[slot + F_POOL]) - 1
        return c[self.p0 + pool * P_WIDTH + P_VTIME] if 0 <= pool < len(self.pools) else fallback

    def _flow_slots(self) -> range:
        return range(self.f0, self.f0 + FLOWS * F_WIDTH, F_WIDTH)
