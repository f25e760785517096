"""Redis went away: keep serving with per-worker counting and a warning (REDIS_OUTAGE=local, the default), or
refuse team-key requests with a 503 (REDIS_OUTAGE=refuse). Usage recorded meanwhile is kept in order and
written to Redis once it answers again, once: nothing is lost or counted twice, also when a write that timed out
was carried out after all (each write has a number the store remembers: WriteNumbers).

While Redis is down it is tried again at most once per RETRY_SECONDS, so a store that does not answer
costs a request nothing more than a dictionary look-up.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
from collections import deque
from typing import Any, Iterator

from argoproxy.errors import ProxyError
from argoproxy.teamkeys import windows
from argoproxy.teamkeys.redis_store import held_admission

log = logging.getLogger("cot_proxy")

RETRY_SECONDS = 1.0
LOCAL = "local"  # a hold made in this worker's own windows while Redis was away
LATER = "*"  # after a holder's name: its hold is given back with the next batch (heartbeat)
PENDING_MAX = 100_000  # usage records kept for Redis's return; older ones are dropped (and said so)


def nothing_used(record: Any, now: float) -> tuple[Any, ...]:
    """record_usage's arguments for a hold given back with nothing used: (name, model, input, output, when, budget,
    requests, cost, unpriced, dollar budget)."""
    return (record.name, "-", 0, 0, now, record.budget, 0, 0, 0, getattr(record, "budget_usd", None))


class StoreDown(Exception):
    """The shared store cannot be reached now."""


class FailoverStore:
    def __init__(self, primary: Any, outage: str = "local", errors: tuple[type[BaseException], ...] = ()) -> None:
        self.primary = primary
        self.refuse = outage == "refuse"
        self.errors = errors or _redis_errors()
        self.path = primary.path
        self._down_until = 0.0
        self._local: dict[str, list[float]] = {}  # per-worker counting while the primary is away
        # usage recorded while the primary is away: (record_usage's arguments, op, release)
        self._pending: deque[tuple[tuple[Any, ...], tuple[str, int], tuple[str, int, int, int] | None]] = deque()
        self._dropped = 0
        self._replaying = threading.Lock()  # one replay at a time: greenlets and threads meet Redis's return together
        self._ops = WriteNumbers()
        self._later: dict[tuple[Any, ...], list[Any]] = {}  # holds given back with the next batch (release_hold)
        self._later_lock = threading.Lock()

    def available(self) -> bool:
        return True

    def refusing(self) -> bool:
        """REDIS_OUTAGE=refuse and Redis is away: every team-key request is refused, limited or not."""
        return self.refuse and time.monotonic() < self._down_until

    def find(self, key_digest: str) -> Any:
        return self._primary("find", key_digest)

    def admit(self, record: Any, now: float) -> tuple[float, str]:
        try:
            decision: tuple[float, str] = self._primary("admit", record, now)
            return decision
        except StoreDown:
            if self.refuse:
                raise ProxyError(503, "The key store is unavailable; try again shortly.", code="key_store_unavailable",
                                 headers={"Retry-After": "1"}) from None
            state = self._local.setdefault(record.name, list(windows.NEW_STATE))
            return windows.admit(state, record.rpm, record.tpm, record.budget, now)

    def reserve(self, record: Any, now: float, tokens: int, money: int = 0) -> tuple[float, str, str]:
        """admit, holding `tokens`, `money` nano-dollars and one request in flight while it runs; and where
        ("local": this worker's own windows, Redis being away; else this worker's holder name in Redis)."""
        try:
            waiting, by = self._primary("admit", record, now, tokens, money)
            held = held_admission(record)  # else admitted from leases
            later = LATER if held and not by and getattr(self.primary, "later", False) else ""
            return waiting, by, self.primary.holder() + later if held else ""
        except StoreDown:
            if self.refuse:
                raise ProxyError(503, "The key store is unavailable; try again shortly.", code="key_store_unavailable",
                                 headers={"Retry-After": "1"}) from None
            state = self._local.setdefault(record.name, list(windows.NEW_STATE))
            waiting, by = windows.admit(state, record.rpm, record.tpm, record.budget, now, tokens, record.max_parallel,
                                        record.budget_usd, money)
            return waiting, by, LOCAL

    def release_hold(self, record: Any, hold: str, reserved: int, tokens: int, now: float, held: int = 0,
                     cost: int = 0, usage: tuple[Any, ...] | None = None) -> bool:
        """A request reserve admitted ended: its hold (`reserved` tokens, `held` nano-dollars) given back with its
        usage written (`usage`: record_usage's arguments); True when that was done (kept for Redis's return when it
        is away)."""
        if not hold:
            return False
        if hold == LOCAL:
            state = self._local.get(record.name)
            if state is not None:
                windows.settle(state, reserved, 0, record.budget, now, held)
            return False  # its usage is recorded as any other (tokens counted locally while Redis is away)
        usage = nothing_used(record, now) if usage is None else (*usage, 0, 0, None)[:10]  # key_limits' have 7
        if hold.endswith(LATER):  # far from its limits: given back with the next batch (heartbeat)
            name, model, input_tokens, output_tokens, when, budget, _, spent, unpriced, budget_usd = usage
            with self._later_lock:
                group = self._later.setdefault((name, model, hold[:-1], budget, budget_usd), [0, 0, 0, 0, when, 0, 0, 0])
                group[0] += input_tokens
                group[1] += output_tokens
                group[2] += reserved
                group[3] += 1
                group[4] = when
                group[5] += spent
                group[6] += unpriced
                group[7] += held
            return True
        self.record_usage(*usage, release=(hold, reserved, 1, held))
        return True

    def _give_back_later(self) -> None:
        """The holds kept for a batch, with their usage: one write per key, model and holder."""
        with self._later_lock:
            later, self._later = self._later, {}
        for (name, model, holder, budget, budget_usd), (input_tokens, output_tokens, reserved, ended, when, spent,
                                                        unpriced, held) in later.items():
            self.record_usage(name, model, input_tokens, output_tokens, when, budget, ended, spent, unpriced,
                              budget_usd, release=(holder, reserved, ended, held))

    def heartbeat(self) -> None:
        self._give_back_later()
        try:
            self._primary("heartbeat")
        except StoreDown:
            pass  # what this worker holds lapses in HOLD_SECONDS; given back by the writes kept meanwhile

    def release_leases(self, expired_only: bool = True) -> None:
        try:
            self._primary("release_leases", expired_only)
        except StoreDown:
            pass  # given back when Redis is back: the reservations slide out of their window meanwhile

    def record_usage(self, *args: Any, release: tuple[str, int, int, int] | None = None) -> None:
        op = self._ops.next()  # the same write, however often it is sent: carried out once (redis_store.py)
        try:
            self._primary("record_usage", *args, op=op, **({"release": release} if release else {}))
        except StoreDown:
            name, _, input_tokens, output_tokens, now, budget = args[:6]
            cost, budget_usd = (args[7], args[9]) if len(args) > 9 else (0, None)
            windows.add_tokens(self._local.setdefault(name, list(windows.NEW_STATE)), input_tokens + output_tokens,
                               budget, now, cost, budget_usd)
            if len(self._pending) >= PENDING_MAX:
                self._pending.popleft()
                self._dropped += 1
            self._pending.append((args, op, release))

    def _primary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() < self._down_until:
            raise StoreDown
        try:
            if self._pending or self._down_until:
                self._replay()
            return getattr(self.primary, method)(*args, **kwargs)
        except self.errors as exc:
            if not self._down_until:
                log.warning("team keys: the key store (%s) is unavailable (%s): %s", _kind(self.primary),
                            type(exc).__name__, "refusing team-key requests (REDIS_OUTAGE=refuse)" if self.refuse
                            else "counting per worker until it is back (REDIS_OUTAGE=local)")
            self._down_until = time.monotonic() + RETRY_SECONDS
            raise StoreDown from None

    def _replay(self) -> None:
        """Usage recorded while the primary was away, written to it once, in order: each record is taken before
        it is written (a write lets other greenlets run) and put back first if the write fails."""
        with self._replaying:
            while self._pending:
                record = self._pending.popleft()
                args, op, release = record
                try:
                    self.primary.record_usage(*args, op=op, **({"release": release} if release else {}))
                except BaseException:
                    self._pending.appendleft(record)
                    raise
            if self._down_until:
                log.warning("team keys: the key store is back; usage kept meanwhile written%s",
                            f" ({self._dropped} oldest records dropped)" if self._dropped else "")
            self._down_until, self._dropped = 0.0, 0
            self._local.clear()


class WriteNumbers:
    """(this process's token, the next number) for each usage write. A write that timed out may have been
    received and carried out later (a Redis that hung, not one that went away): written again under the same
    number, the store carries it out once. The token is drawn again in a forked worker."""

    def __init__(self) -> None:
        self._pid = -1
        self._token = ""
        self._numbers: Iterator[int] = iter(())

    def next(self) -> tuple[str, int]:
        if self._pid != os.getpid():
            self._pid, self._token, self._numbers = os.getpid(), secrets.token_hex(8), itertools.count(1)
        return self._token, next(self._numbers)


def _kind(store: Any) -> str:
    from argoproxy.redaction import mask_url
    return mask_url(str(store.path))


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis
    return (redis.RedisError, OSError)
