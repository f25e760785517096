"""The team key store in Redis (REDIS_URL): key records, rate windows, budgets and usage shared by every
replica, so N instances behind a load balancer enforce one budget (as the LiteLLM proxy and Envoy's global
rate limit service do). The same interface and the same sliding-window arithmetic
(argoproxy/teamkeys/windows.py) as the SQLite store, but kept as plain counters so that every step is one
atomic command and admission is one round trip: a request is counted first (INCR) and read with the other
counters in the same pipeline; a request the counts refuse is taken back (DECR). Two replicas racing for the
last slot can both be refused for a moment; they can never both get it.

Layout, under PREFIX: key:<digest> (hash: the record), name:<name> (the digest of the active key of that name),
req:<name>:<minute> and tok:<name>:<minute> (requests and tokens counted in that minute window; they expire
after the next one), bud:<name>:<period start> (tokens used in a budget period), usd:<name>:<period>:<start>
(nano-dollars spent in a dollar budget's period), usage:* (the daily usage rows by day, with roll-ups by name and
by model: redis_usage_totals.py), team:<name> (hash: a team's record), teams (the set of teams' names);
cot_proxy:audit (a stream: the audit log, audit_stores.py). A team's windows are counted as a key's, under the name
team/<name> (records.TEAM_WINDOWS: no key's name holds a '/'), its usage rows likewise.
"""

from __future__ import annotations

import itertools
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from argoproxy.per_process import pid as own_pid
from argoproxy.teamkeys import windows
from argoproxy.teamkeys.last_seen import LastSeen
from argoproxy.teamkeys.audit_stores import RedisAudit
from argoproxy.teamkeys.redis_people import RedisPeople
from argoproxy.teamkeys.redis_usage_totals import ADD_ONE, ADD_USAGE, RedisUsageTotals, add_args
from argoproxy.teamkeys.redis_records import PREFIX, RedisRecords
from argoproxy.teamkeys.records import Budget, KeyRecord, MoneyBudget
from argoproxy.teamkeys.redis_deadline import TIMEOUT, with_deadline  # a round trip's whole time, not each read's
from argoproxy.teamkeys.redis_tool_holds import RedisToolHolds
from argoproxy.teamkeys.redis_tool_usage import RedisToolUsage
from argoproxy.teamkeys.session_usage import RedisSessionUsage
from argoproxy.teamkeys.store import usage_day

# Leases: a round trip to Redis costs more CPU than the rest of a request's admission (redis-py: 70 us for a
# PING), so a worker far from a key's limits reserves several requests at once and admits them locally. A
# lease takes at most 1/LEASE_SHARE of the room each limit still has (a key with fewer than 32 requests free
# in its rpm window gets none: each request is checked in Redis), at most LEASE_MAX requests; for tpm and
# budgets the room is counted in requests at the key's recent tokens per request. What a lease leaves
# unused is given back after LEASE_SECONDS, so the replicas together never admit more requests than the
# rpm; token counts are re-read at least every LEASE_SECONDS.
LEASE_MAX = 64
LEASE_SHARE = 32
LEASE_SECONDS = 1.0
TOKENS_PER_REQUEST = 4096  # assumed for a key's first requests, before its answers have been counted


@dataclass
class WindowLease:
    window: int  # the minute window its requests were reserved in
    left: int
    until: float  # monotonic time after which it is given back


def connect(url: str) -> Any:
    import redis
    return with_deadline(redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                                              decode_responses=True))


