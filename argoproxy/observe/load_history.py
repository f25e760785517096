"""What the status page draws and reads limits against, kept in the workers' shared cells (one instance):
requests, tokens, failures and refusals per minute over the last hour, and each team key's admitted requests and
tokens in the last minute (the sliding two-window estimate the keys' own rpm/tpm admission uses,
argoproxy/teamkeys/windows.py) beside its refused requests in the last minute by cause (the same estimate). A
refused request is not counted against the key's rpm: admission did not count it either, and a key showed
`8 / 5` requests per minute when 4 of them had been refused for its budget.

Fixed size whatever the traffic: MINUTES buckets, and KEY_SLOTS keys (a key past them is not shown per
minute; its limits still are).
"""

from __future__ import annotations

import time
import zlib

from argoproxy.observe.refusals import CAUSES, DECIDED, FAILED
from argoproxy.shared_cells import SharedCells
from argoproxy.teamkeys import windows

MINUTES = 60
MINUTE_FIELDS = 5  # the minute's number, requests, tokens, failures (FAILED causes), refusals (DECIDED causes)
KEY_SLOTS = 512
PROBES = 16
# A key's slot: a tag (the name's hash); its admitted requests and tokens (start, req, prev_req, tok, prev_tok);
# its refusals: the window's number, then this window's and the last one's count for each cause.
REFUSED = 1 + windows.FIELDS
KEY_FIELDS = REFUSED + 1 + 2 * len(CAUSES)
CAUSE_INDEX = {cause: i for i, cause in enumerate(CAUSES)}


class LoadHistory:
    def __init__(self, cells: SharedCells | None = None) -> None:
        size = MINUTES * MINUTE_FIELDS + KEY_SLOTS * KEY_FIELDS
        self.cells = cells or SharedCells("status-load-v2.cells", size)  # v2: a cause more (queue)
        self.keys_base = MINUTES * MINUTE_FIELDS

    def add(self, key: str | None, tokens: int, cause: str | None, admitted: bool = False,
            now: float | None = None) -> None:
        """One finished request: `key` the team key it named (None: none), `cause` its error's cause (None: no
        error), `admitted` whether the key's limits admitted it (then it counts against the key's rpm and tpm)."""
        with self.cells.lock():
            self.count(key, tokens, cause, admitted, now)

    def count(self, key: str | None, tokens: int, cause: str | None, admitted: bool = False,
              now: float | None = None) -> None:
        """add(), for a caller that holds the cells' lock."""
        c, now = self.cells.cells, time.time() if now is None else now
        minute = int(now // 60)
        base = (minute % MINUTES) * MINUTE_FIELDS
        if c[base] != minute:
            c[base], c[base + 1], c[base + 2], c[base + 3], c[base + 4] = minute, 0, 0, 0, 0
        c[base + 1] += 1
        c[base + 2] += tokens
        c[base + 3] += cause in FAILED
        c[base + 4] += cause in DECIDED
        if not key or not (admitted or cause is not None):
            return
        slot = self._slot(c, key, create=True)
        if slot is None:
            return
        if admitted:
            state = slot + 1
            windows.roll(c, state, now)
            c[state + windows.REQ] += 1
            c[state + windows.TOK] += tokens
        if cause is not None:
            refused = slot + REFUSED
            _roll_refused(c, refused, now)
            c[refused + 1 + 2 * CAUSE_INDEX[cause]] += 1

    def minutes(self, now: float | None = None) -> list[dict[str, int]]:
        """The last MINUTES minutes, oldest first, the current one last (minutes with nothing: zeros)."""
        now = time.time() if now is None else now
        current = int(now // 60)
        out = []
        with self.cells.lock() as c:
            for minute in range(current - MINUTES + 1, current + 1):
                base = (minute % MINUTES) * MINUTE_FIELDS
                same = c[base] == minute
                out.append({"at": minute * 60, "requests": c[base + 1] if same else 0,
                            "tokens": c[base + 2] if same else 0, "errors": c[base + 3] if same else 0,
                            "refused": c[base + 4] if same else 0})
        return out

    def last_minute(self, key: str, now: float | None = None) -> tuple[int, int, dict[str, int]]:
        """(requests, tokens) of this key admitted in the last 60 seconds, as its rpm/tpm admission estimates
        them, and its requests refused meanwhile by cause (the causes it had, the same estimate)."""
        now = time.time() if now is None else now
        with self.cells.lock() as c:
            slot = self._slot(c, key, create=False)
            if slot is None:
                return 0, 0, {}
            state = slot + 1
            elapsed = windows.roll(c, state, now)
            kept = 1 - elapsed / windows.WINDOW
            refused_at = slot + REFUSED
            kept_refused = 1 - _roll_refused(c, refused_at, now) / windows.WINDOW
            refused = {}
            for cause, i in CAUSE_INDEX.items():
                count = round(c[refused_at + 1 + 2 * i] + c[refused_at + 2 + 2 * i] * kept_refused)
                if count:
                    refused[cause] = count
            return (round(c[state + windows.REQ] + c[state + windows.PREV_REQ] * kept),
                    round(c[state + windows.TOK] + c[state + windows.PREV_TOK] * kept), refused)

    def _slot(self, c: memoryview, key: str, create: bool) -> int | None:
        tag = zlib.crc32(key.encode("utf-8", "surrogatepass")) + 1  # never 0, the free slot's tag
        start = tag % KEY_SLOTS
        for probe in range(PROBES):
            slot = self.keys_base + ((start + probe) % KEY_SLOTS) * KEY_FIELDS
            if c[slot] == tag:
                return slot
            if c[slot] == 0:
                if not create:
                    return None
                c[slot] = tag
                for i in range(1, KEY_FIELDS):
                    c[slot + i] = 0
                return slot
        return None


def _roll_refused(c: memoryview, base: int, now: float) -> float:
    """A key's refusal counts moved forward to `now` (this window's become the last one's, as windows.roll does
    for requests and tokens); the seconds elapsed in the current window."""
    window = int(now // windows.WINDOW)
    start = c[base]
    if window != start:
        for i in range(len(CAUSES)):
            current = base + 1 + 2 * i
            c[current + 1] = c[current] if window == start + 1 else 0
            c[current] = 0
        c[base] = window
    return now - window * windows.WINDOW
