"""A team key's MCP tool calls held to its limits (docs/mcp.md): its `--tool-rpm` and `--tool-parallel`, and its
team's, counted in the same windows as its model requests' rpm and max_parallel but apart from them (the key's
tool windows record, records.py: TOOL_WINDOWS + its name), so they hold across the workers of an instance (the
shared cells) and across replicas (Redis) as those do; and a priced call (a server's `price_per_call`) held to the
key's and its team's dollar budget, the one its model calls spend.

A priced call's price is held in those budgets before the call starts, as a model request's most is (the stores'
hold_money: the shared cells, or Redis for every replica), and is admitted only while it fits in what is left, what
the calls and requests in flight hold counted as spent: calls in flight together cannot pass the budget. As the
call ends the hold is given back and its cost (the price when its server answered it, else nothing) spent.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from argoproxy.teamkeys.records import KeyRecord
from argoproxy.teamkeys.service import Lease, TeamKeys, whose

log = logging.getLogger("cot_proxy")


@dataclass(frozen=True)
class ToolRefusal:
    """Why a tool call was not let through: `limit` is tool_rpm, tool_parallel or budget_usd; `seconds` until it
    may pass."""
    limit: str
    seconds: int
    message: str


@dataclass
class Hold:
    """What an admitted call holds until it ends: its place in the key's tool windows (None: none), and `money`
    nano-dollars of its dollar budgets (0: none), held by the store `where` it says."""
    record: KeyRecord
    lease: Lease | None
    money: int = 0
    where: str = ""


def admit(keys: TeamKeys, record: KeyRecord, price: int) -> Hold | ToolRefusal | None:
    """The call's price held in the key's (and its team's) dollar budgets and the call counted in their tool
    windows: what it holds, to give back as it ends (None: nothing), or why it is refused (nothing held)."""
    now = keys.clock()
    money, where = 0, ""
    if price and record.dollar_budgets:
        waiting, by, where = keys.store.hold_money(record, now, price)
        if by:
            return _over_budget(record, by, waiting)
        money = price
        keys.holding()  # its heartbeat keeps what this worker holds in Redis
    tools = record.tool_windows
    if tools is None:
        return Hold(record, None, money, where) if money else None
    waiting, by, hold = keys.store.reserve(tools, now, 0, 0)
    if by:
        _give_back(keys, Hold(record, None, money, where), 0)
        return _over_limit(tools, by, waiting)
    return Hold(record, Lease(tools, 0, hold), money, where)


def end(keys: TeamKeys, hold: Hold, cost: int) -> None:
    """The call ended: its place in the tool windows and its price given back, and `cost` (nano-dollars: its price
    when its server answered it) spent in the dollar budgets."""
    if hold.lease is not None:
        keys.release(hold.lease)
    _give_back(keys, hold, cost)


def _give_back(keys: TeamKeys, hold: Hold, cost: int) -> None:
    if not hold.money:
        return
    try:
        keys.store.release_money(hold.record, hold.where, hold.money, cost, keys.clock())
    except Exception:  # noqa: BLE001 - counting must never fail the call (its usage row keeps the cost)
        log.exception("team keys: a tool call's price not given back to %s", hold.record.name)


def _over_budget(record: KeyRecord, by: str, waiting: float) -> ToolRefusal:
    owner = record.windows if by.startswith("team_") and record.windows is not None else record
    seconds = max(1, math.ceil(waiting))
    return ToolRefusal("budget_usd", seconds, f"{whose(owner)} is over its budget of {owner.budget_usd}: this tool "
                       f"call costs more than is left of it (spent, or held by its calls and requests in flight); "
                       f"retry in {seconds} s.")


def _over_limit(tools: KeyRecord, by: str, waiting: float) -> ToolRefusal:
    """The refusal of the key's tool windows, or its team's (`by`: "team_" + what, as the stores name it)."""
    record = tools.windows if by.startswith("team_") and tools.windows is not None else tools
    who = "This API key's team" if record is not tools else "This API key"
    seconds = max(1, math.ceil(waiting))
    if by.removeprefix("team_") == "parallel":
        return ToolRefusal("tool_parallel", seconds, f"{who} has {record.max_parallel} tool calls in flight, its "
                           "most at once; retry when one ends.")
    return ToolRefusal("tool_rpm", seconds,
                       f"{who} is over its {record.rpm} tool calls per minute; retry in {seconds} s.")
