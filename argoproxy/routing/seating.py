"""Routing's use of admission (admission/queue.py) and cache-aware routing (routing/affinity.py): built only
when a deployment has a concurrency limit or ROUTING_STRATEGY is cache_aware, so that without them a routed
call costs what it did (the router's own pick, nothing shared).

- the flow a request queues in: its team key's name, else its key_limits key's variable, else a digest of the
  key it presented (one the proxy accepted), else its address (with auth off: a client cannot name a new flow
  per request, and take many shares of the queue);
- its cost: the meter's worst case, the number its reservation holds (argoproxy/meter/: its counted prompt, images,
  audio and files, plus the most it may answer), read once for the call;
- its bound: ADMISSION_MAX_WAIT, or less when the client says how long it waits (X-Stainless-Read-Timeout from
  the OpenAI SDKs, X-Stainless-Timeout from Anthropic's, or a `timeout` field in the body);
- its client's socket, looked at while it waits: a client that left takes its request out of the queue (499);
- `auto` limits asked of the servers (routing/slots.py) by a thread in each worker, until each one answers.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from argoproxy.config.routing_settings import AUTO
from argoproxy.edge.keepalive import client_left, has_left, watch_departure
from argoproxy.pipeline.call import Call
from argoproxy.meter import worst_of
from argoproxy.admission import Admission, Departed, Seat
from argoproxy.routing.affinity import CacheAware
from argoproxy.routing.router import Deployment, Pool, Router

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings

log = logging.getLogger("cot_proxy")
ASK_AGAIN_SECONDS = 30.0  # an `auto` limit the server did not say yet is asked again this often
TIMEOUT_HEADERS = ("X-Stainless-Timeout", "X-Stainless-Read-Timeout")  # the Anthropic and OpenAI SDKs'


class Seating:
    def __init__(self, settings: Settings, router: Router, signature: str) -> None:
        from argoproxy.config.settings import admission_on
        self.router = router
        self.pools: dict[int, int] = {id(p): i for i, p in enumerate(router.pools())}
        self.limited = admission_on(settings)
        name = hashlib.sha1(signature.encode()).hexdigest()[:12]
        self.cache_aware = CacheAware(name, settings.enable_auth) if settings.routing_strategy == "cache_aware" \
            else None
        self.weights = dict(settings.admission_weights)
        limits = [d.entry.max_concurrency or settings.max_concurrency for d in router.deployments]
        self.auto = [d for d, limit in zip(router.deployments, limits) if limit == AUTO]
        self.admission = Admission([[d.index for d in p.deployments] for p in router.pools()],
                                   len(router.deployments), limits, key_share=settings.admission_key_share,
                                   max_wait=settings.admission_max_wait, waiters=settings.admission_queue_size,
                                   name=name)
        # what watches the queue: /metrics (observe/metrics.py); the status page's waits are the queue's own
        # (Admission.keep_waits)
        self.on_wait: list[Callable[[str, float], None]] = []  # (key, seconds it waited)
        self.on_refused: list[Callable[[str, str], None]] = []  # (key, code)

    def seat(self, call: Call, pool: Pool, tried: set[int]) -> tuple[Deployment, Seat]:
        """A deployment of the pool with a slot for this call, after its fair wait (QueueRefused past its bound)."""
        body = call.plan.body
        flow, label = flow_of(call)
        aware = self.cache_aware
        turn = aware.turn(call, self.admission, [d.index for d in pool.deployments], tried) if aware is not None \
            else None
        cost = worst_of(call.plan.asked or body).tokens if self.limited else 1
        deployments = self.router.deployments
        try:
            seat = self.admission.enter(self.pools[id(pool)], flow, cost, self.weight(call, label),
                                        prefer=turn.prefer if turn is not None else -1, tried=tried,
                                        usable=lambda d: self.router.cooling_for(deployments[d]) <= 0,
                                        bound=client_bound(call), gone=departure(call), watch=watcher(call),
                                        label=label)
        except Departed:  # answered 499, as nginx records it (the door observes the call with that status)
            raise client_left() from None
        except Exception as err:
            code = getattr(err, "code", None)
            if code in ("queue_full", "queue_timeout"):
                for refused in self.on_refused:
                    refused(label, code)
            raise
        if aware is not None and turn is not None:
            aware.seated(turn, seat.dep)
        if self.limited:
            for waited in self.on_wait:
                waited(label, seat.waited)
        return deployments[seat.dep], seat

    def weight(self, call: Call, label: str) -> float:
        """The request's key's weight in the fair queue: its team's priority (`teams create --priority`), else a
        team key's own (`keys create --priority`), else ADMISSION_WEIGHTS' for its name, else 1."""
        team_key = call.plan.team_key
        if team_key is not None:
            team = team_key.team_record
            if team is not None and team.priority:
                return float(team.priority)
            if team_key.priority:
                return float(team_key.priority)
        return self.weights.get(label, 1.0)

    def release(self, seat: Seat) -> None:
        self.admission.release(seat)

    # ------------------------------------------------------------ limits asked of the servers
    def ask_servers(self, ask: Callable[[Deployment], int | None]) -> None:
        """A thread (a greenlet under gevent) that asks each `auto` deployment its slots until it says."""
        if not self.auto:
            return

        def loop() -> None:
            left = list(self.auto)
            while left:
                for dep in list(left):
                    slots = ask(dep)
                    if slots:
                        self.admission.set_limit(dep.index, slots)
                        left.remove(dep)
                        log.info("admission: %s at %s serves %d requests at once", dep.name, dep.served_by, slots)
                if left:
                    time.sleep(ASK_AGAIN_SECONDS)

        threading.Thread(target=loop, name="admission-slots", daemon=True).start()

    # ------------------------------------------------------------ the status page and /metrics
    def rows(self) -> list[dict[str, Any]]:
        """Each deployment: requests in flight, its limit (0: none, -1: not known yet), the pool's queue."""
        a = self.admission
        out = []
        for pool_index, pool in enumerate(self.router.pools()):
            for dep in pool.deployments:
                out.append({"model": dep.name, "served_by": dep.served_by, "in_flight": a.in_flight(dep.index),
                            "limit": a.limit(dep.index), "waiting": a.waiting(pool_index),
                            "mean_seconds": round(a.mean_seconds(dep.index), 3)})
        return out


