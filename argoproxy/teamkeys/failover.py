"""Redis went away: keep serving with per-worker counting and a warning (REDIS_OUTAGE=local, the default), or
refuse team-key requests with a 503 (REDIS_OUTAGE=refuse). Usage recorded meanwhile is kept in order and
written to Redis once it answers again, once: nothing is lost or counted twice, also when a write that timed out
was carried out after all (each write has a number the store remembers: WriteNumbers).

Per-worker counting starts, for each key, from the last state this worker saw of it in Redis (last_seen.py:
its windows, budgets used, what requests in flight held), so a worker admits no more than it saw left. A key it
has not seen (or forgot) is admitted once, then counted as spent for its windows and budget periods: whatever
it had left, one worker cannot spend more than one request of it.

While Redis is down it is tried again (a PING, then the usage kept) at most once per RETRY_SECONDS, by one caller:
the others meanwhile find it down at the cost of a comparison. It is down until an answer comes, so with
REDIS_OUTAGE=refuse nothing that needs the store is served in between.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections import deque
from typing import Any, Iterator

from argoproxy.errors import ProxyError
from argoproxy.per_process import pid as own_pid
from argoproxy.teamkeys import windows
from argoproxy.teamkeys.records import money_refusal
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
        self._down = False
        self._retry_at = 0.0  # monotonic time of the next try while down
        self._local: dict[str, list[float]] = {}  # per-worker counting while the primary is away
        self._blind: set[str] = set()  # keys counted locally that this worker had not seen: admitted once
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
        return self.refuse and self._down

    def find(self, key_digest: str) -> Any:
        return self._primary("find", key_digest)

    def record_tool_usage(self, *args: Any) -> None:
        """StoreDown while Redis is away: the caller keeps the row for its return (service.py)."""
        self._primary("record_tool_usage", *args)

    def record_session_usage(self, *args: Any) -> None:
        """StoreDown while Redis is away: the caller keeps the row for its return (session_usage.py)."""
        self._primary("record_session_usage", *args)

    def session_usage(self, since: str = "") -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._primary("session_usage", since)
        return rows

    def records(self) -> list[Any]:
        """Every key's record (StoreDown while Redis is away)."""
        found: list[Any] = self._primary("records")
        return found

    def tool_usage(self, since: str = "") -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._primary("tool_usage", since)
        return rows

    def spent(self, record: Any, now: float) -> int:
        """Nano-dollars spent in the dollar budget's period: Redis's count, else (away) this worker's."""
        try:
            return int(self._primary("spent", record, now))
        except StoreDown:
            return int(self._state(record.name, now, record.budget, record.budget_usd)[windows.MONEY_USED])

    def hold_money(self, record: Any, now: float, money: int) -> tuple[float, str, str]:
        """A priced MCP tool call's price held in Redis (redis_tool_holds.py), else (away) in this worker's windows."""
        try:
            held: tuple[float, str, str] = self._primary("hold_money", record, now, money)
            return held
        except StoreDown:
            owners = record.dollar_budgets
            states = [self._state(o.name, now, o.budget, o.budget_usd) for o in owners]
            waiting, refused = windows.hold_money(states, [o.budget_usd for o in owners], now, money)
            if refused >= 0:
                return waiting, money_refusal(record, owners[refused]), ""
            for owner, state in zip(owners, states):
                if owner.name in self._blind:  # not seen before: this one call, as _admit_here admits one request
                    self._blind.discard(owner.name)
                    windows.spend_all(state, 0, 0, None, now, owner.budget_usd)
            return 0.0, "", LOCAL

    def release_money(self, record: Any, where: str, held: int, cost: int, now: float) -> None:
        """What hold_money held given back and `cost` spent: where it was held; a hold in Redis that cannot be reached
        lapses with this worker's heartbeat, and the cost is counted in this worker's windows only."""
        if where != LOCAL:
            try:
                self._primary("release_money", record, where, held, cost, now)
                return
            except StoreDown:
                held = 0
        for owner in record.dollar_budgets:
            windows.release_money(self._state(owner.name, now, owner.budget, owner.budget_usd), owner.budget_usd, now,
                                  held, cost)

    def admit(self, record: Any, now: float) -> tuple[float, str]:
        try:
            decision: tuple[float, str] = self._primary("admit", record, now)
            return decision
        except StoreDown:
            return self._admit_here(record, now)

    def reserve(self, record: Any, now: float, tokens: int, money: int = 0) -> tuple[float, str, str]:
        """admit, holding `tokens`, `money` nano-dollars and one request in flight while it runs; and where
        ("local": this worker's own windows, Redis being away; else this worker's holder name in Redis)."""
        try:
            waiting, by = self._primary("admit", record, now, tokens, money)
            held = held_admission(record)  # else admitted from leases
            later = LATER if held and not by and getattr(self.primary, "later", False) else ""
            return waiting, by, self.primary.holder() + later if held else ""
        except StoreDown:
            waiting, by = self._admit_here(record, now, tokens, money)
            return waiting, by, LOCAL

    def _admit_here(self, record: Any, now: float, tokens: int = 0, money: int = 0) -> tuple[float, str]:
        """Redis is away: refused (REDIS_OUTAGE=refuse), or admitted in this worker's own windows of the key (and
        of its team's, a refusal by the team's named "team_" + what, as the stores name it)."""
        if self.refuse:
            raise ProxyError(503, "The key store is unavailable; try again shortly.", code="key_store_unavailable",
                             headers={"Retry-After": "1"})
        team = getattr(record, "windows", None)  # its team's windows (records.py): admitted in both or in neither
        owners = (record,) if team is None else (record, team)
        states = [self._state(owner.name, now, owner.budget, owner.budget_usd) for owner in owners]
        before = [list(state) for state in states] if team is not None else []
        for owner, state in zip(owners, states):
            waiting, by = windows.admit(state, owner.rpm, owner.tpm, owner.budget, now, tokens, owner.max_parallel,
                                        owner.budget_usd, money)
            if by:
                for state, was in zip(states, before):
                    state[:] = was
                return waiting, by if owner is record else "team_" + by
        for owner, state in zip(owners, states):
            if owner.name in self._blind:  # a key (or team) this worker had not seen: this one request, no more
                self._blind.discard(owner.name)
                windows.spend_all(state, owner.rpm, owner.tpm, owner.budget, now, owner.budget_usd)
        return 0.0, ""

    def _state(self, name: str, now: float, budget: Any, budget_usd: Any) -> list[float]:
        """The key's local windows: from what this worker last saw of it in Redis, else blind (_admit_here). What
        it saw in an earlier budget period says nothing of this one's: blind too."""
        state = self._local.get(name)
        if state is None:
            seen = getattr(self.primary, "seen", None)
            state = seen.get(name) if seen is not None else None
            if state is None or not windows.in_periods(state, now, budget, budget_usd):
                state = list(windows.NEW_STATE)
                self._blind.add(name)
            self._local[name] = state
        return state

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
                windows.settle(state, reserved, 0, record.budget, now, held, 0, record.budget_usd)
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
            state = self._state(name, now, budget, budget_usd)
            if release is not None:  # a hold made in Redis, which this worker's state of the key counts
                _, reserved, ended, held = release
                windows.give_back(state, reserved, ended, held)
            windows.add_tokens(state, input_tokens + output_tokens, budget, now, cost, budget_usd)
            if len(self._pending) >= PENDING_MAX:
                self._pending.popleft()
                self._dropped += 1
            self._pending.append((args, op, release))

    def _primary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            if self._down:
                self._try_again()
            elif self._pending:  # kept by a caller that met the outage's end
                self._replay()
            return getattr(self.primary, method)(*args, **kwargs)
        except self.errors as exc:
            self._went_down(exc)
            raise StoreDown from None

    def _try_again(self) -> None:
        """Redis is down: StoreDown until RETRY_SECONDS after the last try; then this caller tries (the others
        meanwhile are told it is down): a PING, the usage kept written, and it is back."""
        now = time.monotonic()
        if now < self._retry_at:
            raise StoreDown
        self._retry_at = now + RETRY_SECONDS
        ping = getattr(self.primary, "ping", None)
        if ping is not None:
            ping()
        self._replay()
        if self._down:
            log.warning("team keys: the key store is back; usage kept meanwhile written%s",
                        f" ({self._dropped} oldest records dropped)" if self._dropped else "")
            self._down, self._dropped = False, 0
            self._local.clear()  # what it counted is in Redis now (the usage kept), or lapsed with its windows
            self._blind.clear()

    def _went_down(self, exc: BaseException) -> None:
        if not self._down:
            log.warning("team keys: the key store (%s) is unavailable (%s): %s", _kind(self.primary),
                        type(exc).__name__, "refusing team-key requests (REDIS_OUTAGE=refuse)" if self.refuse
                        else "counting per worker until it is back (REDIS_OUTAGE=local), from what this worker last "
                        "saw of each key")
        self._down = True
        self._retry_at = time.monotonic() + RETRY_SECONDS

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


class WriteNumbers:
    """(this process's token, the next number) for each usage write. A write that timed out may have been
    received and carried out later (a Redis that hung, not one that went away): written again under the same
    number, the store carries it out once. The token is drawn again in a forked worker."""

    def __init__(self) -> None:
        self._pid = -1
        self._token = ""
        self._numbers: Iterator[int] = iter(())

    def next(self) -> tuple[str, int]:
        if self._pid != own_pid():
            self._pid, self._token, self._numbers = own_pid(), secrets.token_hex(8), itertools.count(1)
        return self._token, next(self._numbers)


def _kind(store: Any) -> str:
    from argoproxy.redaction import mask_url
    return mask_url(str(store.path))


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis
    return (redis.RedisError, OSError)
