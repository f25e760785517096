"""The router: which deployment serves a model, in which order to try the others, and who is cooling down.

- A model name finds its pool: every entry with exactly that name, else every entry of the first glob
  (in the order of `models`) that matches it. No pool: the caller answers 404 naming the model.
- In a pool, the next deployment is the one with the fewest requests in flight per unit of weight (this
  worker's count; ties broken at random in proportion to weight, so idle traffic follows the weights).
  Deployments already tried for this request are skipped; cooling ones come last, soonest-back first, so a
  pool whose every deployment cooled down is still tried rather than failed.
- Cooldown is shared by the workers (argoproxy/shared_cells.py): a deployment that failed before the first
  byte cools for `cooldown_seconds`, one that answered 429 for its Retry-After. An active probe (optional)
  ends a failure's cooldown early, never a 429's.
- The fallback chain of a model: its own pool, then the pool of each model in its `fallbacks` list.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterable

from argoproxy.edge.client_caches import BoundedCache
from argoproxy.config.routing_settings import ModelEntry
from argoproxy.shared_cells import CELL, SharedCells

FIELDS = 2
UNTIL, REASON = range(FIELDS)  # cooldown end in wall-clock milliseconds; why it cools
ERROR_BYTES = 256  # of a deployment's last failure, shared (UTF-8, cut on a character)
FAILED, RATE_LIMITED = 1, 2
INF = float("inf")
GLOB_CACHE_CAP = 4096  # names asked for are client input: the cache of glob results is bounded


class Deployment:
    """One entry of `models` as this worker serves it."""

    __slots__ = ("index", "entry", "name", "weight", "served_by", "in_flight", "cell")

    def __init__(self, index: int, entry: ModelEntry, served_by: str) -> None:
        self.index = index  # position in `models`: its cells in the shared cooldown board
        self.entry = entry
        self.name = entry.name
        self.weight = entry.weight
        self.served_by = served_by  # host:port of its base URL (X-Served-By)
        self.in_flight = 0  # this worker's requests to it now
        self.cell = index * FIELDS

    def upstream_model(self, asked: str) -> str:
        return self.entry.upstream_model or asked


@dataclass
class Pool:
    name: str  # the entries' shared name (or glob)
    deployments: list[Deployment] = field(default_factory=list)
    uniform: bool = True  # every deployment has the same weight (ties are then a plain random pick)


class Router:
    def __init__(self, entries: Iterable[ModelEntry], fallbacks: Iterable[tuple[str, tuple[str, ...]]],
                 served_by: Callable[[ModelEntry], str], cooldown_seconds: float = 5.0,
                 cells: SharedCells | None = None, clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random, threaded: bool = True) -> None:
        self.deployments = [Deployment(i, e, served_by(e)) for i, e in enumerate(entries)]
        self.exact: dict[str, Pool] = {}
        self.globs: list[Pool] = []
        by_glob: dict[str, Pool] = {}
        for dep in self.deployments:
            if dep.entry.is_glob:
                pool = by_glob.get(dep.name)
                if pool is None:
                    pool = by_glob[dep.name] = Pool(dep.name)
                    self.globs.append(pool)
            else:
                pool = self.exact.setdefault(dep.name, Pool(dep.name))
            pool.deployments.append(dep)
        for pool in self.pools():
            pool.uniform = len({d.weight for d in pool.deployments}) == 1
        self.fallbacks = dict(fallbacks)
        self.cooldown_seconds = cooldown_seconds
        signature = "\n".join(f"{e.name} {e.backend} {e.base_url}" for e in (d.entry for d in self.deployments))
        digest = hashlib.sha1(signature.encode()).hexdigest()[:12]
        self.cells = cells or SharedCells(f"cooldown-{digest}.cells", len(self.deployments) * FIELDS)
        # each deployment's last failure, for /health on every worker (the worker that saw it is one of them)
        self.errors = SharedCells(f"cooldown-errors-{digest}.cells", len(self.deployments) * ERROR_BYTES // CELL,
                                  "" if cells is not None else None)
        self.clock = clock
        self.rand = rand
        self._glob_cache: BoundedCache[Pool | None] = BoundedCache(GLOB_CACHE_CAP)
        self._chains: BoundedCache[list[tuple[str, Pool]]] = BoundedCache(GLOB_CACHE_CAP)
        # gthread workers: `in_flight += 1` is not atomic between threads (gevent and sync workers need no lock)
        self._counting = threading.Lock() if threaded else None
        self.on_cool_down: Callable[[int, int, int], None] | None = None

    # ------------------------------------------------------------ names
    def pool_for(self, model: str) -> Pool | None:
        pool = self.exact.get(model)
        if pool is not None:
            return pool
        if not self.globs:
            return None
        return self._glob_cache.get(model, lambda: next((p for p in self.globs if fnmatchcase(model, p.name)), None))

    def chain(self, model: str) -> list[tuple[str, Pool]]:
        """(model name, pool) to try in order: the model's own pool, then its fallbacks' (unroutable skipped)."""
        return self._chains.get(model, lambda: self._chain(model))

    def _chain(self, model: str) -> list[tuple[str, Pool]]:
        out: list[tuple[str, Pool]] = []
        seen: set[int] = set()
        for name in (model, *self.fallbacks.get(model, ())):
            pool = self.pool_for(name)
            if pool is not None and id(pool) not in seen:
                seen.add(id(pool))
                out.append((name, pool))
        return out

    def routable_names(self) -> list[str]:
        """Exact names and globs, in the order of `models`."""
        names = list(self.exact)
        names.extend(p.name for p in self.globs)
        return names

    # ------------------------------------------------------------ choosing
    def pick(self, pool: Pool, tried: set[int] | frozenset[int] = frozenset()) -> Deployment | None:
        """The deployment to try next, or None when every one was tried."""
        now_ms = int(self.clock() * 1000)
        cells = self.cells.cells
        best: Deployment | None = None
        ties: list[Deployment] | None = None
        best_score = INF
        cooling: Deployment | None = None
        cooling_until = 0
        for dep in pool.deployments:
            if tried and dep.index in tried:
                continue
            until = cells[dep.cell]
            if until > now_ms:
                if cooling is None or until < cooling_until:
                    cooling, cooling_until = dep, until
                continue
            score = dep.in_flight / dep.weight
            if score < best_score:
                best, best_score, ties = dep, score, None
            elif score == best_score and best is not None:
                ties = [best, dep] if ties is None else [*ties, dep]
        if ties is not None:
            if pool.uniform:
                return ties[int(self.rand() * len(ties))]
            return self._weighted_choice(ties)
        return best if best is not None else cooling

    def started(self, dep: Deployment) -> None:
        if self._counting is None:
            dep.in_flight += 1
            return
        with self._counting:
            dep.in_flight += 1

    def ended(self, dep: Deployment) -> None:
        if self._counting is None:
            dep.in_flight -= 1
            return
        with self._counting:
            dep.in_flight -= 1

    def _weighted_choice(self, deps: list[Deployment]) -> Deployment:
        point = self.rand() * sum(d.weight for d in deps)
        for dep in deps:
            point -= dep.weight
            if point < 0:
                return dep
        return deps[-1]

    # ------------------------------------------------------------ cooldown
    def cool_down(self, dep: Deployment, seconds: float | None = None, rate_limited: bool = False,
                  error: str = "") -> None:
        """Move traffic away from dep for `seconds` (default cooldown_seconds); a later end wins."""
        seconds = self.cooldown_seconds if seconds is None else seconds
        if error:
            self._set_error(dep, error)
        base = dep.index * FIELDS
        until = self._now_ms() + int(seconds * 1000)
        reason = RATE_LIMITED if rate_limited else FAILED
        with self.cells.lock() as c:
            if until > c[base + UNTIL]:
                c[base + UNTIL] = until
                c[base + REASON] = reason
        if self.on_cool_down is not None:  # other replicas (argoproxy/routing/shared_cooldowns.py)
            self.on_cool_down(dep.index, until, reason)

    def adopt_cooldown(self, dep: Deployment, until: int, reason: int) -> None:
        """Another replica's cooldown of dep (wall-clock milliseconds): a later end wins."""
        base = dep.index * FIELDS
        with self.cells.lock() as c:
            if until > c[base + UNTIL]:
                c[base + UNTIL], c[base + REASON] = until, reason

    def recover(self, dep: Deployment) -> None:
        """A probe reached dep: end a failure's cooldown (a 429's Retry-After still holds)."""
        base = dep.index * FIELDS
        with self.cells.lock() as c:
            if c[base + REASON] == FAILED:
                c[base + UNTIL], c[base + REASON] = 0, 0
        self._set_error(dep, "")

    def _set_error(self, dep: Deployment, text: str) -> None:
        # a lone surrogate in an upstream's text must not fail the request (it did, and no failover followed)
        data = text.encode(errors="replace")[:ERROR_BYTES].decode(errors="ignore").encode()  # whole characters
        start = dep.index * ERROR_BYTES
        with self.errors.lock() as cells:
            cells.cast("B")[start:start + ERROR_BYTES] = data.ljust(ERROR_BYTES, b"\0")

    def _error_of(self, dep: Deployment) -> str:
        start = dep.index * ERROR_BYTES
        with self.errors.lock() as cells:  # a record another worker is writing is read whole, not torn
            data = bytes(cells.cast("B")[start:start + ERROR_BYTES])
        return data.rstrip(b"\0").decode(errors="replace")

    def cooling_for(self, dep: Deployment) -> float:
        """Seconds dep still cools down (0: it serves)."""
        return max(0.0, (self.cells.cells[dep.index * FIELDS + UNTIL] - self._now_ms()) / 1000)

    def state(self, dep: Deployment) -> str:
        if self.cooling_for(dep) <= 0:
            return "up"
        return "rate_limited" if self.cells.cells[dep.index * FIELDS + REASON] == RATE_LIMITED else "down"

    def pools(self) -> list[Pool]:
        return [*self.exact.values(), *self.globs]

    def health(self) -> tuple[bool, list[dict[str, Any]]]:
        """(every pool has a deployment that serves, one line per deployment)."""
        rows = []
        for dep in self.deployments:
            row: dict[str, Any] = {"model": dep.name, "backend": dep.entry.backend, "served_by": dep.served_by,
                                   "state": self.state(dep)}
            if row["state"] != "up":
                row["retry_in"] = round(self.cooling_for(dep), 1)
                error = self._error_of(dep)
                if error:
                    row["error"] = error
            rows.append(row)
        ok = all(any(self.state(d) == "up" for d in pool.deployments) for pool in self.pools())
        return ok, rows

    def probe_all(self, probe: Callable[[Deployment], str | None]) -> None:
        """Active health check: probe every deployment; a failure cools it, a success ends its cooldown."""
        for dep in self.deployments:
            error = probe(dep)
            if error is None:
                if self.state(dep) == "down":
                    self.recover(dep)
            else:
                self.cool_down(dep, error=error)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)
