"""Per-client-key budgets (`key_limits`): requests and tokens per minute and requests in flight, across all
workers, and across replicas with REDIS_URL.

A key is named by the environment variable that holds it (TEAM_A_KEY); the key itself is only held as its
SHA-256 digest, to recognise it among the keys a request presents. Its limits are counted exactly as a team
key's (argoproxy/teamkeys/): a KeyRecord named `env:TEAM_A_KEY` in the same stores, so the sliding windows,
reservations (the most the request's upstream may spend on it, held until it ends: parallel requests cannot
pass the tpm), `max_parallel`, the outage policy and the clean-up after a killed worker are the
same code. Without REDIS_URL the counts live in the cells the instance's workers share
(argoproxy/teamkeys/local_windows.py); with it, in Redis (argoproxy/teamkeys/redis_store.py), so three
replicas with rpm=6 let 6 requests a minute through, not 18. Over a limit: 429 with Retry-After.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import math
import threading
import time
from typing import Any, Callable, Iterable, Mapping

from argoproxy.pipeline.call import Call
from argoproxy.pipeline.call_records import CallEnd, CallStart
from argoproxy.errors import ProxyError
from argoproxy.config.routing_settings import KeyLimit
from argoproxy.shared_cells import SharedCells
from argoproxy.teamkeys.local_windows import LocalWindows
from argoproxy.teamkeys.records import KeyRecord
from argoproxy.meter import Asked, worst_of
from argoproxy.teamkeys.service import FLUSH_SECONDS, over_budget, too_large
from argoproxy.teamkeys.windows import NEW_STATE, PREV_REQ, PREV_TOK, REQ, TOK, WINDOW, roll


log = logging.getLogger("cot_proxy")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def limits_record(limit: KeyLimit) -> KeyRecord:
    """The team-key record a key_limits entry is counted as: named env:VARIABLE, tagged by the variable's name."""
    name = "env:" + limit.key_env
    return KeyRecord(name, hashlib.sha256(name.encode()).hexdigest(), "", rpm=limit.rpm, tpm=limit.tpm,
                     max_parallel=limit.max_parallel)


class LocalLimits:
    """One instance's counting: the workers' shared cells (the store interface of teamkeys/store.py)."""

    def __init__(self, cells: SharedCells | None = None) -> None:
        self.windows = LocalWindows(lambda record, now: 0, cells)

    def reserve(self, record: KeyRecord, now: float, tokens: int) -> tuple[float, str, str]:
        decision = self.windows.admit(record, now, tokens)
        return (decision[0], decision[1], "cells") if decision is not None else (0.0, "", "")

    def release_hold(self, record: KeyRecord, hold: str, reserved: int, tokens: int, now: float, held: int = 0,
                     cost: int = 0, usage: tuple[object, ...] | None = None) -> bool:
        if hold == "cells":
            self.windows.settle(record, reserved, tokens, now)
        return True

    def add_tokens(self, record: KeyRecord, tokens: int, now: float) -> None:
        self.windows.add_tokens(record, tokens, now)

    def state(self, record: KeyRecord) -> list[float]:
        tag = int(record.digest[:15], 16) or 1
        with self.windows.cells.lock() as c:
            base = self.windows._slot(c, tag)
            if base is None or c[base] != tag:
                return list(NEW_STATE)
            return list(c[base + 1:base + 1 + len(NEW_STATE)])


