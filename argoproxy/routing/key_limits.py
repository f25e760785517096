"""Per-client-key budgets (`key_limits`): requests per minute and tokens per minute, across all workers.

A key is named by the environment variable that holds it (TEAM_A_KEY); the key itself is only held as its
SHA-256 digest, to recognise it among the keys a request presents. Counting is a sliding window over two
fixed one-minute windows (the current count plus the previous minute's, weighted by how much of it still
lies within the last 60 seconds): a steady client gets exactly its budget, a burst at a window edge cannot
get twice as much, and the state per key is five int64 cells shared by the workers (argoproxy/shared_cells.py).

Requests are counted when admitted; tokens when the upstream's usage arrives (after the answer), so a key
may overshoot its token budget by one answer, and the next request then waits until the window slid far
enough. Over budget: 429 with Retry-After (whole seconds until the request would be admitted, at most the window).
The window arithmetic lives in argoproxy/teamkeys/windows.py (team keys count the same way).
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Callable, Iterable, Mapping

from argoproxy.pipeline.call import Call
from argoproxy.errors import ProxyError
from argoproxy.config.routing_settings import KeyLimit
from argoproxy.shared_cells import SharedCells
from argoproxy.teamkeys.windows import FIELDS, PREV_REQ, PREV_TOK, REQ, TOK, WINDOW, over_limits
from argoproxy.teamkeys.windows import roll as _roll



def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyLimiter:
    def __init__(self, limits: Iterable[KeyLimit], environ: Mapping[str, str],
                 cells: SharedCells | None = None, clock: Callable[[], float] = time.time) -> None:
        self.limits = list(limits)
        self._slot = {limit.key_env: i * FIELDS for i, limit in enumerate(self.limits)}
        self._by_digest = {_digest(environ[limit.key_env]): limit for limit in self.limits if environ.get(limit.key_env)}
        names = ",".join(limit.key_env for limit in self.limits)
        self.cells = cells or SharedCells(f"key-limits-{hashlib.sha1(names.encode()).hexdigest()[:12]}.cells",
                                          len(self.limits) * FIELDS)
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

    def admit(self, limit: KeyLimit) -> None:
        """Count one request against the key's budget, or raise a 429 with Retry-After."""
        now = self.clock()
        base = self._slot[limit.key_env]
        with self.cells.lock() as c:
            waiting, by = over_limits(c, base, limit.rpm, limit.tpm, now)
            if not by:
                c[base + REQ] += 1
                return
        seconds = max(1, math.ceil(waiting))
        what = f"{limit.rpm} requests" if by == "requests" else f"{limit.tpm} tokens"
        raise ProxyError(429, f"This API key is over its budget of {what} per minute; retry in {seconds} s.",
                         code="rate_limit_exceeded", headers={"Retry-After": str(seconds)})

    # --- the pipeline's side
    def admit_call(self, call: Call, presented: Iterable[str]) -> KeyLimit | None:
        """Count an API call against the budget of the client key it presented (429 over it); the budget counted
        against (the guard keeps it in the plan, for observe)."""
        limit = self.identify(presented)
        if limit is not None:
            self.admit(limit)
        return limit

    def observe(self, call: Call) -> None:
        """Observer: the tokens an answer used (its upstream usage) count against its key's budget."""
        limit = call.plan.key_limit
        usage = call.outcome.usage
        if limit is None or not isinstance(usage, dict):
            return
        total = usage.get("total_tokens")
        if not isinstance(total, int):
            total = sum(v for v in (usage.get("prompt_tokens"), usage.get("completion_tokens")) if isinstance(v, int))
        self.record_tokens(limit, total)

    def record_tokens(self, limit: KeyLimit, tokens: int) -> None:
        """Add the tokens an answer used (from the upstream's usage)."""
        if not limit.tpm or tokens <= 0:
            return
        base = self._slot[limit.key_env]
        with self.cells.lock() as c:
            _roll(c, base, self.clock())
            c[base + TOK] += tokens

    def usage(self, limit: KeyLimit) -> tuple[float, float]:
        """(requests, tokens) counted in the last minute, as the sliding window sees them now."""
        base = self._slot[limit.key_env]
        with self.cells.lock() as c:
            elapsed = _roll(c, base, self.clock())
            keep = 1 - elapsed / WINDOW
            return c[base + REQ] + c[base + PREV_REQ] * keep, c[base + TOK] + c[base + PREV_TOK] * keep
