"""What this worker last saw of each key's counts in Redis, for an outage to start from (failover.py): the
windows.py state (requests and tokens in the minute windows, the budget's tokens and dollars used in their
periods, what requests in flight hold and their number) as the last admission read it, with what this worker
wrote since (its holds given back, its answers' tokens and cost). A worker that counts locally from this state
admits no more than it saw left. Bounded: the SEEN_MAX keys used last (LRU); the state is a list kept per key,
so the cost on a request is a few list stores."""

from __future__ import annotations

from typing import Any

from argoproxy.teamkeys import windows
from argoproxy.teamkeys.lookup_cache import LRU

SEEN_MAX = 4096  # keys (as many as a worker's lookup cache keeps)


class LastSeen:
    def __init__(self, size: int = SEEN_MAX) -> None:
        self._states: LRU[list[float]] = LRU(size)

    def get(self, name: str) -> list[float] | None:
        """A copy of the key's last state, or None when this worker has not seen it (or forgot it)."""
        state = self._states.get(name)
        return list(state) if state is not None else None

    def saw(self, name: str, window: int, requests: int, prev_requests: int, tokens: int, prev_tokens: int,
            budget_start: float, used: int, held: int, in_flight: int, money_start: float, spent: int,
            held_money: int) -> None:
        """The counts an admission read (its own request, when admitted, included)."""
        self._states.put(name, [window, requests, prev_requests, tokens, prev_tokens, budget_start, used, held,
                                in_flight, money_start, spent, held_money])

    def wrote(self, name: str, tokens: int, cost: int, now: float, budget: Any, budget_usd: Any,
              release: tuple[str, int, int, int] | None = None) -> None:
        """An answer's usage written (and, with `release`, its hold given back: holder, tokens, requests,
        nano-dollars)."""
        state = self._states.get(name)
        if state is None:
            return
        if release is not None:
            _, reserved, ended, held = release
            windows.give_back(state, reserved, ended, held)
        windows.add_tokens(state, tokens, budget, now, cost, budget_usd)
