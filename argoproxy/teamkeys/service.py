"""What the proxy does with team keys on each request: recognise a presented key, refuse a revoked or expired
one, hold it to its model globs, rate limits and budget (429 with Retry-After), and count what it used.

A looked-up key is remembered for CACHE_SECONDS, so `cot-proxy keys revoke` (or a changed limit) takes effect on
every worker within that time. A key in use is read again in the background once its record is READ_AHEAD_SECONDS
old, so requests seldom wait for the store; those that must (a record older than CACHE_SECONDS) wait for one read
of the key together. While the store cannot be reached (Redis away or too slow, keys.db locked,
unreadable or read-only), a key looked up before is served from the cache for at most KEY_CACHE_SECONDS after its
last successful look-up, then refused with a 503: a revoked key cannot live on in a replica cut off from the
store. With REDIS_OUTAGE=refuse every team-key request is refused while Redis is away. Known and unknown keys are
cached apart, each bounded (LRU), so random keys cannot push out the keys in use nor make every request a read.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple, Protocol

from argoproxy.errors import ProxyError
from argoproxy.teamkeys.failover import FailoverStore, StoreDown
from argoproxy.teamkeys.lookup_cache import LRU, Read, Reads
from argoproxy.meter import NOTHING, Asked, Worst, worst_of
from argoproxy.spend import dollars
from argoproxy.teamkeys.records import TEAM_WINDOWS, Budget, KeyRecord, MoneyBudget, digest
from argoproxy.teamkeys.usage_rows import FLUSH_SECONDS as FLUSH_SECONDS  # admission/key_limits.py's too
from argoproxy.teamkeys.usage_rows import STORE_ERRORS, UsageRow, UsageRows
from argoproxy.turns import beside

if TYPE_CHECKING:
    from argoproxy.meter import Used
    from argoproxy.spend import Cost

log = logging.getLogger("cot_proxy")


# What team keys read of a call, declared here so that this room needs nothing of the sequence's: the sequence's
# Call, CallStart and CallEnd (pipeline/) have these fields.
class ModelNamed(Protocol):
    @property
    def model(self) -> str | None: ...


class Asking(Protocol):
    """A call being admitted (pipeline/call.py's Call): its plan's model names it in a refusal, and the meter's
    bounds price it."""
    @property
    def plan(self) -> ModelNamed: ...


class Started(Protocol):
    """A call's start record (pipeline/call_records.py's CallStart)."""
    @property
    def team_key(self) -> KeyRecord | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def key_lease(self) -> object: ...
    @property
    def session(self) -> str: ...


class Ended(Protocol):
    """A call's end record (pipeline/call_records.py's CallEnd)."""
    @property
    def used(self) -> Used | None: ...
    @property
    def cost(self) -> Cost | None: ...

CACHE_SECONDS = 0.5  # a looked-up key is read again after this (revocations and changed limits reach workers)
READ_AHEAD_SECONDS = CACHE_SECONDS / 2  # a key in use is read again after this, beside the requests: none waits
# unless the read takes longer than the rest of CACHE_SECONDS (at most twice the reads a key in use had)
KEY_CACHE_SECONDS = 30.0  # the most a cached key is served while the store cannot be reached (KEY_CACHE_SECONDS)
CACHE_ENTRIES = 4096  # known keys kept per worker (LRU); as many unknown keys, apart
WHAT = {"requests": "{rpm} requests per minute", "tokens": "{tpm} tokens per minute",
        "budget": "{budget} tokens", "budget_usd": "{budget_usd}"}


class TeamKeys(UsageRows):
    """Keys recognised, admitted and settled here; their usage rows written behind (usage_rows.py)."""

    def __init__(self, store: Any, clock: Callable[[], float] = time.time,
                 cache_seconds: float = KEY_CACHE_SECONDS) -> None:
        self.store = store
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.inactive_days = 0.0  # OIDC_INACTIVE_DAYS with sign-in on: an owner not seen for longer stops their keys
        self.ticks: Callable[[], float] = time.monotonic  # the cache's clock
        self._known: LRU[tuple[KeyRecord, float]] = LRU(CACHE_ENTRIES)  # digest -> (record, when read)
        self._unknown: LRU[float] = LRU(CACHE_ENTRIES)  # digest -> when the store said it has no such key
        self._reads = Reads()  # store reads under way, one per key: a key's other callers wait for it
        self._read_ahead: LRU[float] = LRU(CACHE_ENTRIES)  # digest -> the cached record's time it was read ahead for
        self._store_failing = False
        self._pending: list[UsageRow] = []
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time: a leaving worker waits for the batch in hand
        self._write_failing = False
        self.on_dropped: Callable[[int], None] | None = None  # metrics: usage rows a hard bound forced out
        self._flusher: threading.Thread | None = None
        # MCP tool calls waiting to be written, summed by (key, server, tool, day): calls, errors, milliseconds,
        # bytes in and out, nano-dollars (argoproxy/mcp/recording.py hands them in: tool_used)
        self._tools: dict[tuple[str, str, str, float], list[int]] = {}
        self._tools_kept: dict[tuple[str, str, str, float], list[int]] = {}  # refused by the store: written again
        # Usage by agent session, summed by (key, session, model, day) (session_usage.py)
        self._sessions: dict[tuple[str, str, str, float], list[int]] = {}
        self._sessions_kept: dict[tuple[str, str, str, float], list[int]] = {}
        self._sessions_seen: dict[tuple[str, float], set[str]] = {}

    def lookup(self, presented: Iterable[str]) -> KeyRecord | None:
        """The record of the first presented key the store knows (revoked and expired ones included); a 503 when
        the store cannot say and no look-up of the key within KEY_CACHE_SECONDS can stand in for it."""
        if not self.store.available():
            return None
        now = self.ticks()
        for key in presented:
            record = self._record(digest(key), now)
            if record is not None:
                return record
        return None

    def _record(self, key_digest: str, now: float) -> KeyRecord | None:
        known = self._known.get(key_digest)
        unknown = self._unknown.get(key_digest) if known is None else None
        read_at = known[1] if known is not None else unknown
        refusing = getattr(self.store, "refusing", None)
        age = math.inf  # of the cached answer; none to serve: inf
        if read_at is not None and not (refusing is not None and refusing()):
            age = now - read_at
            if age <= CACHE_SECONDS:
                if age > READ_AHEAD_SECONDS and self._read_ahead.get(key_digest) != read_at:
                    self._read_ahead.put(key_digest, read_at)  # once per cached record: a failed read is not retried
                    self._begin_read_ahead(key_digest, now)
                return known[0] if known is not None else None
        read, mine = self._reads.join_or_begin(key_digest, now, CACHE_SECONDS)
        if mine:
            self._read(key_digest, read)
        else:
            read.wait()
        if read.error is None:
            return read.record
        if not isinstance(read.error, STORE_ERRORS):
            raise read.error
        if age <= self.cache_seconds and not (refusing is not None and refusing()):  # REDIS_OUTAGE=refuse: never
            return known[0] if known is not None else None  # fail closed after KEY_CACHE_SECONDS
        raise ProxyError(503, "The key store is unavailable; try again shortly.", code="key_store_unavailable",
                         headers={"Retry-After": "1"}) from None

    def _begin_read_ahead(self, key_digest: str, now: float) -> None:
        """The key read again beside the request (a greenlet, or a thread), its cached record served meanwhile;
        nothing when a read of it is under way."""
        read = self._reads.begin(key_digest, now)
        if read is not None:
            beside(self._read_beside, key_digest, read, name="team-keys-read")

    def _read_beside(self, key_digest: str, read: Read) -> None:
        if self._reads.take(read):  # else a request that needed the key first carried it out
            self._read(key_digest, read)

    def _read(self, key_digest: str, read: Read) -> None:
        """Carry out `read`: the store's answer cached as of the read's start (unless a later read's is), handed to
        those who wait for it; a store error is said once per outage, and handed to them too."""
        try:
            record = self.store.find(key_digest)
        except BaseException as exc:  # noqa: BLE001 - each waiter decides (read.error); the reader's caller too
            if isinstance(exc, STORE_ERRORS):
                self._failed(exc)
            read.finish(error=exc)
            return
        finally:
            self._reads.end(key_digest, read)
        if self._store_failing:
            self._store_failing = False
            log.warning("team keys: the key store answers again")
        known = self._known.get(key_digest)
        latest = known[1] if known is not None else self._unknown.get(key_digest)
        if latest is None or latest <= read.started:
            if record is None:
                self._known.pop(key_digest)
                self._unknown.put(key_digest, read.started)
            else:
                self._unknown.pop(key_digest)
                self._known.put(key_digest, (record, read.started))
        read.finish(record)

    def _failed(self, exc: BaseException) -> None:
        """One log line per outage (Redis's own are said by the failover store; SQLite's here)."""
        if self._store_failing:
            return
        self._store_failing = True
        if not isinstance(exc, StoreDown):
            from argoproxy.redaction import mask_url
            log.warning("team keys: the key store %s cannot be read (%s: %s): keys looked up within %g s are "
                        "served, others refused with 503", mask_url(str(getattr(self.store, "path", ""))),
                        type(exc).__name__, exc, self.cache_seconds)

    def refusal(self, record: KeyRecord) -> str | None:
        now = self.clock()
        refused = record.refusal(now)
        if refused is None and record.owner and self.inactive_days and record.owner_seen and \
                now - record.owner_seen > self.inactive_days * 86400:  # OIDC_INACTIVE_DAYS, checked where keys are read
            return f"This API key's owner has not signed in for more than {self.inactive_days:g} days."
        return refused

    def admit_call(self, call: Asking, record: KeyRecord, body: Asked | None = None) -> Lease | None:
        """The key's limits (reserve; its model globs were decided by the guard, argoproxy/pipeline/guard.py); 429
        over them. The lease held until the answer ends: the guard keeps it, and the key, in the plan."""
        return self.reserve(call, record, body)

    def reserve(self, call: Asking, record: KeyRecord, body: Asked | dict[str, Any] | None = None) -> Lease | None:
        """Admit the call against the key's rpm, tpm, budget, dollar budget and max_parallel, holding its
        reservation (the most its upstream may spend on it: meter/worst.py, and what that may cost) and
        one request in flight until settle or release; None for a key without limits (nothing to hold, no store
        write). 429 over a limit, in the door's shape: a request whose reservation does not fit in what is left is
        refused before anything is sent."""
        team = record.windows  # its team's limits, reserved in the same step (None: no team, or one without limits)
        if not (record.rpm or record.tpm or record.budget or record.max_parallel or record.budget_usd) and team is None:
            return None
        counted = _counts(record) or (team is not None and _counts(team))
        worst = worst_of(body) if counted else NOTHING
        owners = (record,) if team is None else (record, team)
        tokens = _tokens_held(owners, worst)
        money = self.most(call, record, worst, body) if any(o.budget_usd is not None for o in owners) else 0
        waiting, by, hold = self.store.reserve(record, self.clock(), tokens, money)
        if by:
            raise refused(team if by.startswith("team_") and team is not None else record, by.removeprefix("team_"),
                          waiting, worst, money)
        if self._flusher is None:
            self._start_flusher()  # its heartbeat keeps what this worker holds in Redis
        return Lease(record, tokens, hold, money)

    def most(self, call: Asking, record: KeyRecord, worst: Worst, body: Asked | dict[str, Any] | None) -> int:
        """What the call may cost at most, in nano-dollars: its worst case in tokens at its model's dearest rates.
        A model with no price cannot be held to a dollar budget: refused (403), never let through as free; a
        request that may cost more than the whole budget can never pass: refused at once (no retry helps)."""
        bounds = body.bounds if isinstance(body, Asked) else None  # the sequence's reading: it knows the prices
        most = bounds.most_cost(call, worst.input, worst.output) if bounds is not None else None
        team = record.windows
        for owner in (record,) if team is None else (record, team):
            budget = owner.budget_usd
            if budget is None:
                continue
            if most is None:
                raise ProxyError(403, f"{whose(owner)} has a budget of {budget}, and the model {call.plan.model!r} has "
                                 "no price here: it cannot be charged. The proxy's operator can give it one (the "
                                 "`prices` setting).", code="model_not_priced", cause="budget")
            if most > budget.nanos:
                raise ProxyError(429, f"This request may cost up to ${dollars(most)} at the model's prices "
                                 f"({worst.described()}), more than {whole(whose(owner))} of {budget}: ask for "
                                 "fewer tokens (a lower "
                                 "max_tokens, fewer answers or prompts).", type="insufficient_quota",
                                 code="insufficient_quota", headers={"x-should-retry": "false"}, cause="budget")
        return most or 0

    def settle(self, lease: Lease, prompt: int, completion: int, model: str = "-", spent: Spent | None = None) -> bool:
        """The call ended having used prompt + completion tokens and cost `spent`: its hold given back, its tokens
        and cost counted where admission reads them. True when its usage row was written with it (Redis); False:
        record it as usual."""
        if lease.done:
            return True
        lease.done = True
        now = self.clock()
        record = lease.record
        cost, unpriced = spent or NOTHING_SPENT
        team = record.team_record.windows if record.team_record is not None else None  # its usage, limits or not
        try:
            if isinstance(self.store, FailoverStore):
                if team is not None:  # the team's hold (if any), counts and row, then the key's
                    self.store.release_hold(team, lease.hold, lease.tokens, prompt + completion, now, lease.money,
                                            cost, (team.name, model, prompt, completion, now, team.budget, 1, cost,
                                                   unpriced, team.budget_usd))
                return self.store.release_hold(record, lease.hold, lease.tokens, prompt + completion, now, lease.money,
                                               cost, (record.name, model, prompt, completion, now, record.budget, 1,
                                                      cost, unpriced, record.budget_usd))
            if self.store.release_hold(record, lease.hold, lease.tokens, prompt + completion, now, lease.money, cost):
                for owner in (record,) if team is None else (record, team):  # the team's in the key's cells step
                    self._queue(owner.name, model, prompt, completion, now, owner.budget, True, (cost, unpriced),
                                owner.budget_usd)
                return True
        except Exception:  # noqa: BLE001 - counting must never end the worker
            log.exception("team keys: the hold of key %s not given back", record.name)
        return False

    def release(self, lease: Lease) -> None:
        """The call ends before any answer (refused after its admission): its hold given back, nothing used."""
        if lease.done:
            return
        lease.done = True
        record, now = lease.record, self.clock()
        try:
            if isinstance(self.store, FailoverStore) and record.windows is not None:  # SQLite's: with the key's
                self.store.release_hold(record.windows, lease.hold, lease.tokens, 0, now, lease.money)
            self.store.release_hold(record, lease.hold, lease.tokens, 0, now, lease.money)
        except Exception:  # noqa: BLE001
            log.exception("team keys: the hold of key %s not given back", record.name)

    def observe(self, start: Started, end: Ended) -> None:
        """Observer: an admitted call's tokens (its usage; an estimate when the upstream sent none) count against
        its key, by model and day, and what its admission held is given back (every ending passes here: done,
        error, client gone). A key with token limits has them counted where admission reads them as the answer
        ends, so the next request sees them: in the workers' shared cells (SQLite), or written at once (Redis: a
        socket, which lets the worker's other requests run). Usage rows are written in batches (at most
        FLUSH_SECONDS late), not by the request: a database write per answer cost more than the rest of the
        request, and SQLite's wait for its lock stops a gevent worker."""
        record = start.team_key
        if record is None:
            return
        used = end.used  # the meter's reading (no usage came: the answer side's estimate, Answers.observe)
        prompt, completion = (used.input, used.output) if used is not None and start.kind != "count_tokens" \
            else (0, 0)
        model = start.model if isinstance(start.model, str) else "-"
        model = model[:200]
        spent = spent_of(end)
        team = record.team_record.windows if record.team_record is not None else None  # its usage too, limits or not
        if start.session:  # its agent session's rows, beside (written with the next flush)
            self.session_used((record.name,) if team is None else (record.name, team.name), start.session, model,
                              prompt, completion, spent.cost)
        lease = start.key_lease
        if isinstance(lease, Lease) and self.settle(lease, prompt, completion, model, spent):
            return
        now = self.clock()
        for owner in (record,) if team is None else (record, team):
            self._count(owner, model, prompt, completion, now, spent)

    def _count(self, record: KeyRecord, model: str, prompt: int, completion: int, now: float, spent: Spent) -> None:
        """A call's usage without a lease, for a key or its team's windows record."""
        counted = False
        if record.tpm or record.budget is not None or record.budget_usd is not None:
            counted = self._count_now(record, prompt + completion, now, spent.cost)
            if not counted:  # the database windows admit it: written now (kept for the next flush if refused)
                row = (record.name, model, prompt, completion, now, record.budget, False, 1, *spent, record.budget_usd)
                if not self._write(*row):
                    self._keep([row])
                return
        self._queue(record.name, model, prompt, completion, now, record.budget, counted, spent, record.budget_usd)

    def _count_now(self, record: KeyRecord, tokens: int, now: float, cost: int = 0) -> bool:
        """The answer's tokens and cost where admission reads them, now, when the store can without a write that
        would stop the worker (SQLite's shared cells); False: record_usage must be called now (Redis: a socket)."""
        count_now = getattr(self.store, "count_now", None)
        if count_now is None:
            return False
        try:
            return bool(count_now(record, tokens, now, cost))
        except Exception:  # noqa: BLE001 - counting must never end the worker
            log.exception("team keys: tokens of key %s not counted", record.name)
            return False


