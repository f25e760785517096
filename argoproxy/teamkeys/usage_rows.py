"""A worker's team-key usage rows, written behind the requests (TeamKeys has these methods): each answer's row
queued and summed by key and model, written every FLUSH_SECONDS by a thread of its own (one store write per pair;
a row the store refuses, locked or away, kept and tried again, at most PENDING_MAX), the MCP tool calls' rows with
their teams' beside them, the worker's heartbeat, and what a leaving worker counted written."""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
import time
from typing import Any, Callable

from argoproxy.leaving import at_quick_exit, in_time
from argoproxy.teamkeys.failover import StoreDown
from argoproxy.teamkeys.session_usage import SessionUsage
from argoproxy.teamkeys.records import TEAM_WINDOWS, Budget, MoneyBudget

log = logging.getLogger("cot_proxy")

QUIT_WRITE_SECONDS = 2.0  # what a worker leaving at once may take to write its usage
FLUSH_SECONDS = 0.5  # usage is written this often, off the requests' path (summed by key and model)
PENDING_MAX = 100_000  # usage rows kept while the store refuses them (retried each flush); older ones are dropped
# A usage row waiting to be written: _write's arguments (name, model, input, output, when, budget, counted,
# requests, cost, unpriced, dollar budget).
UsageRow = tuple[str, str, int, int, float, Budget | None, bool, int, int, int, MoneyBudget | None]
STORE_ERRORS = (StoreDown, sqlite3.Error, OSError)  # the store cannot answer now (FailoverStore turns Redis's into StoreDown)


