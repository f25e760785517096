"""Routed API calls: the client's model -> a deployment, tried in order until one answers, before the first byte.

Built only when `models` is configured (without it the Gateway serves its one upstream as before). Each
deployment gets its own Backend (its base URL, key and `params` in a Settings copy) and its own Gateway view
(argoproxy/pipeline/gateway.py, sharing observers, metrics and journals), so every transform, error shape and
observer works the same on every route.

One call: the router gives the chain (the model's pool,
then its fallbacks'); in each pool the router picks a deployment; the attempt runs the pipeline up to the
point where the client would get its first byte (headers sent upstream, status read, a whole answer read
and transformed, or a stream's first event read). A failure there - no connection, a timeout, a 5xx or a
429, a body broken off - cools the deployment down and the next one is tried, at most 1 + MAX_RETRIES per
model, none started after RETRY_BUDGET seconds, and MAX_UPSTREAM_CALLS in all (a call kept for each fallback
model ahead: retries on one model cannot starve the next); a pool that is used up (or that answers "context length
exceeded") passes the call to the next model of the chain. Once an answer was handed to the client nothing
is retried. Each attempt is the deployment Gateway's `run`, the same sequence an unrouted call takes (the
allow-list included: the name asked for or the deployment's model must be listed). Every routed answer
carries X-Served-Model and X-Served-By; an answer served by a fallback names the model the client asked for
(the ModelName byte filter, pipeline/filters.py; X-Served-Model too when the fallback is off the allow-list).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from argoproxy import providers
from argoproxy.edge.http_objects import Answer

from argoproxy.jsonfast import loads
from argoproxy.pipeline.call import Call, request_bytes
from argoproxy.pipeline.served import SERVED_BY, SERVED_MODEL, header_safe
from argoproxy.pipeline.upstream_count import UPSTREAM_COUNTS
from argoproxy.errors import ProxyError
from argoproxy.config.llm_params import DeploymentParams, ModelRule
from argoproxy.config.routing_settings import ModelEntry, declared_self_hosted, entry_url
from argoproxy.routing.router import Deployment, Pool, Router
from argoproxy.upstream.client import RETRY_BUDGET, CallBudget, Upstream, parse_retry_after
from argoproxy.upstream.relay import context_exceeded
from argoproxy.upstream.wire import describe_host
from argoproxy.edge.validation import model_allowed

if TYPE_CHECKING:
    from argoproxy.pipeline.collaborators import Sends
    from argoproxy.admission import KeyLimiter, Seat
    from argoproxy.routing.seating import Seating
    from argoproxy.config.settings import Settings

log = logging.getLogger("cot_proxy")

GLOB_LISTING_SECONDS = 60.0  # how long /v1/models reuses what a glob's upstreams listed


def deployment_settings(settings: Settings, entry: ModelEntry, environ: dict[str, str]) -> Settings:
    """The Settings a deployment's Backend is built with: its backend, base URL, key and params."""
    key = environ.get(entry.api_key_env, "") if entry.api_key_env else ""
    rule = entry.params
    if entry.upstream_model:
        rule = dataclasses.replace(rule or ModelRule(entry.name), upstream_model_name=entry.upstream_model)
    changes: dict[str, Any] = {"backend": entry.backend, "llm_params": DeploymentParams(settings.llm_params, rule)}
    if entry.developer_role:
        changes["developer_role"] = entry.developer_role
    changes["self_hosted"] = declared_self_hosted(settings.self_hosted, settings.backend, entry)  # docs/spend.md
    if entry.capabilities:
        changes["model_capabilities"] = settings.model_capabilities.then("*", dict(entry.capabilities))
    provider = providers.get(entry.backend)  # its record says which settings the key and the URL fill
    if entry.api_key_env and provider.key_setting:
        changes[provider.key_setting] = key
    if entry.base_url:
        changes.update(provider.entry_urls(entry.base_url))
    elif entry.backend != settings.backend:
        from argoproxy.config.settings import _with_backend_defaults
        changes["target_base_url"] = ""
        return _with_backend_defaults(dataclasses.replace(settings, **changes))
    return dataclasses.replace(settings, **changes)


def served_by(settings: Settings, entry: ModelEntry) -> str:
    """host:port of where the deployment's requests go."""
    return describe_host(entry_url(settings, entry))