def _counts(record: KeyRecord) -> bool:
    """Whether the record's limits count tokens or dollars (what needs the call's worst case)."""
    return bool(record.tpm or record.budget is not None or record.budget_usd is not None)


def _tokens_held(owners: tuple[KeyRecord, ...], worst: Worst) -> int:
    """The tokens a call holds of its key's (and its team's) token limits: its worst case where one of them counts
    tokens. A call larger than a whole limit is refused at once (no retry helps)."""
    tokens = worst.tokens if worst is not NOTHING and any(o.tpm or o.budget is not None for o in owners) else 0
    for owner in owners:
        for limit, by in ((owner.tpm, "tokens"), (owner.budget.tokens if owner.budget is not None else 0, "budget")):
            if limit and tokens > limit:
                raise too_large(worst, WHAT[by].format(tpm=owner.tpm, budget=owner.budget),
                                "budget" if by == "budget" else "rate", whose(owner))
    return tokens


def whose(record: KeyRecord) -> str:
    """Who a limit is: "This API key", or its team, named (a team's windows record: records.TEAM_WINDOWS + name)."""
    if record.name.startswith(TEAM_WINDOWS):
        return f"This API key's team {record.name[len(TEAM_WINDOWS):]!r}"
    return "This API key"


def whole(who: str) -> str:
    """"this API key's whole budget", or "the whole budget of this API key's team 'lab'"."""
    return "this API key's whole budget" if who == "This API key" else f"the whole budget of {who[0].lower()}{who[1:]}"


