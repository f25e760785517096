"""The Responses WebSocket connections open on this instance, counted per key and in all: at most
WEBSOCKET_CONNECTIONS_PER_KEY of one key and WEBSOCKET_CONNECTIONS in all (docs/responses-websocket.md). Past
either the upgrade is answered 426 (websocket_upgrade.py) and clients use HTTP, where a key's limits hold.

The counts are the instance's, not a worker's: they sit in cells every worker maps (argoproxy/shared_cells.py),
so a key's share holds however Gunicorn spreads its connections over workers. One file: the total, then `slots`
rows of (a key's tag, its connections open), a key's row found from its tag (open addressing, at most half the
rows in use); a row back at 0 connections is taken by the next key that needs one.

A key is known as stored responses know it (state/records.py: owner_of): a team key by its digest, a configured
key by its SHA-256, every connection under one anonymous key with auth off.

A connection's place is given back when it ends, however it ends (serve/websocket_upgrade.py's `finally`). A
worker killed with connections open (SIGKILL, the OOM killer) cannot: so each worker also counts its own in a
ledger (a cells file named by its pid, one cell per row of the shared file), and the Gunicorn master, told of its
death (child_exit), takes them off with release_dead_worker. Without the shared directory (a bare app, in-process
tests) the cells are the process's own and there is no ledger.
"""

from __future__ import annotations

import glob
import hashlib
import os
from typing import TYPE_CHECKING

from argoproxy.per_process import pid as own_pid
from argoproxy.shared_cells import SHARED_DIR_ENV, SharedCells
from argoproxy.state.records import owner_of

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Request

PROBES = 64
TOTAL, ROWS = 0, 1  # the instance's count, then where the rows start
TAG, OPEN, WIDTH = 0, 1, 2  # a row: its key's tag, its connections open
PREFIX, LEDGER_PREFIX = "websocket-connections-v1-", "websocket-ledger-v1-"


def slots_for(most: int) -> int:
    """Rows for `most` connections' keys at half load at most: a power of two, 64 or more."""
    return 1 << max(6, (2 * most - 1).bit_length())


def tag_of(owner: str) -> int:
    """A key's tag (never 0, a free row's): 64 bits of its owner's hash."""
    digest = hashlib.blake2b(owner.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True) or 1


def cells_name(slots: int) -> str:
    return f"{PREFIX}{slots}.cells"  # a reload with another WEBSOCKET_CONNECTIONS counts in a file of its own


def ledger_name(slots: int, pid: int) -> str:
    return f"{LEDGER_PREFIX}{slots}-{pid}.cells"


class Places:
    """`take(owner)` a place for one more connection of a key, or why not; `give_back(row)` when it ends."""

    def __init__(self, most: int, per_key: int, directory: str | None = None) -> None:
        self.most, self.per_key = most, per_key  # WEBSOCKET_CONNECTIONS, WEBSOCKET_CONNECTIONS_PER_KEY
        self.slots = slots_for(most)
        self.cells = SharedCells(cells_name(self.slots), ROWS + self.slots * WIDTH, directory)
        self._ledger: SharedCells | None = None
        self._ledger_pid = -1

    def take_for(self, req: Request, auth_on: bool) -> int | str:
        """take() for the key the request's auth check accepted."""
        return self.take(owner_of(req, auth_on))

    def take(self, owner: str) -> int | str:
        """The row counting one more connection of `owner` (a key, or the anonymous one), or why none is given,
        naming the setting."""
        tag = tag_of(owner)
        with self.cells.lock() as c:
            if c[TOTAL] >= self.most:
                return f"the proxy holds {self.most} WebSocket connections already (WEBSOCKET_CONNECTIONS)"
            row = self._row(c, tag)
            if row is None:  # PROBES rows running all held, with at most half of all in use: refused, not uncounted
                return "the proxy holds too many keys' WebSocket connections (WEBSOCKET_CONNECTIONS)"
            if c[row + OPEN] >= self.per_key:
                return (f"this key holds {self.per_key} WebSocket connections already "
                        "(WEBSOCKET_CONNECTIONS_PER_KEY)")
            c[row + TAG] = tag
            c[row + OPEN] += 1
            c[TOTAL] += 1
            self._count_here(row, 1)
        return row

    def give_back(self, row: int) -> None:
        with self.cells.lock() as c:
            c[row + OPEN] = max(0, c[row + OPEN] - 1)
            c[TOTAL] = max(0, c[TOTAL] - 1)
            self._count_here(row, -1)

    def count(self, owner: str | None = None) -> int:
        """Connections open: the instance's, or one key's."""
        with self.cells.lock() as c:
            if owner is None:
                return int(c[TOTAL])
            row = self._row(c, tag_of(owner))
            return int(c[row + OPEN]) if row is not None and c[row + TAG] == tag_of(owner) else 0

    def _row(self, c: memoryview, tag: int) -> int | None:
        """The key's row, else the first free one on its way (a row no connection holds)."""
        free = None
        for probe in range(PROBES):
            row = ROWS + ((tag + probe) % self.slots) * WIDTH
            if c[row + TAG] == tag:
                return row
            if free is None and c[row + OPEN] <= 0:
                free = row
        return free

    def _count_here(self, row: int, change: int) -> None:
        """This worker's own count of the row, for the master should the worker be killed (under the lock)."""
        if not self.cells.path:
            return
        if self._ledger_pid != own_pid():  # made in the worker (after the fork), named by its pid
            self._ledger_pid = own_pid()
            self._ledger = SharedCells(ledger_name(self.slots, self._ledger_pid), self.slots,
                                       os.path.dirname(self.cells.path))
        assert self._ledger is not None
        self._ledger.cells[(row - ROWS) // WIDTH] += change


def release_dead_worker(pid: int, directory: str | None = None) -> int:
    """In the Gunicorn master when a worker exited: the connections it still counted are taken off the instance's
    counts (a killed worker never gave them back); returns how many."""
    directory = directory or os.environ.get(SHARED_DIR_ENV) or ""
    released = 0
    for path in glob.glob(os.path.join(glob.escape(directory), f"{LEDGER_PREFIX}*-{pid}.cells")) if directory else []:
        slots = os.path.basename(path)[len(LEDGER_PREFIX):].split("-")[0]
        if slots.isdigit() and os.path.basename(path) == ledger_name(int(slots), pid):
            released += _take_off(directory, int(slots), pid)
            os.unlink(path)
    return released


def _take_off(directory: str, slots: int, pid: int) -> int:
    ledger = SharedCells(ledger_name(slots, pid), slots, directory)
    cells = SharedCells(cells_name(slots), ROWS + slots * WIDTH, directory)
    released = 0
    try:
        with cells.lock() as c:
            for i, held in enumerate(ledger.cells):
                if held > 0:
                    row = ROWS + i * WIDTH
                    c[row + OPEN] = max(0, c[row + OPEN] - held)
                    c[TOTAL] = max(0, c[TOTAL] - held)
                    released += held
    finally:
        ledger.close()
        cells.close()
    return released
