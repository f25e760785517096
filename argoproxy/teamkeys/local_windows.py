"""Team keys' rate windows, budget counters and holds of requests in flight for one instance (the SQLite store,
key_limits): in the cells the workers share (argoproxy/shared_cells.py), so admitting a request costs an flock,
not a database write. Usage still goes to SQLite (in batches); a budget's count starts from what SQLite holds for
the current period when a worker first meets the key (an hourly budget starts again after a restart: usage is
stored by day).

Each key has a slot, found by its digest (open addressing): a tag, then the counting state of windows.py.

What a worker's requests in flight hold (tokens reserved, their number) is also written in that worker's own
ledger (a cells file named by its pid): a worker killed mid-request cannot give its holds back, so the Gunicorn
master, told of its death (child_exit), takes them off with release_dead_worker. Without the shared directory (a
bare app, in-process tests) there is one process and no ledger.
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

from argoproxy.per_process import pid as own_pid
from argoproxy.shared_cells import SHARED_DIR_ENV, SharedCells
from argoproxy.teamkeys import windows
from argoproxy.teamkeys.records import KeyRecord

SLOTS = 4096
PROBES = 64
STATE = len(windows.NEW_STATE)
WIDTH = 1 + STATE  # the tag, then the state
CELLS_NAME = "team-keys-v3.cells"  # v2: with the holds of requests in flight; v3: with dollar budgets
LEDGER_SLOTS = 1024
LEDGER_WIDTH = 4  # tag, tokens reserved, requests in flight, nano-dollars held
Result = TypeVar("Result")


class LocalWindows:
    def __init__(self, used_in_period: Callable[[KeyRecord, float], int], cells: SharedCells | None = None,
                 spent_in_period: Callable[[KeyRecord, float], int] | None = None) -> None:
        self.cells = cells or SharedCells(CELLS_NAME, SLOTS * WIDTH)
        self.used_in_period = used_in_period  # tokens the store holds for the key's current budget period
        self.spent_in_period = spent_in_period or (lambda record, now: 0)  # and nano-dollars, its dollar budget's
        self._ledger: Ledger | None = None
        self._ledger_pid = -1

    def admit(self, record: KeyRecord, now: float, reserve: int = 0, money: int = 0) -> tuple[float, str] | None:
        """windows.admit on the key's shared state, holding `reserve` tokens and `money` nano-dollars while the
        request runs; None when no slot is free (the caller counts elsewhere)."""
        def admit(state: list[float], tag: int) -> tuple[float, str]:
            decision = windows.admit(state, record.rpm, record.tpm, record.budget, now, reserve,
                                     record.max_parallel, record.budget_usd, money)
            if not decision[1]:
                self._ledger_add(tag, reserve, 1, money)
            return decision
        return self._update(record, now, admit)

    def admit_with_team(self, record: KeyRecord, team: KeyRecord, now: float, reserve: int = 0,
                        money: int = 0) -> tuple[float, str] | None:
        """admit in the key's windows and its team's (`team`: the team's windows record) under one lock: counted
        and held in both, or in neither; a refusal by the team's limits is named "team_" + what. None when either
        has no free slot."""
        def admit(states: list[list[float]], tags: list[int]) -> tuple[float, str]:
            before = list(states[0])
            decision = windows.admit(states[0], record.rpm, record.tpm, record.budget, now, reserve,
                                     record.max_parallel, record.budget_usd, money)
            if decision[1]:
                return decision
            waiting, by = windows.admit(states[1], team.rpm, team.tpm, team.budget, now, reserve, team.max_parallel,
                                        team.budget_usd, money)
            if by:
                states[0][:] = before  # nothing counted for the key either
                return waiting, "team_" + by
            for tag in tags:
                self._ledger_add(tag, reserve, 1, money)
            return 0.0, ""
        return self._update_all([record, team], now, admit)

    def settle(self, record: KeyRecord, reserved: int, tokens: int, now: float, held: int = 0,
               cost: int = 0) -> bool | None:
        """A request admitted here ended: its hold given back, its tokens and cost counted. None when no slot is
        free."""
        def settle(state: list[float], tag: int) -> bool:
            windows.settle(state, reserved, tokens, record.budget, now, held, cost, record.budget_usd)
            self._ledger_add(tag, -reserved, -1, -held)
            return True
        return self._update(record, now, settle)

    def hold_money(self, owners: tuple[KeyRecord, ...], now: float, money: int) -> tuple[float, int] | None:
        """A priced tool call's price held in the owners' dollar budgets (a key's, its team's: windows.hold_money)
        under one lock, in each worker's ledger too (a killed worker's holds are taken off): windows.hold_money's
        answer. None when one has no free slot."""
        def hold(states: list[list[float]], tags: list[int]) -> tuple[float, int]:
            waiting, refused = windows.hold_money(states, [o.budget_usd for o in owners], now, money)
            if refused < 0:
                for tag in tags:
                    self._ledger_add(tag, 0, 0, money)
            return waiting, refused
        return self._update_all(list(owners), now, hold)

    def release_money(self, owners: tuple[KeyRecord, ...], now: float, held: int, cost: int) -> None:
        """What hold_money held given back, and `cost` spent, in each owner's dollar budget."""
        def release(states: list[list[float]], tags: list[int]) -> None:
            for owner, state, tag in zip(owners, states, tags):
                windows.release_money(state, owner.budget_usd, now, held, cost)
                self._ledger_add(tag, 0, 0, -held)
        self._update_all(list(owners), now, release)

    def add_tokens(self, record: KeyRecord, tokens: int, now: float, cost: int = 0) -> bool | None:
        """None when no slot is free (the caller counts elsewhere)."""
        def add(state: list[float], tag: int) -> bool:
            windows.add_tokens(state, tokens, record.budget, now, cost, record.budget_usd)
            return True
        return self._update(record, now, add)

    def spent(self, record: KeyRecord, now: float) -> int | None:
        """The key's nano-dollars spent in its dollar budget's current period, as admission counts them (None:
        this instance has not met the key, or its period has not started here)."""
        tag = int(record.digest[:15], 16) or 1
        budget = record.budget_usd
        if budget is None:
            return None
        with self.cells.lock() as c:
            base = self._slot(c, tag)
            if base is None or c[base] != tag:
                return None
            state = base + 1
            same = c[state + windows.MONEY_START] == int(windows.period_bounds(budget.period, now)[0])
            return int(c[state + windows.MONEY_USED]) if same else None

    def in_flight(self, record: KeyRecord) -> int:
        """The key's requests in flight on this instance (the status page)."""
        tag = int(record.digest[:15], 16) or 1
        with self.cells.lock() as c:
            base = self._slot(c, tag)
            return int(c[base + 1 + windows.IN_FLIGHT]) if base is not None and c[base] == tag else 0

    def _update(self, record: KeyRecord, now: float, change: Callable[[list[float], int], Result]) -> Result | None:
        """`change` on the key's state under the lock, written back (_update_all's steps for one key, kept apart: it
        is every limited request's). A key this instance knows takes one critical section; a key met for the first
        time two, its first state read from the store in between (a database read: outside the lock)."""
        tag = int(record.digest[:15], 16) or 1
        with self.cells.lock() as c:
            base = self._slot(c, tag)
            if base is None:
                return None
            if c[base] == tag:
                state: list[float] = list(c[base + 1:base + WIDTH])
                result = change(state, tag)
                _write(c, base, tag, state)
                return result
        state = self._new_state(record, now)
        with self.cells.lock() as c:
            base = self._slot(c, tag)
            if base is None:
                return None
            if c[base] == tag:
                state = list(c[base + 1:base + WIDTH])  # another worker met it meanwhile
            result = change(state, tag)
            _write(c, base, tag, state)
            return result

    def _update_all(self, records: list[KeyRecord], now: float,
                    change: Callable[[list[list[float]], list[int]], Result]) -> Result | None:
        """`change` on the records' states under one lock (a key's and its team's), written back together: one
        critical section when this instance knows them all, as _update."""
        tags = [int(record.digest[:15], 16) or 1 for record in records]
        with self.cells.lock() as c:
            bases = self._slots(c, tags)
            if bases is None:
                return None
            fresh = [c[base] != tag for base, tag in zip(bases, tags)]
            if not any(fresh):
                return _change_all(c, bases, tags, [list(c[base + 1:base + WIDTH]) for base in bases], change)
        states: list[list[float]] = [self._new_state(record, now) if new else [] for record, new in zip(records, fresh)]
        with self.cells.lock() as c:
            bases = self._slots(c, tags)
            if bases is None:
                return None
            for i, (base, tag) in enumerate(zip(bases, tags)):
                if c[base] == tag:
                    states[i] = list(c[base + 1:base + WIDTH])  # another worker may have counted meanwhile
            return _change_all(c, bases, tags, states, change)

    def _slots(self, c: Any, tags: list[int]) -> list[int] | None:
        """Each tag's slot; None when one has none free."""
        bases = [self._slot(c, tag) for tag in tags]
        return None if None in bases else [base for base in bases if base is not None]

    def _new_state(self, record: KeyRecord, now: float) -> list[float]:
        """A key's first state here: its budgets' periods counted from the store (a database read: outside the
        lock)."""
        state = list(windows.NEW_STATE)
        if record.budget is not None:
            start, _ = windows.period_bounds(record.budget.period, now)
            state[windows.BUDGET_START], state[windows.BUDGET_USED] = int(start), self.used_in_period(record, now)
        if record.budget_usd is not None:  # likewise: spent in the dollar budget's period so far
            start, _ = windows.period_bounds(record.budget_usd.period, now)
            state[windows.MONEY_START], state[windows.MONEY_USED] = int(start), self.spent_in_period(record, now)
        return state

    def _ledger_add(self, tag: int, tokens: int, requests: int, money: int = 0) -> None:
        if not self.cells.path:
            return
        if self._ledger_pid != own_pid():  # made in the worker (after the fork), named by its pid
            self._ledger_pid = own_pid()
            self._ledger = Ledger(os.path.dirname(self.cells.path), self._ledger_pid)
        assert self._ledger is not None
        self._ledger.add(tag, tokens, requests, money)

    @staticmethod
    def _slot(c: Any, tag: int) -> int | None:
        start = tag % SLOTS
        for probe in range(PROBES):
            base = ((start + probe) % SLOTS) * WIDTH
            if c[base] in (tag, 0):
                return base
        return None


