"""A team key's MCP tool calls held to its limits (docs/mcp.md): its `--tool-rpm` and `--tool-parallel`, and its
team's, counted in the same windows as its model requests' rpm and max_parallel but apart from them (the key's
tool windows record, records.py: TOOL_WINDOWS + its name), so they hold across the workers of an instance (the
shared cells) and across replicas (Redis) as those do; and a priced call (a server's `price_per_call`) charged to
the key's and its team's dollar budget, the one its model calls spend.

A priced call is refused while what was spent in the budget's period leaves less than its price; it holds nothing
while it runs (it is charged as it ends), so calls in flight together may pass the budget by their prices.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from argoproxy.teamkeys.records import KeyRecord
from argoproxy.teamkeys.service import Lease, TeamKeys, whose

log = logging.getLogger("cot_proxy")


@dataclass(frozen=True)
class Refused:
    """Why a tool call was not let through: `limit` is tool_rpm, tool_parallel or budget_usd; `seconds` until it
    may pass."""
    limit: str
    seconds: int
    message: str


def admit(keys: TeamKeys, record: KeyRecord, price: int) -> Lease | Refused | None:
    """The call counted in the key's (and its team's) tool windows, and its price checked against their dollar
    budgets: the lease to give back as it ends (None: nothing held), or why it is refused (nothing counted)."""
    now = keys.clock()
    if price:
        refused = _over_budget(keys, record, price, now)
        if refused is not None:
            return refused
    tools = record.tool_windows
    if tools is None:
        return None
    waiting, by, hold = keys.store.reserve(tools, now, 0, 0)
    if by:
        return _over_limit(tools, by, waiting)
    return Lease(tools, 0, hold)


def end(keys: TeamKeys, lease: Lease | None, record: KeyRecord, cost: int) -> None:
    """The call ended: its place in the tool windows given back, and `cost` (nano-dollars: its price when its server
    answered it) charged to the key's and its team's dollar budgets."""
    if lease is not None:
        keys.release(lease)
    if not cost:
        return
    now = keys.clock()
    team = record.windows
    for owner in (record,) if team is None else (record, team):
        if owner.budget_usd is None:
            continue
        try:
            keys.store.charge(owner, cost, now)
        except Exception:  # noqa: BLE001 - counting must never fail the call (its usage row keeps the cost)
            log.exception("team keys: a tool call's cost not charged to %s", owner.name)


def _over_budget(keys: TeamKeys, record: KeyRecord, price: int, now: float) -> Refused | None:
    team = record.windows
    for owner in (record,) if team is None else (record, team):
        budget = owner.budget_usd
        if budget is None:
            continue
        spent: Any = keys.store.spent(owner, now)
        if int(spent) + price > budget.nanos:
            from argoproxy.teamkeys.windows import period_bounds
            seconds = max(1, math.ceil(period_bounds(budget.period, now)[1] - now))
            return Refused("budget_usd", seconds, f"{whose(owner)} is over its budget of {budget}: this tool call "
                           f"costs more than is left of it; retry in {seconds} s.")
    return None


def _over_limit(tools: KeyRecord, by: str, waiting: float) -> Refused:
    """The refusal of the key's tool windows, or its team's (`by`: "team_" + what, as the stores name it)."""
    record = tools.windows if by.startswith("team_") and tools.windows is not None else tools
    who = "This API key's team" if record is not tools else "This API key"
    seconds = max(1, math.ceil(waiting))
    if by.removeprefix("team_") == "parallel":
        return Refused("tool_parallel", seconds, f"{who} has {record.max_parallel} tool calls in flight, its most at "
                       "once; retry when one ends.")
    return Refused("tool_rpm", seconds, f"{who} is over its {record.rpm} tool calls per minute; retry in {seconds} s.")
