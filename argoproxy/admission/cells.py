"""Where admission's state sits in the cells the workers share, and what a killed worker held there.

One file per instance (`admission-v3-<name>-<rows>.cells`, argoproxy/shared_cells.py), in four tables: each
deployment's cells, each pool's, the flows' (a flow: a key's queue in one pool) and the waiters' rows (as many as
ADMISSION_QUEUE_SIZE). Layout gives their offsets. (Cache-aware routing's notes have a file of their own:
routing/affinity.py.)

A worker killed in the middle of a request (SIGKILL, the OOM killer, Gunicorn's timeout) cannot give its slots
back, and its waiting requests' rows would stay in the queue. So each worker also writes what it holds in a
ledger of its own (`admission-ledger-<name>-<pid>.cells`): the slots it took, by deployment and by flow; and a
waiter's row names its worker's pid. When the Gunicorn master is told a worker died (child_exit),
release_dead_worker takes that worker's slots off the counts and frees its rows; a slot freed so goes to the
next waiter at that waiter's next grant pass (every REGRANT_SECONDS). Without the shared directory (a bare app,
in-process tests) there is one process and no ledger.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from argoproxy.per_process import pid as own_pid
from argoproxy.shared_cells import SHARED_DIR_ENV, SharedCells

# deployment cells
D_IN_FLIGHT, D_LIMIT, D_MEAN_MS, D_WIDTH = 0, 1, 2, 3
# pool cells: virtual time (token units x SCALE), waiters now
P_VTIME, P_WAITING, P_WIDTH = 0, 1, 2
# flow cells: tag, last finish tag, slots held, pool + 1, last seen (ms), waiting rows held, weight x 1000
F_TAG, F_FINISH, F_HELD, F_POOL, F_SEEN, F_ROWS, F_WEIGHT, F_WIDTH = range(8)
FLOWS = 1024
# waiter cells: state, pool, start tag, finish tag, flow slot, granted deployment + 1, preferred + 1, its
# worker's pid, its request's ticket; then what the row's last occupant was told when another key's request took
# the row (space fairness, admission/queue.py): its ticket, the places its key held, its share x 1000, the
# Retry-After it gets
(W_STATE, W_POOL, W_START, W_FINISH, W_FLOW, W_GRANTED, W_PREFER, W_OWNER, W_TICKET,
 W_OUSTED, W_OUSTED_HELD, W_OUSTED_SHARE, W_OUSTED_AFTER, W_WIDTH) = range(14)
WAITERS = 1024  # ADMISSION_QUEUE_SIZE's default
FREE, WAITING, GRANTED = 0, 1, 2
# a ledger's header: its version, then the Layout it was written for
LEDGER_VERSION = 2
L_VERSION, L_DEPLOYMENTS, L_POOLS, L_WAITERS, L_HEADER = range(5)


@dataclass(frozen=True)
class Layout:
    deployments: int
    pools: int
    waiters: int = WAITERS

    @property
    def p0(self) -> int:
        return self.deployments * D_WIDTH

    @property
    def f0(self) -> int:
        return self.p0 + self.pools * P_WIDTH

    @property
    def w0(self) -> int:
        return self.f0 + FLOWS * F_WIDTH

    @property
    def size(self) -> int:
        return self.w0 + self.waiters * W_WIDTH

    def rows(self) -> range:
        return range(self.w0, self.size, W_WIDTH)


def cells_name(name: str, waiters: int = WAITERS) -> str:
    # v3: flows count their rows, rows carry tickets (a reload keeps the shared directory: an older layout's file
    # is another file)
    return f"admission-v3-{name}-{waiters}.cells"


class WorkerSlots:
    """The slots one worker holds: by deployment, then by flow. Written by that worker under the cells' lock,
    read by the master once the worker is gone."""

    def __init__(self, directory: str, name: str, pid: int, layout: Layout) -> None:
        self.layout = layout
        self.cells = SharedCells(ledger_name(name, pid), L_HEADER + layout.deployments + FLOWS, directory)
        c = self.cells.cells
        c[L_DEPLOYMENTS], c[L_POOLS], c[L_WAITERS] = layout.deployments, layout.pools, layout.waiters
        c[L_VERSION] = LEDGER_VERSION

    def add(self, dep: int, fslot: int, seats: int) -> None:
        """`seats` (1 or -1) of deployment `dep`, held under the flow at cell `fslot`."""
        c = self.cells.cells
        c[L_HEADER + dep] += seats
        c[L_HEADER + self.layout.deployments + (fslot - self.layout.f0) // F_WIDTH] += seats


def ledger_name(name: str, pid: int) -> str:
    return f"admission-ledger-{name}-{pid}.cells"


class Ledgers:
    """This process's ledger, made when it first seats or queues a request (after the fork: named by the pid
    that writes it; the master finds a dead worker's rows through it)."""

    def __init__(self, cells: SharedCells, name: str, layout: Layout) -> None:
        self.directory = os.path.dirname(cells.path) if cells.path else ""
        self.name, self.layout = name, layout
        self.pid = -1
        self.ledger: WorkerSlots | None = None

    def add(self, dep: int, fslot: int, seats: int) -> None:
        ledger = self.mine()
        if ledger is not None:
            ledger.add(dep, fslot, seats)

    def mine(self) -> WorkerSlots | None:
        """This process's ledger (None without the shared directory: one process, nobody to outlive it)."""
        if not self.directory:
            return None
        if self.pid != own_pid():
            self.pid = own_pid()
            self.ledger = WorkerSlots(self.directory, self.name, self.pid, self.layout)
        return self.ledger