class KeyLimiter:
    def __init__(self, limits: Iterable[KeyLimit], environ: Mapping[str, str],
                 cells: SharedCells | None = None, clock: Callable[[], float] = time.time, store: Any = None) -> None:
        self.limits = list(limits)
        self._by_digest = {_digest(environ[limit.key_env]): limit for limit in self.limits if environ.get(limit.key_env)}
        self._records = {limit.key_env: limits_record(limit) for limit in self.limits}
        self.store: Any = store if store is not None else LocalLimits(cells)  # Redis (FailoverStore) with REDIS_URL
        self._beat: threading.Thread | None = None
        self.clock = clock

    def keys(self) -> list[str]:
        """The environment variable names whose keys are limited."""
        return [limit.key_env for limit in self.limits]

    def identify(self, presented: Iterable[str]) -> KeyLimit | None:
        """The budget of the first presented key that has one (the key was already accepted by auth)."""
        for key in presented:
            limit = self._by_digest.get(_digest(key))
            if limit is not None:
                return limit
        return None

    def admit(self, limit: KeyLimit, body: Asked | dict[str, Any] | None = None) -> tuple[KeyRecord, int, str]:
        """Count one request against the key's limits, holding its reservation (tpm: the most its upstream may
        spend on it, meter/worst.py) and a slot in flight until `settle`; or raise a 429 (with
        Retry-After when waiting helps). Returns what settle needs."""
        record = self._records[limit.key_env]
        worst = worst_of(body) if limit.tpm else None
        tokens = worst.tokens if worst is not None else 0
        if worst is not None and tokens > limit.tpm:
            raise too_large(worst, f"{limit.tpm} tokens per minute")
        if self._beat is None and not isinstance(self.store, LocalLimits):
            self._start_heartbeat()
        waiting, by, hold = self.store.reserve(record, self.clock(), tokens)
        if not by:
            return record, tokens, hold
        seconds = max(1, math.ceil(waiting))
        if by == "parallel":
            message = f"This API key has {limit.max_parallel} requests in flight, its most at once; retry when one ends."
        else:
            what = f"{limit.rpm} requests" if by == "requests" else f"{limit.tpm} tokens"
            message = over_budget(f"{what} per minute", seconds, worst if by == "tokens" else None)
        raise ProxyError(429, message, code="rate_limit_exceeded", headers={"Retry-After": str(seconds)})

    def _start_heartbeat(self) -> None:
        """Redis: what this worker holds stays held while it lives, holds kept for a batch and leases left unused
        are given back (as team keys' flusher does, argoproxy/teamkeys/service.py)."""
        def loop() -> None:
            while True:
                time.sleep(FLUSH_SECONDS)
                self._beat_once()
        self._beat = threading.Thread(target=loop, name="key-limits-heartbeat", daemon=True)
        self._beat.start()
        atexit.register(self._beat_once, False)

    def _beat_once(self, expired_only: bool = True) -> None:
        try:
            self.store.heartbeat()
            self.store.release_leases(expired_only)
        except Exception:  # noqa: BLE001 - counting must never end the worker
            log.exception("key_limits: holds not kept alive")

    def settle(self, held: tuple[KeyRecord, int, str], tokens: int) -> None:
        """A request admit counted ended having used `tokens`: its hold given back, its tokens counted."""
        record, reserved, hold = held
        now = self.clock()
        usage = (record.name, "-", tokens, 0, now, None, 1)
        if not self.store.release_hold(record, hold, reserved, tokens, now, usage=usage) and tokens:
            self.store.record_usage(*usage)  # held in this worker while Redis was away: counted as usage is

    # --- the pipeline's side
    def admit_call(self, call: Call, presented: Iterable[str], body: Asked | None = None
                   ) -> tuple[KeyLimit | None, tuple[KeyRecord, int, str] | None]:
        """Count an API call against the budget of the client key it presented (429 over it): the budget counted
        against and what it holds until the call ends (the guard keeps both in the plan, for observe)."""
        limit = self.identify(presented)
        if limit is None:
            return None, None
        return limit, self.admit(limit, body)

    def observe(self, start: CallStart, end: CallEnd) -> None:
        """Observer: every ending gives the call's hold back; the tokens its answer used (its usage, the estimate
        when the upstream sent none) count against its key's tpm."""
        lease = start.limit_lease
        if start.key_limit is None or lease is None:
            return
        held = lease.take()  # once (a background run's call shares what admission holds)
        if not isinstance(held, tuple):
            return
        usage = end.usage
        total: Any = 0
        if isinstance(usage, dict):
            total = usage.get("total_tokens")
            if not isinstance(total, int):
                total = sum(v for v in (usage.get("prompt_tokens"), usage.get("completion_tokens"),
                                        usage.get("input_tokens"), usage.get("output_tokens")) if isinstance(v, int))
        try:
            self.settle(held, total if isinstance(total, int) and total > 0 else 0)
        except ProxyError:
            pass  # Redis away with REDIS_OUTAGE=refuse: the hold lapses with this worker's heartbeat

    def record_tokens(self, limit: KeyLimit, tokens: int) -> None:
        """Add the tokens an answer used (outside any admission: tests, and answers counted late)."""
        if limit.tpm and tokens > 0:
            record = self._records[limit.key_env]
            if isinstance(self.store, LocalLimits):
                self.store.add_tokens(record, tokens, self.clock())
            else:
                self.store.record_usage(record.name, "-", tokens, 0, self.clock(), None, 0)

    def usage(self, limit: KeyLimit) -> tuple[float, float]:
        """(requests, tokens) counted in the last minute, as the sliding window sees them now (this instance)."""
        state = self.store.state(self._records[limit.key_env]) if isinstance(self.store, LocalLimits) else None
        if state is None:
            return 0.0, 0.0
        elapsed = roll(state, 0, self.clock())
        keep = 1 - elapsed / WINDOW
        return state[REQ] + state[PREV_REQ] * keep, state[TOK] + state[PREV_TOK] * keep