def refused(record: KeyRecord, by: str, waiting: float, worst: Worst, money: int) -> ProxyError:
    """The 429 of a limit of the key's, or of its team's (`record`: the team's windows record), that refused it."""
    seconds = max(1, math.ceil(waiting))
    if by == "parallel":
        message = f"{whose(record)} has {record.max_parallel} requests in flight, its most at once; retry when one ends."
    elif by == "budget_usd":
        return over_dollars(record, money, seconds)
    else:
        message = over_budget(WHAT[by].format(rpm=record.rpm, tpm=record.tpm, budget=record.budget), seconds,
                              worst if by != "requests" else None, whose(record))
    return ProxyError(429, message, code="rate_limit_exceeded", headers={"Retry-After": str(seconds)},
                      cause="budget" if by == "budget" else "rate")


def over_budget(what: str, seconds: int, worst: Worst | None = None, who: str = "This API key") -> str:
    """The 429 of a key (or its team: `who`) over a limit: for a token limit, what this request may use (it does
    not fit what is left, with what the requests in flight hold)."""
    if worst is None:
        return f"{who} is over its budget of {what}; retry in {seconds} s."
    return (f"{who} is over its budget of {what} for this request ({worst.described()}, more than is left "
            f"of it); retry in {seconds} s, or ask for fewer tokens.")