class RedisKeyStore(RedisRecords, RedisToolUsage, RedisToolHolds, RedisPeople, RedisSessionUsage, RedisAudit,
                    RedisUsageTotals):
    """Key and team records (redis_records.py), the counting below, its MCP tool calls' rows and holds
    (redis_tool_*.py), the audit log (audit_stores.py), usage summed for the console (redis_usage_totals.py)."""

    def __init__(self, url: str, client: Any = None, lease_max: int = LEASE_MAX) -> None:
        self.url = url
        self.redis = client if client is not None else connect(url)
        self.path = url  # where the keys are, for messages (credentials are masked by the caller)
        self.lease_max = lease_max
        self._leases: dict[str, WindowLease] = {}
        self._lease_lock = threading.Lock()
        self._once = self.redis.register_script(RECORD_ONCE)
        self._add_usage = self.redis.register_script(ADD_ONE)
        self._held_admit = self.redis.register_script(HELD_ADMIT)
        self._team_admit = self.redis.register_script(TEAM_ADMIT)
        self._holder_pid, self._holder = -1, ""
        self._held = False  # this worker holds something: its heartbeat keeps it
        self.later = False  # the last admission's hold may be given back in a batch (read at once by the caller)
        self.seen = LastSeen()  # each key's counts as this worker last read them, for an outage (failover.py)
        self.hold_seconds, self.held_ttl = HOLD_SECONDS, HELD_TTL  # (a tool call's price held: redis_tool_holds.py)

    def available(self) -> bool:
        return True

    def ping(self) -> None:
        """Raises when Redis does not answer (the failover's probe while it is away)."""
        self.redis.ping()

    # ------------------------------------------------------------ counting
    def _forget(self, name: str) -> None:
        counters = [k for kind in ("req", "tok", "bud", "usd") for k in self.redis.scan_iter(f"{PREFIX}{kind}:{name}:*")]
        counters += [_held_key(name), _flight_key(name), _held_usd_key(name)]
        self.redis.delete(*counters)
        self.forget_usage(name)
        self.forget_sessions(name)

    def admit(self, record: KeyRecord, now: float, reserve: int = 0, money: int = 0) -> tuple[float, str]:
        """Count one request if rpm, tpm, the budget and max_parallel allow it now: (0, ""); else (seconds to wait,
        what is exhausted) and nothing counted. A key with token limits or a cap on requests in flight: one
        atomic script (HELD_ADMIT) that also holds `reserve` tokens and one request in flight for this worker
        until settle gives them back. A key with only rpm: from this worker's lease when it holds one; else one
        round trip (the request counted first, the other counters read in the same pipeline), a second to take
        a request back when refused or to reserve a lease."""
        if record.windows is not None:
            return self._admit_with_team(record, record.windows, now, reserve, money)
        if held_admission(record):
            return self._admit_held(record, now, reserve, money)
        window = int(now // windows.WINDOW)
        with self._lease_lock:
            lease = self._leases.get(record.name)
            if lease is not None and lease.left > 0 and lease.window == window and time.monotonic() < lease.until:
                lease.left -= 1
                return 0.0, ""
            self._leases.pop(record.name, None)
        req = _req_key(record.name, window)
        pipe = self.redis.pipeline(transaction=False)
        if lease is not None and lease.left > 0:  # what the last lease did not use goes back first
            pipe.decrby(_req_key(record.name, lease.window), lease.left)
        pipe.incr(req)
        pipe.expire(req, WINDOW_TTL)
        pipe.mget(_req_key(record.name, window - 1), _tok_key(record.name, window), _tok_key(record.name, window - 1),
                  _budget_key(record.name, record.budget, now))
        counted, _, (prev_req, tok, prev_tok, used) = pipe.execute()[-3:]
        counts = Counts(counted, _int(prev_req), _int(tok), _int(prev_tok), _int(used), now - window * windows.WINDOW)
        waiting, by = _refusal(record, counts, now)
        self._saw(record, now, window, counted - 1 if by else counted, counts.prev_requests, counts.tokens,
                  counts.prev_tokens, counts.budget_used)
        if by:
            self.redis.decr(req)
            return waiting, by
        self._reserve(record, counts, req, window)
        return 0.0, ""

    def _reserve(self, record: KeyRecord, counts: "Counts", req: str, window: int) -> None:
        """A lease for the next requests, when the key is far from every limit (see LEASE_SHARE)."""
        size = _lease_size(record, counts, self.lease_max)
        if size <= 0:
            return
        total = self.redis.incrby(req, size)
        over = counts.recent(total, counts.prev_requests) - record.rpm if record.rpm else 0
        if over > 0:  # other workers reserved meanwhile: keep only what fits
            give_back = min(size, math.ceil(over))
            self.redis.decrby(req, give_back)
            size -= give_back
        if size <= 0:
            return
        with self._lease_lock:  # another admission of this worker may have reserved meanwhile: its lease is kept
            held = self._leases.get(record.name)
            if held is not None and held.window == window:
                held.left += size
                return
            self._leases[record.name] = WindowLease(window, size, time.monotonic() + LEASE_SECONDS)
        if held is not None and held.left:  # a lease of an earlier window, replaced: what it left goes back
            self.redis.decrby(_req_key(record.name, held.window), held.left)

    def _admit_held(self, record: KeyRecord, now: float, reserve: int, money: int = 0) -> tuple[float, str]:
        window = int(now // windows.WINDOW)
        elapsed = now - window * windows.WINDOW
        name, holders = record.name, PREFIX + "holders"
        budget_key = _budget_key(name, record.budget, now) if record.budget is not None else ""
        usd = record.budget_usd
        got = self._held_admit(
            keys=[_req_key(name, window), _req_key(name, window - 1), _tok_key(name, window), _tok_key(name, window - 1),
                  budget_key, _held_key(name), _flight_key(name), holders,
                  _usd_key(name, usd, now) if usd is not None else "", _held_usd_key(name)],
            args=[record.rpm, record.tpm, record.budget.tokens if record.budget is not None else 0, record.max_parallel,
                  repr(elapsed), reserve, self.holder(), int(now * 1000), int((now + HOLD_SECONDS) * 1000),
                  WINDOW_TTL, HELD_TTL, usd.nanos if usd is not None else 0, money])
        if got[0] == 1:
            req, prev_req, tok, prev_tok, used, held, in_flight, spent, held_money = (int(v) for v in got[3:])
            self._saw(record, now, window, req + 1, prev_req, tok, prev_tok, used, held + reserve, in_flight + 1, spent,
                      held_money + money)  # this request counted and held
            self._held = True
            # Far from its token limits (LEASE_SHARE reservations of room left), a key's hold may be given back
            # with its usage in the next batch (FLUSH_SECONDS later) rather than in a round trip of its own:
            # what it holds until then only makes admission stricter, and there is room to spare.
            self.later = not record.max_parallel and got[1] >= LEASE_SHARE * max(reserve, 1) \
                and got[2] >= LEASE_SHARE * max(money, 1)
            return 0.0, ""
        req, prev_req, tok, prev_tok, used, held, in_flight, spent, held_money = (int(v) for v in got[1:])
        self._saw(record, now, window, req, prev_req, tok, prev_tok, used, held, in_flight, spent, held_money)
        counts = Counts(req + 1, prev_req, tok, prev_tok, used, elapsed, held, in_flight, spent, held_money)
        waiting, by = _refusal(record, counts, now, max(reserve, 1), money)
        return (waiting, by) if by else (windows.HELD_WAIT, "requests")  # the script's floats are Lua's

    def _admit_with_team(self, record: KeyRecord, team: KeyRecord, now: float, reserve: int,
                         money: int) -> tuple[float, str]:
        """_admit_held in the key's counters and its team's in one atomic step (TEAM_ADMIT): counted and held in
        both, or in neither; a refusal by the team's limits is named "team_" + what."""
        window = int(now // windows.WINDOW)
        elapsed = now - window * windows.WINDOW
        got = self._team_admit(
            keys=[*_held_keys(record, window, now), *_held_keys(team, window, now)],
            args=[repr(elapsed), reserve, self.holder(), int(now * 1000), int((now + HOLD_SECONDS) * 1000), WINDOW_TTL,
                  HELD_TTL, money, *_held_limits(record), *_held_limits(team)])
        if got[0] == 1:
            for owner, at in ((record, 3), (team, 12)):  # each one's counts, this request counted and held
                req, prev_req, tok, prev_tok, used, held, in_flight, spent, held_money = (int(v) for v in got[at:at + 9])
                self._saw(owner, now, window, req + 1, prev_req, tok, prev_tok, used, held + reserve, in_flight + 1,
                          spent, held_money + money)
            self._held = True
            self.later = not (record.max_parallel or team.max_parallel) and got[1] >= LEASE_SHARE * max(reserve, 1) \
                and got[2] >= LEASE_SHARE * max(money, 1)
            return 0.0, ""
        owner = record if got[1] == 1 else team
        req, prev_req, tok, prev_tok, used, held, in_flight, spent, held_money = (int(v) for v in got[2:])
        self._saw(owner, now, window, req, prev_req, tok, prev_tok, used, held, in_flight, spent, held_money)
        counts = Counts(req + 1, prev_req, tok, prev_tok, used, elapsed, held, in_flight, spent, held_money)
        waiting, by = _refusal(owner, counts, now, max(reserve, 1), money)
        waiting, by = (waiting, by) if by else (windows.HELD_WAIT, "requests")
        return waiting, by if owner is record else "team_" + by

    def _saw(self, record: KeyRecord, now: float, window: int, requests: int, prev_requests: int, tokens: int,
             prev_tokens: int, used: int, held: int = 0, in_flight: int = 0, spent: int = 0,
             held_money: int = 0) -> None:
        """What an admission read of the key's counts, kept for an outage (last_seen.py)."""
        budget, usd = record.budget, record.budget_usd
        self.seen.saw(record.name, window, requests, prev_requests, tokens, prev_tokens,
                      windows.period_bounds(budget.period, now)[0] if budget is not None else 0, used, held, in_flight,
                      windows.period_bounds(usd.period, now)[0] if usd is not None else 0, spent, held_money)

    def money_keys(self, owner: KeyRecord, now: float) -> tuple[str, str]:
        """Where a dollar budget is counted: what was spent in its period, and what each worker holds of it."""
        assert owner.budget_usd is not None
        return _usd_key(owner.name, owner.budget_usd, now), _held_usd_key(owner.name)

    def holders_key(self) -> str:
        return PREFIX + "holders"

    def holder(self) -> str:
        """This worker's name for what it holds in Redis (drawn again in a forked worker)."""
        if self._holder_pid != own_pid():
            self._holder_pid, self._holder = own_pid(), secrets.token_hex(8)
        return self._holder

    def in_flight(self, name: str) -> int:
        """The key's requests in flight on every replica, as admission counts them (holds not yet lapsed)."""
        return sum(int(v) for v in self.redis.hvals(_flight_key(name)))

    def heartbeat(self) -> None:
        """This worker is alive: what it holds stays held HOLD_SECONDS more (a killed worker's holds lapse then)."""
        if self._held:
            now = time.time()
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(PREFIX + "holders", {self.holder(): int((now + HOLD_SECONDS) * 1000)})
            pipe.zremrangebyscore(PREFIX + "holders", "-inf", int((now - 3600) * 1000))
            pipe.execute()

    def release_leases(self, expired_only: bool = True) -> None:
        """Give back what leases left unused (expired ones, or all: a worker stopping)."""
        now = time.monotonic()
        with self._lease_lock:
            done = [(n, lease) for n, lease in self._leases.items() if not expired_only or now >= lease.until]
            for name, _ in done:
                del self._leases[name]
        if any(lease.left for _, lease in done):
            pipe = self.redis.pipeline(transaction=False)
            for name, lease in done:
                if lease.left:
                    pipe.decrby(_req_key(name, lease.window), lease.left)
            pipe.execute()

    def record_usage(self, name: str, model: str, input_tokens: int, output_tokens: int, now: float,
                     budget: Budget | None, requests: int = 1, cost: int = 0, unpriced: int = 0,
                     budget_usd: MoneyBudget | None = None, op: tuple[str, int] | None = None,
                     release: tuple[str, int, int, int] | None = None) -> None:
        """An answer's tokens in the minute window, the budget period and the daily usage: one round trip of
        increments, each atomic on its own (a replay after an outage adds, it cannot overwrite). With `op` (a
        writer's token and the write's number), written at most once however often it is sent: a write that
        timed out may still be carried out (a Redis that hung, then went on with what it had received), and
        the failover sends it again (failover.py)."""
        tokens = input_tokens + output_tokens
        row = add_args(usage_day(now), name, model)
        tok = _tok_key(name, int(now // windows.WINDOW))
        if release is not None and op is None:  # the hold is given back once, however often this is sent
            op = (self.holder(), next(_DIRECT_WRITES))
        if op is not None:
            bud, kept_until = (_budget_key(name, budget, now),
                               int(windows.period_bounds(budget.period, now)[1]) + 86400) if budget is not None else ("", 0)
            usd, usd_until = (_usd_key(name, budget_usd, now), int(windows.period_bounds(budget_usd.period, now)[1])
                              + 86400) if budget_usd is not None else ("", 0)
            holder, reserved, ended, held = release if release is not None else ("", 0, 0, 0)
            done = self._once(keys=[PREFIX + "ops:" + op[0], tok, bud, "", _held_key(name),
                                    _flight_key(name), usd, _held_usd_key(name)],
                              args=[op[1], OPS_KEPT, OPS_TTL, tokens, WINDOW_TTL, kept_until, "", requests,
                                    input_tokens, output_tokens, holder, reserved, ended, cost, unpriced, usd_until,
                                    held, *row])
            if done:  # not a write sent again that Redis had carried out
                self.seen.wrote(name, tokens, cost, now, budget, budget_usd, release)
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.incrby(tok, tokens)
        pipe.expire(tok, WINDOW_TTL)
        if budget is not None:
            start, end = windows.period_bounds(budget.period, now)
            pipe.incrby(_budget_key(name, budget, now), tokens)
            pipe.expireat(_budget_key(name, budget, now), int(end) + 86400)
        if budget_usd is not None:
            usd = _usd_key(name, budget_usd, now)
            pipe.incrby(usd, cost)
            pipe.expireat(usd, int(windows.period_bounds(budget_usd.period, now)[1]) + 86400)
        self._add_usage(args=[*row, requests, input_tokens, output_tokens, cost, unpriced], client=pipe)
        pipe.execute()
        self.seen.wrote(name, tokens, cost, now, budget, budget_usd)

    def used_in_period(self, record: KeyRecord, now: float) -> int:
        """Tokens the key (or team) used in its budget's current period, as admission counts them."""
        return _int(self.redis.get(_budget_key(record.name, record.budget, now))) if record.budget else 0

    def spent(self, record: KeyRecord, now: float) -> int:
        """Nano-dollars the key spent in its dollar budget's current period, as admission counts them."""
        return _int(self.redis.get(_usd_key(record.name, record.budget_usd, now))) if record.budget_usd else 0

    def usage(self, since: str = "") -> list[tuple[str, str, str, int, int, int, int, int]]:
        """`keys usage`'s rows (redis_usage_totals.py: a day's rows a bounded step at a time)."""
        return self.usage_rows(since)


@dataclass
class Counts:
    """A key's counters as one admission read them: requests in this minute window (this one included), in the
    previous window, tokens likewise, tokens used in the budget period; seconds elapsed in the window."""
    requests: int
    prev_requests: int
    tokens: int
    prev_tokens: int
    budget_used: int
    elapsed: float
    held: int = 0  # tokens reserved by requests in flight (every live worker's)
    in_flight: int = 0
    spent: int = 0  # nano-dollars spent in the dollar budget's period
    held_money: int = 0  # nano-dollars held by requests in flight

    def recent(self, current: float, previous: float) -> float:
        """The sliding-window estimate (windows.py): the current count and what still counts of the previous."""
        return current + previous * (1 - self.elapsed / windows.WINDOW)


def _refusal(record: KeyRecord, c: Counts, now: float, need: int = 1, money: int = 0) -> tuple[float, str]:
    """(seconds to wait, "requests", "tokens", "budget" or "budget_usd") when a limit refuses a request that may
    use `need` tokens and cost `money` nano-dollars, (0.0, "") when none does: windows.over_limits' arithmetic on
    the counters."""
    spent = c.tokens + need - 1
    by_tokens = windows.wait(spent + c.held, c.prev_tokens, record.tpm - 1, c.elapsed) if record.tpm else 0.0
    if by_tokens > 0 and c.held and windows.wait(spent, c.prev_tokens, record.tpm - 1, c.elapsed) <= 0:
        by_tokens = windows.HELD_WAIT  # held by requests in flight: it frees as they end
    waits = [(windows.wait(c.requests - 1, c.prev_requests, record.rpm - 1, c.elapsed) if record.rpm else 0.0,
              "requests"), (by_tokens, "tokens")]
    if record.budget is not None and c.budget_used + need > record.budget.tokens:
        waits.append((windows.period_bounds(record.budget.period, now)[1] - now, "budget"))
    elif record.budget is not None and c.budget_used + c.held + need > record.budget.tokens:
        waits.append((windows.HELD_WAIT, "budget"))
    usd = record.budget_usd
    if usd is not None and (c.spent + money > usd.nanos or c.spent >= usd.nanos):
        waits.append((windows.period_bounds(usd.period, now)[1] - now, "budget_usd"))
    elif usd is not None and c.spent + c.held_money + money > usd.nanos:
        waits.append((windows.HELD_WAIT, "budget_usd"))
    if record.max_parallel and c.in_flight >= record.max_parallel:
        waits.append((windows.HELD_WAIT, "parallel"))
    waiting, by = max(waits)
    return (waiting, by) if waiting > 0 else (0.0, "")


def _lease_size(record: KeyRecord, c: Counts, most: int) -> int:
    """How many more requests to reserve: a 1/LEASE_SHARE part of what each limit still has room for, tokens
    counted at the key's recent tokens per request (TOKENS_PER_REQUEST before it has any)."""
    sizes = [most - 1]
    if record.rpm:
        sizes.append(int((record.rpm - c.recent(c.requests, c.prev_requests)) // LEASE_SHARE))
    if record.tpm or record.budget is not None:
        requests = c.requests - 1 + c.prev_requests
        per_request = (c.tokens + c.prev_tokens) / requests if requests and c.tokens + c.prev_tokens else \
            TOKENS_PER_REQUEST
        if record.tpm:
            sizes.append(int((record.tpm - c.recent(c.tokens, c.prev_tokens)) / per_request // LEASE_SHARE))
        if record.budget is not None:
            sizes.append(int((record.budget.tokens - c.budget_used) / per_request // LEASE_SHARE))
    return max(0, min(sizes))


WINDOW_TTL = int(3 * windows.WINDOW)  # a minute's counters are read during the next one, then not again
# A usage write carried out at most once: the writer's recent write numbers (a sorted set, the last OPS_KEPT of
# them, kept OPS_TTL seconds) say whether this one was; then record_usage's increments, in one atomic step (the
# usage row with its roll-ups: redis_usage_totals.py's add_usage).
OPS_KEPT = 4096
OPS_TTL = 86400
RECORD_ONCE = ADD_USAGE + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -1 - tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('INCRBY', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[5])
if KEYS[3] ~= '' then
  redis.call('INCRBY', KEYS[3], ARGV[4])
  redis.call('EXPIREAT', KEYS[3], ARGV[6])
end
add_usage(ARGV[18], ARGV[19], ARGV[20], ARGV[21], ARGV[22], ARGV[23], {ARGV[8], ARGV[9], ARGV[10], ARGV[14], ARGV[15]})
if KEYS[7] ~= '' then
  redis.call('INCRBY', KEYS[7], ARGV[14])
  redis.call('EXPIREAT', KEYS[7], ARGV[16])
end
if ARGV[11] ~= '' then
  local held = tonumber(redis.call('HGET', KEYS[5], ARGV[11]) or '0') - tonumber(ARGV[12])
  if held > 0 then redis.call('HSET', KEYS[5], ARGV[11], held) else redis.call('HDEL', KEYS[5], ARGV[11]) end
  local flying = tonumber(redis.call('HGET', KEYS[6], ARGV[11]) or '0') - tonumber(ARGV[13])
  if flying > 0 then redis.call('HSET', KEYS[6], ARGV[11], flying) else redis.call('HDEL', KEYS[6], ARGV[11]) end
  local money = tonumber(redis.call('HGET', KEYS[8], ARGV[11]) or '0') - tonumber(ARGV[17])
  if money > 0 then redis.call('HSET', KEYS[8], ARGV[11], money) else redis.call('HDEL', KEYS[8], ARGV[11]) end
end
return 1
"""
# Admission of a key with token or dollar limits or a cap on requests in flight, in one atomic step: what live
# workers hold (held:NAME, flight:NAME and heldusd:NAME, per holder; a holder whose heartbeat in `holders` lapsed
# is dropped) counts as used, and the request's own reservation (one token at least) and its most in dollars must
# fit in what is left; admitted, the request is counted and this worker holds its reservations and one request in
# flight. Returns {1, room left under the token limits, under the dollar budget, then the counts read} admitted,
# else {0, the counts read}; the counts: requests, previous requests, tokens, previous tokens, budget used, held,
# in flight, nano-dollars spent, nano-dollars held (last_seen.py keeps them for an outage).
HELD_ADMIT = """
local now = tonumber(ARGV[8])
local held, flying, held_money = 0, 0, 0
for _, k in ipairs({6, 7, 10}) do
  local entries = redis.call('HGETALL', KEYS[k])
  for i = 1, #entries, 2 do
    local alive = redis.call('ZSCORE', KEYS[8], entries[i])
    if (not alive) or tonumber(alive) < now then
      redis.call('HDEL', KEYS[k], entries[i])
    elseif k == 6 then held = held + tonumber(entries[i + 1])
    elseif k == 7 then flying = flying + tonumber(entries[i + 1])
    else held_money = held_money + tonumber(entries[i + 1]) end
  end
end
local spent = 0
if KEYS[9] ~= '' then spent = tonumber(redis.call('GET', KEYS[9]) or '0') end
local usd, money = tonumber(ARGV[12]), tonumber(ARGV[13])
local keep = 1 - tonumber(ARGV[5]) / 60
local req = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev_req = tonumber(redis.call('GET', KEYS[2]) or '0')
local tok = tonumber(redis.call('GET', KEYS[3]) or '0')
local prev_tok = tonumber(redis.call('GET', KEYS[4]) or '0')
local used = 0
if KEYS[5] ~= '' then used = tonumber(redis.call('GET', KEYS[5]) or '0') end
local rpm, tpm, budget, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local need = math.max(tonumber(ARGV[6]), 1)
if (rpm > 0 and req + prev_req * keep > rpm - 1) or (tpm > 0 and tok + held + need + prev_tok * keep > tpm)
   or (budget > 0 and used + held + need > budget) or (most > 0 and flying >= most)
   or (usd > 0 and spent + held_money + money > usd) then
  return {0, req, prev_req, tok, prev_tok, used, held, flying, spent, held_money}
end
local room = 1000000000000000
if tpm > 0 then room = math.min(room, tpm - (tok + held + prev_tok * keep) - tonumber(ARGV[6])) end
if budget > 0 then room = math.min(room, budget - (used + held) - tonumber(ARGV[6])) end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[10])
redis.call('HINCRBY', KEYS[6], ARGV[7], ARGV[6])
redis.call('HINCRBY', KEYS[7], ARGV[7], 1)
redis.call('EXPIRE', KEYS[6], ARGV[11])
redis.call('EXPIRE', KEYS[7], ARGV[11])
local money_room = 1000000000000000
if usd > 0 then money_room = usd - (spent + held_money) - money end
if money > 0 then
  redis.call('HINCRBY', KEYS[10], ARGV[7], ARGV[13])
  redis.call('EXPIRE', KEYS[10], ARGV[11])
end
redis.call('ZADD', KEYS[8], ARGV[9], ARGV[7])
return {1, math.floor(room), math.floor(money_room), req, prev_req, tok, prev_tok, used, held, flying, spent,
        held_money}
"""
# HELD_ADMIT for a key and its team at once: KEYS[1..10] the key's (as HELD_ADMIT's), KEYS[11..20] the team's;
# ARGV[1..8]: elapsed, reservation, holder, now and hold-until (ms), the two TTLs, the most it may cost; then each
# one's rpm, tpm, token budget, max_parallel and dollar budget (ARGV[9..13] the key's, ARGV[14..18] the team's).
# Returns {1, room left under the token limits, under the dollar budgets, the key's counts, the team's} admitted
# (both counted and held; the counts as HELD_ADMIT's, read before this request), else
# {0, 1 (the key) or 2 (the team), requests, previous requests, tokens, previous tokens, budget used, held, in
# flight, nano-dollars spent, nano-dollars held} of the one that refused (the key's when both do).
TEAM_ADMIT = """
local now, need, money = tonumber(ARGV[4]), math.max(tonumber(ARGV[2]), 1), tonumber(ARGV[8])
local keep = 1 - tonumber(ARGV[1]) / 60
local function look(o, a)
  local k = function(i) return KEYS[o + i] end
  local held, flying, held_money = 0, 0, 0
  for _, i in ipairs({6, 7, 10}) do
    local entries = redis.call('HGETALL', k(i))
    for j = 1, #entries, 2 do
      local alive = redis.call('ZSCORE', k(8), entries[j])
      if (not alive) or tonumber(alive) < now then
        redis.call('HDEL', k(i), entries[j])
      elseif i == 6 then held = held + tonumber(entries[j + 1])
      elseif i == 7 then flying = flying + tonumber(entries[j + 1])
      else held_money = held_money + tonumber(entries[j + 1]) end
    end
  end
  local c = {req = tonumber(redis.call('GET', k(1)) or '0'), prev_req = tonumber(redis.call('GET', k(2)) or '0'),
             tok = tonumber(redis.call('GET', k(3)) or '0'), prev_tok = tonumber(redis.call('GET', k(4)) or '0'),
             used = 0, spent = 0, held = held, flying = flying, held_money = held_money}
  if k(5) ~= '' then c.used = tonumber(redis.call('GET', k(5)) or '0') end
  if k(9) ~= '' then c.spent = tonumber(redis.call('GET', k(9)) or '0') end
  local rpm, tpm, budget = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local most, usd = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  c.over = (rpm > 0 and c.req + c.prev_req * keep > rpm - 1) or (tpm > 0 and c.tok + held + need + c.prev_tok * keep > tpm)
     or (budget > 0 and c.used + held + need > budget) or (most > 0 and flying >= most)
     or (usd > 0 and c.spent + held_money + money > usd)
  c.room, c.money_room = 1000000000000000, 1000000000000000
  if tpm > 0 then c.room = math.min(c.room, tpm - (c.tok + held + c.prev_tok * keep) - tonumber(ARGV[2])) end
  if budget > 0 then c.room = math.min(c.room, budget - (c.used + held) - tonumber(ARGV[2])) end
  if usd > 0 then c.money_room = usd - (c.spent + held_money) - money end
  return c
end
local function count(o)
  local k = function(i) return KEYS[o + i] end
  redis.call('INCR', k(1))
  redis.call('EXPIRE', k(1), ARGV[6])
  redis.call('HINCRBY', k(6), ARGV[3], ARGV[2])
  redis.call('HINCRBY', k(7), ARGV[3], 1)
  redis.call('EXPIRE', k(6), ARGV[7])
  redis.call('EXPIRE', k(7), ARGV[7])
  if money > 0 then
    redis.call('HINCRBY', k(10), ARGV[3], ARGV[8])
    redis.call('EXPIRE', k(10), ARGV[7])
  end
  redis.call('ZADD', k(8), ARGV[5], ARGV[3])
end
local mine, team = look(0, 9), look(10, 14)
for who, c in ipairs({mine, team}) do
  if c.over then
    return {0, who, c.req, c.prev_req, c.tok, c.prev_tok, c.used, c.held, c.flying, c.spent, c.held_money}
  end
end
count(0)
count(10)
return {1, math.floor(math.min(mine.room, team.room)), math.floor(math.min(mine.money_room, team.money_room)),
        mine.req, mine.prev_req, mine.tok, mine.prev_tok, mine.used, mine.held, mine.flying, mine.spent, mine.held_money,
        team.req, team.prev_req, team.tok, team.prev_tok, team.used, team.held, team.flying, team.spent, team.held_money}
"""
HOLD_SECONDS = 10.0  # a worker's holds lapse this long after its last heartbeat (every FLUSH_SECONDS while alive)
HELD_TTL = 86400  # held:NAME and flight:NAME go when no request of the key was admitted for a day
_DIRECT_WRITES = itertools.count(1)



def held_admission(record: KeyRecord) -> bool:
    """Admitted by the HELD_ADMIT script: a key with token or dollar limits, or a cap on requests in flight (or by
    TEAM_ADMIT: a key of a team with limits)."""
    return bool(record.tpm or record.budget is not None or record.max_parallel or record.budget_usd is not None
                or record.windows is not None)


def _held_keys(record: KeyRecord, window: int, now: float) -> list[str]:
    """HELD_ADMIT's ten keys for a key (or a team's windows record)."""
    name = record.name
    return [_req_key(name, window), _req_key(name, window - 1), _tok_key(name, window), _tok_key(name, window - 1),
            _budget_key(name, record.budget, now) if record.budget is not None else "", _held_key(name),
            _flight_key(name), PREFIX + "holders",
            _usd_key(name, record.budget_usd, now) if record.budget_usd is not None else "", _held_usd_key(name)]


def _held_limits(record: KeyRecord) -> list[int]:
    return [record.rpm, record.tpm, record.budget.tokens if record.budget is not None else 0, record.max_parallel,
            record.budget_usd.nanos if record.budget_usd is not None else 0]


def _held_key(name: str) -> str:
    return f"{PREFIX}held:{name}"


def _held_usd_key(name: str) -> str:
    return f"{PREFIX}heldusd:{name}"


def _usd_key(name: str, budget: MoneyBudget, now: float) -> str:
    return f"{PREFIX}usd:{name}:{budget.period}:{int(windows.period_bounds(budget.period, now)[0])}"


def _flight_key(name: str) -> str:
    return f"{PREFIX}flight:{name}"


def _req_key(name: str, window: int) -> str:
    return f"{PREFIX}req:{name}:{window}"


def _tok_key(name: str, window: int) -> str:
    return f"{PREFIX}tok:{name}:{window}"


def _budget_key(name: str, budget: Budget | None, now: float) -> str:
    if budget is None:
        return PREFIX + "bud:-"  # never written: reads as 0
    return f"{PREFIX}bud:{name}:{budget.period}:{int(windows.period_bounds(budget.period, now)[0])}"


def _int(value: str | None) -> int:
    return int(value) if value else 0
