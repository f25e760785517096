"""Sliding-window counting over two fixed windows, for requests and tokens per minute (key_limits and team
keys share it), and calendar budget periods.

A window's state is five numbers at `base` in any mutable sequence (shared memory cells, a database row):
the window's number, requests and tokens counted in it, and in the window before. The count in the last
WINDOW seconds is estimated as current + previous * (1 - elapsed fraction): a steady client gets exactly
its budget, a burst at a window edge cannot get twice as much.
"""

from __future__ import annotations

import calendar
import time
from datetime import datetime, timezone
from typing import Any, MutableSequence, Sequence, TypeVar

WINDOW = 60.0
FIELDS = 5
START, REQ, PREV_REQ, TOK, PREV_TOK = range(FIELDS)
# Where a window's numbers live: a list (a database row's copy) or the workers' shared int64 cells.
Cells = TypeVar("Cells", MutableSequence[float], memoryview)


def roll(c: Cells, base: int, now: float) -> float:
    """Move the windows forward to `now`; return the seconds elapsed in the current window."""
    window = int(now // WINDOW)
    start = c[base + START]
    if window != start:
        if window == start + 1:
            c[base + PREV_REQ], c[base + PREV_TOK] = c[base + REQ], c[base + TOK]
        else:
            c[base + PREV_REQ], c[base + PREV_TOK] = 0, 0
        c[base + REQ], c[base + TOK], c[base + START] = 0, 0, window
    return now - window * WINDOW


def wait(current: float, previous: float, room: float, elapsed: float) -> float:
    """Seconds until current + previous * (1 - f) <= room, where f is the fraction of the window elapsed
    (0 when that holds now), never more than one window: what was counted a window ago has slid out by then."""
    if current + previous * (1 - elapsed / WINDOW) <= room:
        return 0.0
    if current <= room:
        needed = 1 - (room - current) / previous  # fraction of the window at which enough has slid out
        return min(WINDOW, needed * WINDOW - elapsed)
    needed = 1 - room / current if current else 0.0
    return min(WINDOW, (WINDOW - elapsed) + needed * WINDOW)


def over_limits(c: Cells, base: int, rpm: int, tpm: int, now: float,
                reserved: float = 0, need: int = 1) -> tuple[float, str]:
    """(seconds to wait, "requests" or "tokens") for one more request under rpm and tpm, that may use `need`
    tokens (its reservation, one at least), `reserved` tokens held by the requests in flight counted as used;
    (0, "") when it may go now. Rolls the windows to `now` first."""
    elapsed = roll(c, base, now)
    by_requests = wait(c[base + REQ], c[base + PREV_REQ], rpm - 1, elapsed) if rpm else 0.0
    by_tokens = wait(c[base + TOK] + reserved + need - 1, c[base + PREV_TOK], tpm - 1, elapsed) if tpm else 0.0
    if by_tokens > 0 and reserved and wait(c[base + TOK] + need - 1, c[base + PREV_TOK], tpm - 1, elapsed) <= 0:
        by_tokens = HELD_WAIT  # room is held by requests in flight: it frees as they end
    if by_requests <= 0 and by_tokens <= 0:
        return 0.0, ""
    return (by_requests, "requests") if by_requests >= by_tokens else (by_tokens, "tokens")


def period_bounds(period: str, now: float | None = None) -> tuple[float, float]:
    """The calendar period (UTC) holding `now`: its start and end, as epoch seconds. The last one found for each
    kind of period is kept: a request reads its key's budget periods several times (10 us each with datetime)."""
    now = time.time() if now is None else now
    known = _periods.get(period)
    if known is not None and known[0] <= now < known[1]:
        return known
    known = _periods[period] = _period_bounds(period, now)
    return known


_periods: dict[str, tuple[float, float]] = {}  # the last period found of each kind


def _period_bounds(period: str, now: float) -> tuple[float, float]:
    moment = datetime.fromtimestamp(now, timezone.utc)
    if period == "hour":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 3600
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day.timestamp(), day.timestamp() + 86400
    if period == "week":  # Monday to Monday
        monday = day.timestamp() - day.weekday() * 86400
        return monday, monday + 7 * 86400
    first = day.replace(day=1)
    days = calendar.monthrange(first.year, first.month)[1]
    return first.timestamp(), first.timestamp() + days * 86400


# A team key's counting state: the five window fields, then its budget's period start and tokens used in it, then
# what its requests in flight hold: tokens reserved (their input and the most they may answer) and their number;
# then its dollar budget's period start, nano-dollars spent in it and held by the requests in flight (the most
# each may cost).
BUDGET_START, BUDGET_USED, RESERVED, IN_FLIGHT = FIELDS, FIELDS + 1, FIELDS + 2, FIELDS + 3
MONEY_START, MONEY_USED, MONEY_HELD = FIELDS + 4, FIELDS + 5, FIELDS + 6
NEW_STATE = (0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0.0, 0, 0)
HELD_WAIT = 1.0  # Retry-After when only what requests in flight hold refuses one: it frees as they end


def admit(state: MutableSequence[float], rpm: int, tpm: int, budget: Any, now: float, reserve: int = 0,
          max_parallel: int = 0, budget_usd: Any = None, money: int = 0) -> tuple[float, str]:
    """Count one request in `state` if rpm, tpm, the budget and max_parallel allow it now: (0, "") and its
    reservation held (`reserve` tokens, one request in flight); else (seconds to wait, "requests", "tokens",
    "budget" or "parallel") and nothing counted. Tokens reserved by requests in flight count as used, and a
    request is admitted only while its own reservation fits in what is left: parallel requests cannot pass a
    token limit (only an answer that uses more than its reservation can)."""
    need = max(reserve, 1)
    waiting, by = over_limits(state, 0, rpm, tpm, now, state[RESERVED], need)
    budget_wait = _budget_wait(state, budget, now, state[RESERVED], need)
    if budget_wait > waiting:
        waiting, by = budget_wait, "budget"
    money_wait = _money_wait(state, budget_usd, now, money)
    if money_wait > waiting:
        waiting, by = money_wait, "budget_usd"
    if max_parallel and state[IN_FLIGHT] >= max_parallel and HELD_WAIT > waiting:
        waiting, by = HELD_WAIT, "parallel"
    if not by:
        state[REQ] += 1
        state[RESERVED] += reserve
        state[IN_FLIGHT] += 1
        state[MONEY_HELD] += money
    return waiting, by


def settle(state: MutableSequence[float], reserved: int, tokens: int, budget: Any, now: float, held: int = 0,
           cost: int = 0, budget_usd: Any = None) -> None:
    """A request admitted with `reserved` tokens and `held` nano-dollars ended having used `tokens` and cost
    `cost`: its hold is given back, its tokens and cost counted."""
    give_back(state, reserved, 1, held)
    add_tokens(state, tokens, budget, now, cost, budget_usd)


def hold_money(states: Sequence[MutableSequence[float]], budgets: Sequence[Any], now: float,
               money: int) -> tuple[float, int]:
    """A priced MCP tool call's price held in each dollar budget it spends (a key's, its team's) while it runs, as
    a request's most is (admit), and nothing else counted: (0, -1) held in every one; else (the seconds to wait, as
    _money_wait gives them, the index of the one that refused) and nothing held."""
    for i, (state, budget) in enumerate(zip(states, budgets)):
        waiting = _money_wait(state, budget, now, money)
        if waiting:
            return waiting, i
    for state in states:
        state[MONEY_HELD] += money
    return 0.0, -1


def release_money(state: MutableSequence[float], budget_usd: Any, now: float, held: int, cost: int) -> None:
    """A tool call's held price given back, and `cost` (its price when its server answered it, else 0) spent."""
    give_back(state, 0, 0, held)
    add_tokens(state, 0, None, now, cost, budget_usd)


def give_back(state: MutableSequence[float], reserved: int, requests: int, held: int) -> None:
    """What `requests` requests in flight held (`reserved` tokens, `held` nano-dollars) given back."""
    state[RESERVED] = max(0, state[RESERVED] - reserved)
    state[IN_FLIGHT] = max(0, state[IN_FLIGHT] - requests)
    state[MONEY_HELD] = max(0, state[MONEY_HELD] - held)


def in_periods(state: MutableSequence[float], now: float, budget: Any, budget_usd: Any) -> bool:
    """Whether `state` counts the budget periods holding `now` (of each budget the key has)."""
    return (budget is None or state[BUDGET_START] == period_bounds(budget.period, now)[0]) and \
        (budget_usd is None or state[MONEY_START] == period_bounds(budget_usd.period, now)[0])


def spend_all(state: MutableSequence[float], rpm: int, tpm: int, budget: Any, now: float,
              budget_usd: Any = None) -> None:
    """Count the key's minute windows and budget periods as used up at `now`: what a worker counting alone cannot
    know (a key it had not seen when Redis went away) is taken as spent, until the windows and periods turn."""
    roll(state, 0, now)
    state[REQ], state[TOK] = max(state[REQ], rpm), max(state[TOK], tpm)
    if budget is not None:
        _budget_wait(state, budget, now)  # moves the budget to the current period
        state[BUDGET_USED] = max(state[BUDGET_USED], budget.tokens)
    if budget_usd is not None:
        _money_wait(state, budget_usd, now)
        state[MONEY_USED] = max(state[MONEY_USED], budget_usd.nanos)


def add_tokens(state: MutableSequence[float], tokens: int, budget: Any, now: float, cost: int = 0,
               budget_usd: Any = None) -> None:
    """An answer's tokens, in the minute window and in the budget's current period; its cost in the dollar
    budget's."""
    roll(state, 0, now)
    state[TOK] += tokens
    _budget_wait(state, budget, now)  # moves the budget to the current period
    state[BUDGET_USED] += tokens
    if budget_usd is not None:
        _money_wait(state, budget_usd, now)  # likewise
        state[MONEY_USED] += cost


def _budget_wait(state: MutableSequence[float], budget: Any, now: float, reserved: float = 0, need: int = 1) -> float:
    """Seconds until the budget's period ends when what is left of it is less than `need` (0 when not); HELD_WAIT
    when it is what requests in flight hold that leaves too little. Its counter starts again at each new period."""
    if budget is None:
        return 0.0
    start, end = period_bounds(budget.period, now)
    if state[BUDGET_START] != start:
        state[BUDGET_START], state[BUDGET_USED] = start, 0
    if state[BUDGET_USED] + need > budget.tokens:
        return end - now
    return HELD_WAIT if state[BUDGET_USED] + reserved + need > budget.tokens else 0.0


def _money_wait(state: MutableSequence[float], budget_usd: Any, now: float, need: int = 0) -> float:
    """As _budget_wait for the dollar budget: a request that may cost `need` nano-dollars at most is admitted
    while that fits in what is left, what the requests in flight hold counted as spent (HELD_WAIT when only that
    refuses it: it frees as they end; the period's end when what was spent refuses it)."""
    if budget_usd is None:
        return 0.0
    start, end = period_bounds(budget_usd.period, now)
    if state[MONEY_START] != start:
        state[MONEY_START], state[MONEY_USED] = start, 0
    if state[MONEY_USED] + need > budget_usd.nanos or state[MONEY_USED] >= budget_usd.nanos:
        return end - now
    return HELD_WAIT if state[MONEY_USED] + state[MONEY_HELD] + need > budget_usd.nanos else 0.0