class Routing:
    """The routed half of the Gateway: one per worker, holding the router and a Gateway view per deployment."""

    def __init__(self, gateway: Sends, environ: dict[str, str]) -> None:
        settings = gateway.settings
        self.settings = settings
        self.gateway = gateway
        self.gateways: dict[int, Sends] = {}  # each deployment's own Gateway (its Backend), by its index
        self.router = Router(settings.models, settings.fallbacks, lambda e: served_by(settings, e),
                             cooldown_seconds=settings.cooldown_seconds,
                             threaded=settings.worker_class == "gthread")
        self.max_attempts = 1 + settings.max_retries
        # Where a pool has several deployments, a failure moves to the next one at once (no retry on the same URL).
        failover = Upstream(settings.connect_timeout, settings.timeout, 0, pool_size=max(64, settings.worker_connections),
                            transport=gateway.upstream.transport_factory,  # FAST_PATH as the worker's
                            tracer=getattr(gateway.upstream, "tracer", None))
        for pool in self.router.pools():
            upstream = gateway.upstream if len(pool.deployments) == 1 else failover
            for dep in pool.deployments:
                own = deployment_settings(settings, dep.entry, environ)
                self.gateways[dep.index] = gateway.for_deployment(providers.create_backend(own, upstream),
                                                                   upstream, own)
        self.seating = self.seats(settings)
        self._prober: threading.Thread | None = None
        self._glob_listings: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self.start_probe()
        if settings.redis_url:
            from argoproxy.routing.shared_cooldowns import SharedCooldowns
            SharedCooldowns(self.router, settings.redis_url).start()

    def seats(self, settings: Settings) -> Seating | None:
        """Admission and cache-aware routing (routing/seating.py), when configured: None costs nothing."""
        from argoproxy.config.settings import admission_on
        if not admission_on(settings) and settings.routing_strategy != "cache_aware":
            return None
        from argoproxy.routing.seating import Seating
        from argoproxy.routing.slots import server_slots
        signature = "\n".join(f"{e.name} {e.backend} {e.base_url}" for e in settings.models)
        seating = Seating(settings, self.router, signature)

        def ask(dep: Deployment) -> int | None:
            backend = self.gateways[dep.index].backend
            url = getattr(backend, "base", "") or dep.entry.base_url
            return server_slots(backend.upstream.session, url) if url else None
        seating.ask_servers(ask)
        return seating

    # ------------------------------------------------------------ one call
    def chain(self, asked: str) -> list[tuple[str, Pool]]:
        """The models to try for a name, in order (its own pool, then its fallbacks); none: a 404 naming it."""
        chain = self.router.chain(asked)
        if not chain:
            raise ProxyError(404, f"The model `{asked}` does not exist: no entry of this proxy's models serves it.",
                             param="model", code="model_not_found")
        return chain

    def serves(self, name: str) -> bool:
        return bool(self.router.chain(name))

    def priced(self, asked: str) -> list[tuple[Any, str]]:
        """Every deployment that may serve a name (its pool's, its fallbacks'): how it is priced and the name it
        is sent (a dollar budget holds the dearest of them). A 404 naming a model no deployment serves."""
        return [(self.gateways[dep.index].price_source, dep.upstream_model(name)) for name, pool in self.chain(asked)
                for dep in pool.deployments]

    def count(self, chat: dict[str, Any]) -> int | None:
        """The prompt's tokens as counted by a deployment that would serve the model, where its server can count
        (llama.cpp, vLLM: pipeline/upstream_count.py), under the name that server knows the model by; None: the
        estimate stands. A 404 naming a model no deployment serves."""
        name, pool = self.chain(chat["model"])[0]
        dep = self.router.pick(pool)  # one not cooling down (the one a request would go to, by load)
        if dep is None:
            return None
        model = dep.entry.upstream_model or name
        return UPSTREAM_COUNTS.count(self.gateways[dep.index].backend, {**chat, "model": model})

    def api(self, call: Call) -> Answer:
        asked = call.plan.body.get("model")
        if not isinstance(asked, str) or not asked:
            raise ProxyError(400, "The request names no model: set `model` to one this proxy routes "
                             "(GET /v1/models lists them).", param="model", code="missing_model")
        chain = self.chain(asked)
        if self.settings.sse_keepalive > 0 and call.plan.body.get("stream") is True:
            # One keepalive over every attempt (not one per attempt): a slow deployment commits the stream to
            # 200 with keepalive comments, and when it then fails the next one is still tried.
            return self.gateway.kept_alive(call, lambda: self.attempts(call, asked, chain))
        return self.attempts(call, asked, chain)

    def attempts(self, call: Call, asked: str, chain: list[tuple[str, Pool]]) -> Answer:
        """The chain's deployments in turn until one answers (its first byte ready), or the last error."""
        # Each attempt is planned from the request: the first from the request as admitted, a retry or fallback
        # from it parsed again (the first attempt's planning may have edited the parsed body): the client's
        # bytes, or (a front door translated the request, a limit was supplied) the request encoded, kept now.
        source = request_bytes(call.plan)
        started = time.monotonic()
        failure: ProxyError | None = None
        budget = call.outcome.calls  # MAX_UPSTREAM_CALLS over the whole chain, retries on one URL included
        assert budget is not None  # started by the sequence before it routes (Gateway.dispatch)
        for position, (name, pool) in enumerate(chain):
            tried: set[int] = set()
            budget.reserved = len(chain) - position - 1  # a call kept for each fallback model still ahead
            while self._may_try(tried, budget, started):
                dep, seat = self._pick(call, pool, tried)
                if dep is None:
                    break
                tried.add(dep.index)
                try:  # a retry is planned from `source`, parsed again
                    return self.attempt(call, asked, name, dep, seat, loads(source) if failure is not None else None)
                except ProxyError as err:
                    if call.outcome.client_left:  # the proxy cut this one off: the client is gone, nobody to ask for
                        raise
                    failure = err
                    if self._next_model(err, asked, name, dep,
                                        position + 1 < len(chain) or len(tried) < len(pool.deployments)):
                        break
        assert failure is not None
        if budget.used > 1:  # asked again already: the SDKs' own retries would multiply the calls (relay.py)
            failure.headers = {**{k: v for k, v in failure.headers.items() if k.lower() != "x-should-retry"},
                               "x-should-retry": "false"}
        raise failure

    def _may_try(self, tried: set[int], budget: CallBudget, started: float) -> bool:
        """Another attempt on the model: at most 1 + MAX_RETRIES of them, within MAX_UPSTREAM_CALLS, and none
        started after RETRY_BUDGET seconds."""
        return len(tried) < self.max_attempts and (budget.may_retry() if tried else budget.left > 0) and (
            not tried or time.monotonic() - started < RETRY_BUDGET)

    def _pick(self, call: Call, pool: Pool, tried: set[int]) -> tuple[Deployment | None, Seat | None]:
        """The pool's next deployment (None: none left), with its admission seat when admission is on."""
        if self.seating is None:
            return self.router.pick(pool, tried), None
        if len(tried) < len(pool.deployments):
            return self.seating.seat(call, pool, tried)
        return None, None

    def _next_model(self, err: ProxyError, asked: str, name: str, dep: Deployment, others_left: bool) -> bool:
        """After a failed attempt: True to pass the call to the chain's next model (another deployment of this
        one has the same context window), False to try another deployment; `err` is raised when the client is to
        get it as it is."""
        # the error the client may get says where it came from, like an answer would
        err.headers = {**err.headers, SERVED_MODEL: header_safe(self.shown_name(name, asked)),
                       SERVED_BY: dep.served_by}
        if is_context_exceeded(err):
            return True
        if not self.failed(dep, err):
            raise err
        log.warning("deployment %s of %s failed (%s %s); %s", dep.served_by, name, err.status,
                    err.code or "", "trying another" if others_left else "no other left")
        return False

    def attempt(self, call: Call, asked: str, name: str, dep: Deployment, seat: Seat | None = None,
                request: dict[str, Any] | None = None) -> Answer:
        """The pipeline on one deployment, up to the client's first byte (`request`: a retry's, parsed again from
        the request's bytes); its admission seat (if any) is given back when the answer ends."""
        view = self.gateways[dep.index]
        self.router.started(dep)
        seating = self.seating
        if seat is None or seating is None:
            ended = lambda: self.router.ended(dep)  # noqa: E731
        else:
            def ended() -> None:
                self.router.ended(dep)
                seating.release(seat)
        try:
            response = view.attempt(call, dep.served_by, name, self.shown_name(name, asked),
                                    asked if name != asked else None,  # a fallback's answer names the model asked
                                    request)
        except BaseException:
            ended()
            raise
        if response.is_streamed:
            response.response = _released(response.chunks, ended)
        else:
            ended()
        return response

    def shown_name(self, name: str, asked: str) -> str:
        """The model X-Served-Model names: a fallback off the allow-list is named by the alias asked for."""
        allowed = self.settings.allowed_models
        return name if name == asked or not allowed or model_allowed(allowed, name) else asked

    def failed(self, dep: Deployment, err: ProxyError) -> bool:
        """Cool a deployment down after a failure worth retrying elsewhere; False: the client gets it as is."""
        if err.status == 429:
            after = parse_retry_after(err.headers.get("Retry-After", "")) if err.headers else None
            self.router.cool_down(dep, max(after or 0.0, self.settings.cooldown_seconds), rate_limited=True,
                                  error=err.message)
            return True
        if err.status >= 500:
            self.router.cool_down(dep, error=err.message)
            return True
        return False

    # ------------------------------------------------------------ models, health, probe
    def model_list(self) -> list[dict[str, Any]]:
        """Every exact name routed here; for a glob, the models its deployments list that match it."""
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "cot_proxy"} for name in self.router.exact]
        for pool in self.router.globs:
            data.extend(self.glob_models(pool))
        return data

    def glob_models(self, pool: Pool) -> list[dict[str, Any]]:
        """What a glob's deployments list that matches it, kept GLOB_LISTING_SECONDS; a deployment that is
        cooling down is not asked, one that fails is cooled down (so a dead upstream cannot slow /v1/models)."""
        from fnmatch import fnmatchcase
        kept = self._glob_listings.get(pool.name)
        if kept is not None and time.monotonic() - kept[0] < GLOB_LISTING_SECONDS:
            return kept[1]
        found: dict[str, dict[str, Any]] = {}
        for dep in pool.deployments:
            if self.router.state(dep) != "up":
                continue
            try:
                listing = self.gateways[dep.index].backend.list_models(Call.of("models", "GET", "v1/models", timeout=10.0))
            except ProxyError as err:
                self.router.cool_down(dep, error=err.message)
                continue
            for m in listing.get("data", []):
                if isinstance(m, dict) and isinstance(m.get("id"), str) and fnmatchcase(m["id"], pool.name):
                    found.setdefault(m["id"], m)
        models = list(found.values())
        self._glob_listings[pool.name] = (time.monotonic(), models)
        return models

    def health(self) -> tuple[int, dict[str, Any]]:
        """(status, body): every pool counts for the status; deployments of names off the allow-list are not
        listed (the model list hides them too)."""
        ok, rows = self.router.health()
        allowed = self.settings.allowed_models
        if allowed:
            rows = [r for r, dep in zip(rows, self.router.deployments) if dep.entry.is_glob
                    or model_allowed(allowed, dep.name)]
        down = [f"{r['model']} at {r['served_by']}" for r in rows if r["state"] != "up"]
        body: dict[str, Any] = {"status": "healthy" if ok else "unhealthy", "deployments": rows}
        if down:
            body["down"] = down
        return (200 if ok else 503), body

    def start_probe(self) -> None:
        """The optional active health probe: one background thread per worker (a greenlet under gevent)."""
        if self._prober is not None or not self.settings.health_probe_seconds:
            return
        from argoproxy.upstream.probe import probe
        interval = self.settings.health_probe_seconds

        def probe_deployment(dep: Deployment) -> str | None:
            backend = self.gateways[dep.index].backend
            url = getattr(backend, "base", "") or dep.entry.base_url
            return probe(backend.upstream.session, url) if url else None

        def loop() -> None:
            while True:
                time.sleep(interval)
                try:
                    self.router.probe_all(probe_deployment)
                except Exception:  # noqa: BLE001 - a probe must never end the worker
                    log.exception("deployment probe failed")

        self._prober = threading.Thread(target=loop, name="deployment-probe", daemon=True)
        self._prober.start()