def too_large(worst: Worst, what: str, cause: str = "rate", who: str = "This API key") -> ProxyError:
    """A request whose worst case is more than a whole token limit: it can never be admitted as it is (no retry
    helps: the SDKs are told not to)."""
    return ProxyError(429, f"This request is larger than {whole(who)} of {what}: {worst.described()}. "
                      "Ask for fewer tokens (a lower max_tokens, fewer answers or prompts).", code="rate_limit_exceeded",
                      headers={"x-should-retry": "false"}, cause=cause)


@dataclass
class Lease:
    """What a call's admission holds until it ends: `tokens` reserved, `money` nano-dollars (the most it may cost)
    and one request in flight, for `record`."""
    record: KeyRecord
    tokens: int
    hold: str  # where the store keeps it (its own name)
    money: int = 0
    done: bool = False


class Spent(NamedTuple):
    cost: int  # nano-dollars
    unpriced: int  # 1: the call's model has no price (counted and flagged, not charged)


NOTHING_SPENT = Spent(0, 0)


def spent_of(end: Ended) -> Spent:
    """What a finished call cost, as its usage row keeps it (argoproxy/spend/: its end record's cost)."""
    cost = end.cost
    if cost is None:
        return NOTHING_SPENT
    return Spent(cost.nanos, 0) if cost.priced else Spent(0, 1)


def over_dollars(record: KeyRecord, most: int, seconds: int) -> ProxyError:
    """A request that may cost more than what is left of the key's dollar budget (with what its requests in
    flight hold): OpenAI's answer to an account out of money, 429 insufficient_quota. A request that costs nothing
    (a free model) is refused only when nothing is left: it is told so, not that $0.00 is more than is left."""
    why = f"this request may cost up to ${dollars(most)}, more than is left of it" if most else \
        "nothing is left of it (spent, or held by the key's requests in flight)"
    return ProxyError(429, f"{whose(record)} is over its budget of {record.budget_usd}: {why}; retry in {seconds} s.",
                      type="insufficient_quota", code="insufficient_quota", headers={"Retry-After": str(seconds)},
                      cause="budget")


def open_store(keys_db: str, redis_url: str = "", outage: str = "local") -> Any:
    """Redis when REDIS_URL is set (shared by every replica, with the outage policy), else the SQLite file."""
    if redis_url:
        from argoproxy.teamkeys.redis_store import RedisKeyStore
        return FailoverStore(RedisKeyStore(redis_url), outage)
    from argoproxy.teamkeys.store import SQLiteKeyStore
    return SQLiteKeyStore(keys_db)