def _change_all(c: Any, bases: list[int], tags: list[int], states: list[list[float]],
                change: Callable[[list[list[float]], list[int]], Result]) -> Result:
    """`change` on the states read, each written back to its slot (under the lock, held by the caller)."""
    result = change(states, tags)
    for base, tag, state in zip(bases, tags, states):
        _write(c, base, tag, state)
    return result


def _write(c: Any, base: int, tag: int, state: list[float]) -> None:
    """A key's state into its slot (under the lock, held by the caller)."""
    c[base] = tag
    for i, value in enumerate(state, base + 1):  # a memoryview of int64 cells takes one at a time
        c[i] = int(value)


class Ledger:
    """One worker's holds, by key tag: written by the worker only, read by the master once the worker is gone."""

    def __init__(self, directory: str, pid: int) -> None:
        self.cells = SharedCells(f"team-keys-ledger-{pid}.cells", LEDGER_SLOTS * LEDGER_WIDTH, directory)

    def add(self, tag: int, tokens: int, requests: int, money: int = 0) -> None:
        c = self.cells.cells
        start = tag % LEDGER_SLOTS
        for probe in range(LEDGER_SLOTS):
            base = ((start + probe) % LEDGER_SLOTS) * LEDGER_WIDTH
            if c[base] in (tag, 0):
                c[base] = tag
                c[base + 1] += tokens
                c[base + 2] += requests
                c[base + 3] += money
                return
        # a full ledger (1,024 keys in flight in one worker): this hold is not recorded; it is given back when
        # the request ends as usual, only a killed worker's would stay