class UsageRows(SessionUsage):
    store: Any
    clock: Callable[[], float]
    on_dropped: Callable[[int], None] | None
    _pending: list[UsageRow]
    _pending_lock: threading.Lock
    _flush_lock: threading.Lock
    _tools: dict[tuple[str, str, str, float], list[int]]
    _tools_kept: dict[tuple[str, str, str, float], list[int]]
    _flusher: threading.Thread | None
    _write_failing: bool

    def _queue(self, name: str, model: str, prompt: int, completion: int, now: float, budget: Any,
               counted: bool, spent: tuple[int, int] = (0, 0), budget_usd: Any = None) -> None:
        with self._pending_lock:
            self._pending.append((name, model, prompt, completion, now, budget, counted, 1, *spent, budget_usd))
        if self._flusher is None:
            self._start_flusher()

    def holding(self) -> None:
        """Something is held in the store for a call in flight (a tool call's price): the flusher's heartbeat keeps
        it held while this worker lives."""
        if self._flusher is None:
            self._start_flusher()

    def tool_used(self, name: str, server: str, tool: str, error: bool, seconds: float, bytes_in: int,
                  bytes_out: int, cost: int = 0) -> None:
        """A key's MCP tool call, for its usage row (written with the next flush, off the call's path)."""
        day = self.clock() // 86400 * 86400
        with self._pending_lock:
            row = self._tools.get((name, server, tool, day))
            if row is None:
                if len(self._tools) >= PENDING_MAX:
                    return  # the store has refused rows for long: dropped, as model rows past the bound are
                row = self._tools[(name, server, tool, day)] = [0, 0, 0, 0, 0, 0]
            for i, value in enumerate((1, int(error), round(seconds * 1000), bytes_in, bytes_out, cost)):
                row[i] += value
        if self._flusher is None:
            self._start_flusher()

    def _flush_tools(self) -> None:
        """The tool calls' rows, with their teams' beside them, one store write each; a row the store refuses is
        kept (its team's row made already) for the next flush."""
        with self._pending_lock:
            fresh, self._tools = self._tools, {}
            batch, self._tools_kept = self._tools_kept, {}
        teams = self._teams_of({name for name, *_ in fresh})
        if teams is None:  # the store is away: the rows wait, their teams to be read with the next flush's
            with self._pending_lock:
                _add_rows(self._tools, fresh)
        else:
            _add_rows(batch, fresh)
            _add_rows(batch, {(TEAM_WINDOWS + teams[name], *rest): numbers
                              for (name, *rest), numbers in fresh.items() if name in teams})
        kept: dict[tuple[str, str, str, float], list[int]] = {}
        for (name, server, tool, day), numbers in batch.items():
            try:
                self.store.record_tool_usage(name, server, tool, day, *numbers)
            except STORE_ERRORS:
                kept[(name, server, tool, day)] = numbers
            except Exception:  # noqa: BLE001 - counting must never end the worker
                log.exception("team keys: tool usage of key %s not recorded", name)
        if kept:
            with self._pending_lock:
                _add_rows(self._tools_kept, kept)

    def _teams_of(self, names: set[str]) -> dict[str, str] | None:
        """The team each of these keys is in as its rows are written (one read of the keys a flush; a team's tool
        rows are named TEAM_WINDOWS + its name, as its model rows are); None: the store did not answer."""
        if not names:
            return {}
        try:
            return {r.name: r.team for r in self.store.records() if r.name in names and r.team}
        except STORE_ERRORS:
            return None
        except Exception:  # noqa: BLE001 - counting must never end the worker: the keys' rows go without them
            log.exception("team keys: the teams of keys %s not read; their tool rows go without", sorted(names))
            return {}

    def flush(self) -> None:
        """What this worker counted, written, one flush at a time: the rows the flusher holds in hand are in no
        queue, so a leaving worker's flush must wait for them to be written before it ends the process."""
        with self._flush_lock:
            self._flush_once()

    def _flush_once(self) -> None:
        """The pending answers, summed by key and model: one store write per pair (one the store refuses, locked
        or away, is kept and tried again at the next flush); what expired leases left unused, given back; and
        this worker's heartbeat (what it holds in Redis stays held)."""
        try:
            self.store.heartbeat()
            self.store.release_leases()
        except Exception:  # noqa: BLE001 - counting must never end the worker
            log.exception("team keys: unused leases not given back")
        if self._tools or self._tools_kept:
            self._flush_tools()
        if self._sessions or self._sessions_kept:
            self.flush_sessions(STORE_ERRORS)
        with self._pending_lock:
            batch, self._pending = self._pending, []
        groups: dict[tuple[str, str, bool], list[Any]] = {}  # the sums of UsageRow's numbers, the latest of the rest
        for name, model, prompt, completion, now, budget, counted, requests, cost, unpriced, budget_usd in batch:
            group = groups.setdefault((name, model, counted), [0, 0, now, budget, 0, 0, 0, budget_usd])
            group[0] += prompt
            group[1] += completion
            group[2], group[3], group[7] = now, budget, budget_usd
            group[4] += requests
            group[5] += cost
            group[6] += unpriced
        failed = [(name, model, prompt, completion, now, budget, counted, requests, cost, unpriced, budget_usd)
                  for (name, model, counted), (prompt, completion, now, budget, requests, cost, unpriced, budget_usd)
                  in groups.items()
                  if not self._write(name, model, prompt, completion, now, budget, counted, requests, cost, unpriced,
                                     budget_usd)]
        if failed:
            self._keep(failed)

    def _keep(self, rows: list[UsageRow]) -> None:
        """Rows the store refused, kept first in line for the next flush; past PENDING_MAX the oldest are dropped,
        said once per flush and counted (cot_proxy_key_usage_dropped_total)."""
        with self._pending_lock:
            self._pending[:0] = rows
            over = len(self._pending) - PENDING_MAX
            if over > 0:
                del self._pending[:over]
        if over > 0:
            log.warning("team keys: %d usage rows dropped: the key store refused them for too long", over)
            if self.on_dropped is not None:
                self.on_dropped(over)

    def _write(self, name: str, model: str, prompt: int, completion: int, now: float, budget: Any,
               counted: bool, requests: int, cost: int = 0, unpriced: int = 0, budget_usd: Any = None) -> bool:
        """False when the store refused the row (the caller keeps it)."""
        try:
            if counted:
                self.store.record_usage(name, model, prompt, completion, now, budget, requests, cost, unpriced,
                                        budget_usd, counted=True)
            else:
                self.store.record_usage(name, model, prompt, completion, now, budget, requests, cost, unpriced,
                                        budget_usd)
            if self._write_failing:
                self._write_failing = False
                log.warning("team keys: the usage kept meanwhile is written")
            return True
        except STORE_ERRORS as exc:
            if not self._write_failing:
                log.warning("team keys: usage not written yet (%s: %s); kept and tried again", type(exc).__name__,
                            exc)
            self._write_failing = True
            return False
        except Exception:  # noqa: BLE001 - counting must never end the worker
            log.exception("team keys: usage of key %s not recorded", name)
            return True

    def _start_flusher(self) -> None:
        def loop() -> None:
            while True:
                time.sleep(FLUSH_SECONDS)
                self.flush()
        self._flusher = threading.Thread(target=loop, name="team-keys-usage", daemon=True)
        self._flusher.start()
        atexit.register(self._leave)  # a worker stopping gracefully writes what it counted
        at_quick_exit(self._leave_at_once)  # a quick stop (Ctrl+C, SIGINT) runs no atexit hook

    def _leave(self) -> None:
        """What a stopping worker counted, written; what it reserved, given back."""
        self.flush()
        self.store.release_leases(False)

    def _leave_at_once(self) -> None:
        """_leave from the quick stop, for QUIT_WRITE_SECONDS at most."""
        if not in_time(QUIT_WRITE_SECONDS, self._leave):
            log.warning("team keys: this worker's last usage was not written within %s s of its quick stop",
                        QUIT_WRITE_SECONDS)


def _add_rows(into: dict[tuple[Any, ...], list[int]], rows: dict[Any, list[int]]) -> None:
    """Usage rows summed into others, number by number."""
    for group, numbers in rows.items():
        row = into.setdefault(group, [0] * len(numbers))
        for i, value in enumerate(numbers):
            row[i] += value
