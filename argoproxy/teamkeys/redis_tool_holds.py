"""A priced MCP tool call's price held in Redis (docs/mcp.md, "Limits"): in the key's and its team's dollar
budgets while the call runs, as a model request's most is held (redis_store.py's HELD_ADMIT), so every replica's
calls in flight count; given back as the call ends, its price then spent when its server answered it.
RedisKeyStore has these methods; SQLite's store holds them in the workers' shared cells (local_windows.py)."""

from __future__ import annotations

from typing import Any

from argoproxy.teamkeys import windows
from argoproxy.teamkeys.records import KeyRecord, money_refusal

# KEYS: the holders (a sorted set of live workers), then each owner's spent in its period and its holds by worker;
# ARGV: now and hold-until (ms), this worker's name, the price, the holds' TTL, then each owner's budget. Each owner's
# holds of lapsed workers are dropped; the price must fit in what is left of every budget, what live workers hold
# counted as spent. Returns {1} held in every one, else {0, the owner that refused (1, 2), 1 when only what is held
# refuses it (it frees as calls end), 0 when what was spent does (until the period ends)}.
HOLD = """
local now, price = tonumber(ARGV[1]), tonumber(ARGV[4])
local owners = (#KEYS - 1) / 2
for o = 1, owners do
  local spent_key, held_key = KEYS[2 * o], KEYS[2 * o + 1]
  local held = 0
  local entries = redis.call('HGETALL', held_key)
  for i = 1, #entries, 2 do
    local alive = redis.call('ZSCORE', KEYS[1], entries[i])
    if (not alive) or tonumber(alive) < now then redis.call('HDEL', held_key, entries[i])
    else held = held + tonumber(entries[i + 1]) end
  end
  local spent, budget = tonumber(redis.call('GET', spent_key) or '0'), tonumber(ARGV[5 + o])
  if spent + price > budget or spent >= budget then return {0, o, 0} end
  if spent + held + price > budget then return {0, o, 1} end
end
for o = 1, owners do
  redis.call('HINCRBY', KEYS[2 * o + 1], ARGV[3], price)
  redis.call('EXPIRE', KEYS[2 * o + 1], ARGV[5])
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return {1}
"""
# KEYS as HOLD's without the holders; ARGV: the worker's name, what it held, the cost, each spent key's expiry.
RELEASE = """
for o = 1, #KEYS / 2 do
  local spent_key, held_key = KEYS[2 * o - 1], KEYS[2 * o]
  local left = tonumber(redis.call('HGET', held_key, ARGV[1]) or '0') - tonumber(ARGV[2])
  if left > 0 then redis.call('HSET', held_key, ARGV[1], left) else redis.call('HDEL', held_key, ARGV[1]) end
  if ARGV[3] ~= '0' then
    redis.call('INCRBY', spent_key, ARGV[3])
    redis.call('EXPIREAT', spent_key, ARGV[3 + o])
  end
end
return 1
"""


class RedisToolHolds:
    redis: Any
    seen: Any  # last_seen.py's LastSeen
    hold_seconds: float  # a worker's holds lapse this long after its last heartbeat
    held_ttl: int
    _held: bool  # this worker holds something: its heartbeat keeps it

    def holder(self) -> str:  # RedisKeyStore's: this worker's name for what it holds
        raise NotImplementedError

    def money_keys(self, owner: KeyRecord, now: float) -> tuple[str, str]:  # and where a dollar budget is counted
        raise NotImplementedError

    def holders_key(self) -> str:
        raise NotImplementedError

    def hold_money(self, record: KeyRecord, now: float, money: int) -> tuple[float, str, str]:
        """The price held in the key's and its team's dollar budgets (one atomic step): (0, "", this worker's name)
        held; else (seconds to wait, "budget_usd" or "team_budget_usd", "") and nothing held."""
        owners = record.dollar_budgets
        keys = [self.holders_key(), *(k for owner in owners for k in self.money_keys(owner, now))]
        got = self._script("_hold", HOLD)(keys=keys, args=[
            int(now * 1000), int((now + self.hold_seconds) * 1000), self.holder(), money, self.held_ttl,
            *(owner.budget_usd.nanos for owner in owners if owner.budget_usd is not None)])
        if got[0] == 1:
            self._held = True
            return 0.0, "", self.holder()
        owner = owners[int(got[1]) - 1]
        assert owner.budget_usd is not None
        waiting = windows.HELD_WAIT if got[2] == 1 else windows.period_bounds(owner.budget_usd.period, now)[1] - now
        return waiting, money_refusal(record, owner), ""

    def release_money(self, record: KeyRecord, where: str, held: int, cost: int, now: float) -> None:
        """What hold_money held given back, and `cost` spent in each budget (one atomic step)."""
        owners = record.dollar_budgets
        keys = [k for owner in owners for k in self.money_keys(owner, now)]
        ends = [int(windows.period_bounds(o.budget_usd.period, now)[1]) + 86400 for o in owners if o.budget_usd]
        self._script("_release", RELEASE)(keys=keys, args=[where, held, cost, *ends])
        for owner in owners:
            self.seen.wrote(owner.name, 0, cost, now, None, owner.budget_usd)

    def _script(self, name: str, source: str) -> Any:
        script = self.__dict__.get(name)
        if script is None:
            script = self.__dict__[name] = self.redis.register_script(source)
        return script