def release_dead_worker(pid: int, directory: str | None = None) -> int:
    """In the Gunicorn master when a worker exited: take the holds its requests in flight still had off the shared
    windows (a killed worker never gave them back); returns how many requests' holds were taken off."""
    directory = directory or os.environ.get(SHARED_DIR_ENV) or ""
    ledger_path = os.path.join(directory, f"team-keys-ledger-{pid}.cells")
    if not directory or not os.path.exists(ledger_path):
        return 0
    ledger_cells = Ledger(directory, pid).cells
    ledger = ledger_cells.cells
    cells = SharedCells(CELLS_NAME, SLOTS * WIDTH, directory)
    try:
        released = _take_off(cells, ledger)
    finally:
        ledger_cells.close()
        cells.close()
    os.unlink(ledger_path)
    return released


def _take_off(cells: SharedCells, ledger: Any) -> int:
    released = 0
    with cells.lock() as c:
        for i in range(LEDGER_SLOTS):
            tag, tokens, requests, money = ledger[i * LEDGER_WIDTH:(i + 1) * LEDGER_WIDTH]
            if not tag or (not tokens and not requests and not money):
                continue
            base = LocalWindows._slot(c, tag)
            if base is None or c[base] != tag:
                continue
            c[base + 1 + windows.RESERVED] = max(0, c[base + 1 + windows.RESERVED] - tokens)
            c[base + 1 + windows.IN_FLIGHT] = max(0, c[base + 1 + windows.IN_FLIGHT] - requests)
            c[base + 1 + windows.MONEY_HELD] = max(0, c[base + 1 + windows.MONEY_HELD] - money)
            released += requests
    return released