def routing_for(settings: Settings) -> Callable[[Sends], Routing] | None:
    """With `models`: what builds the worker's routing, handed the Gateway that routes (it makes the deployments'
    views of it)."""
    if not settings.models:
        return None
    environ = dict(os.environ)
    return lambda gateway: Routing(gateway, environ)


def key_limiter(settings: Settings) -> KeyLimiter | None:
    """With `key_limits`: the worker's key budgets (serve/build.py adds its observer to the answers)."""
    if not settings.key_limits:
        return None
    if not settings.enable_auth:
        log.warning("key_limits: budgets apply to the keys auth accepts, and ENABLE_AUTH is off: not enforced")
        return None
    from argoproxy.admission import KeyLimiter
    store = None
    if settings.redis_url:  # one budget across replicas, as team keys have (REDIS_OUTAGE decides when away)
        from argoproxy.teamkeys.service import open_store
        store = open_store("", settings.redis_url, settings.redis_outage)
    return KeyLimiter(settings.key_limits, dict(os.environ), store=store)


def is_context_exceeded(err: ProxyError) -> bool:
    return err.status == 400 and context_exceeded({"code": err.code, "type": err.type, "message": err.message})


def _released(chunks: Iterable[bytes], ended: Callable[[], None]) -> Iterator[bytes]:
    """A streamed body; the deployment's in-flight count drops when it ends (or the client leaves)."""
    try:
        yield from chunks
    finally:
        ended()
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
