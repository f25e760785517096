"""What the status page draws and reads limits against, kept in the workers' shared cells (one instance):
requests, tokens and errors per minute over the last hour, and each team key's requests and tokens in the last
minute (the sliding two-window estimate the keys' own rpm/tpm admission uses, argoproxy/teamkeys/windows.py).

Fixed size whatever the traffic: MINUTES buckets, and KEY_SLOTS keys (a key past them is not shown per
minute; its limits still are).
"""

from __future__ import annotations

import time
import zlib

from argoproxy.shared_cells import SharedCells
from argoproxy.teamkeys import windows

MINUTES = 60
MINUTE_FIELDS = 4  # the minute's number, requests, tokens, errors
KEY_SLOTS = 512
PROBES = 16
KEY_FIELDS = 1 + windows.FIELDS  # a tag (the name's hash), then start, req, prev_req, tok, prev_tok


class LoadHistory:
    def __init__(self, cells: SharedCells | None = None) -> None:
        size = MINUTES * MINUTE_FIELDS + KEY_SLOTS * KEY_FIELDS
        self.cells = cells or SharedCells("status-load.cells", size)
        self.keys_base = MINUTES * MINUTE_FIELDS

    def add(self, key: str | None, tokens: int, error: bool, now: float | None = None) -> None:
        now = time.time() if now is None else now
        minute = int(now // 60)
        with self.cells.lock() as c:
            base = (minute % MINUTES) * MINUTE_FIELDS
            if c[base] != minute:
                c[base], c[base + 1], c[base + 2], c[base + 3] = minute, 0, 0, 0
            c[base + 1] += 1
            c[base + 2] += tokens
            c[base + 3] += int(error)
            slot = self._slot(c, key, create=True) if key else None
            if slot is not None:
                state = slot + 1
                windows.roll(c, state, now)
                c[state + windows.REQ] += 1
                c[state + windows.TOK] += tokens

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
                            "tokens": c[base + 2] if same else 0, "errors": c[base + 3] if same else 0})
        return out

    def last_minute(self, key: str, now: float | None = None) -> tuple[int, int]:
        """(requests, tokens) of this key in the last 60 seconds, as its rpm/tpm admission estimates them."""
        now = time.time() if now is None else now
        with self.cells.lock() as c:
            slot = self._slot(c, key, create=False)
            if slot is None:
                return 0, 0
            state = slot + 1
            elapsed = windows.roll(c, state, now)
            kept = 1 - elapsed / windows.WINDOW
            return (round(c[state + windows.REQ] + c[state + windows.PREV_REQ] * kept),
                    round(c[state + windows.TOK] + c[state + windows.PREV_TOK] * kept))

    def _slot(self, c, key: str, create: bool) -> int | None:
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