def flow_of(call: Call) -> tuple[str, str]:
    """(the flow a request queues in, its name for metrics and weights: a key's name, or "none")."""
    plan = call.plan
    if plan.key_name:
        return "team:" + plan.key_name, plan.key_name
    if plan.key_limit is not None:
        return "env:" + plan.key_limit.key_env, plan.key_limit.key_env
    req = call.client.request
    if req is not None and req.presented_keys:
        return "key:" + hashlib.sha256(req.presented_keys[0].encode()).hexdigest()[:16], "none"
    peer = req.peer[0] if req is not None else ""  # the socket's; empty behind a PROXY-protocol balancer
    return "addr:" + (peer or "-"), "none"


def departure(call: Call) -> Callable[[], bool] | None:
    """Whether the call's client left, for the queue to ask while the call waits (None: no socket to look at,
    outside Gunicorn or for a call the proxy makes itself)."""
    server_write = call.server_write
    client = getattr(server_write, "client", None)
    return None if client is None else lambda: has_left(client)


def watcher(call: Call) -> Callable[[Callable[[], None]], Callable[[], None] | None] | None:
    """What watches the call's client while it waits (under gevent; None where there is no socket)."""
    client = getattr(call.server_write, "client", None)
    return None if client is None else lambda wake: watch_departure(client, wake)


def client_bound(call: Call) -> float | None:
    """Seconds the client says it waits for its answer, where it says (None: it does not)."""
    found: list[float] = []
    req = call.client.request
    if req is not None:
        for name in TIMEOUT_HEADERS:
            found.append(_seconds(req.headers.get(name)))
    found.append(_seconds(call.plan.body.get("timeout")))
    given = [s for s in found if s > 0]
    return min(given) if given else None


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return 0.0
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 0.0
    return seconds if 0 < seconds < 1e9 else 0.0