def release_dead_worker(pid: int, directory: str | None = None) -> int:
    """In the Gunicorn master when a worker exited: give back the slots it held and free its waiting rows, in
    every admission file of the instance; returns how many requests it had seated or waiting."""
    directory = directory or os.environ.get(SHARED_DIR_ENV) or ""
    released = 0
    if not directory:
        return 0
    for path in glob.glob(os.path.join(glob.escape(directory), f"admission-ledger-*-{pid}.cells")):
        name = os.path.basename(path)[len("admission-ledger-"):-len(f"-{pid}.cells")]
        ledger = SharedCells(os.path.basename(path), L_HEADER, directory)
        try:
            if ledger.cells[L_VERSION] == LEDGER_VERSION:
                layout = Layout(int(ledger.cells[L_DEPLOYMENTS]), int(ledger.cells[L_POOLS]),
                                int(ledger.cells[L_WAITERS]))
                ledger.close()
                ledger = SharedCells(os.path.basename(path), L_HEADER + layout.deployments + FLOWS, directory)
                released += _give_back(directory, name, layout, pid, ledger.cells)
        finally:
            ledger.close()
        os.unlink(path)
    for path in glob.glob(os.path.join(glob.escape(directory), f"admission-wake-*-{pid}.fifo")):
        os.unlink(path)  # its wake-up pipe (admission/wakeups.py)
    return released


def _give_back(directory: str, name: str, layout: Layout, pid: int, held: memoryview) -> int:
    if not os.path.exists(os.path.join(directory, cells_name(name, layout.waiters))):
        return 0
    cells = SharedCells(cells_name(name, layout.waiters), layout.size, directory)
    released = 0
    try:
        with cells.lock() as c:
            for dep in range(layout.deployments):
                seats = held[L_HEADER + dep]
                c[dep * D_WIDTH + D_IN_FLIGHT] = max(0, c[dep * D_WIDTH + D_IN_FLIGHT] - seats)
                released += max(0, seats)
            for flow in range(FLOWS):
                cell = layout.f0 + flow * F_WIDTH + F_HELD
                c[cell] = max(0, c[cell] - held[L_HEADER + layout.deployments + flow])
            for row in layout.rows():
                if c[row + W_STATE] == FREE or c[row + W_OWNER] != pid:
                    continue
                if c[row + W_STATE] == GRANTED:  # a slot granted to it that it never took
                    dep = int(c[row + W_GRANTED]) - 1
                    flow = int(c[row + W_FLOW]) + F_HELD
                    c[dep * D_WIDTH + D_IN_FLIGHT] = max(0, c[dep * D_WIDTH + D_IN_FLIGHT] - 1)
                    c[flow] = max(0, c[flow] - 1)
                else:
                    pool = layout.p0 + int(c[row + W_POOL]) * P_WIDTH + P_WAITING
                    c[pool] = max(0, c[pool] - 1)
                    rows = int(c[row + W_FLOW]) + F_ROWS
                    c[rows] = max(0, c[rows] - 1)
                c[row + W_STATE] = FREE
                released += 1
    finally:
        cells.close()
    return released

