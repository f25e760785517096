"""build_door: the proxy's core for one Settings object, without any web framework: upstream client, backend,
Gateway, observers (DEBUG lines, journals, metrics), routing, and the Door in front of them; what the API doors
keep (fronts/kept.py, over argoproxy/state/) is handed in (`responses`), never imported here: serve/proxy.py's
build_proxy hands it. argoproxy/serve/flask_app.py wraps the whole proxy in Flask; tests/unit/test_gateway.py drives it
in-process with a fake upstream."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Callable

from argoproxy.console import Console
from argoproxy.edge.auth import Auth, KeySpellings
from argoproxy.edge.classify import AUTHSERVER_KINDS, RouteTable, standard_table
from argoproxy.errors import ProxyError
from argoproxy.fronts import FRONTS, Front, front_named
from argoproxy.fronts.kept import StoredStateHandler
from argoproxy.fronts.model_listing import ModelListing
from argoproxy.observe.own_pages import OwnPages
from argoproxy.pipeline.batch_models import BatchModels
from argoproxy.pipeline.guard import Guard
from argoproxy.serve.door import Door, Handler
from argoproxy.serve.upstream_routes import BackendRoutes, Forwarded, backend_routes
from argoproxy.observe.health import HealthCheck
from argoproxy.observe.journal import Journal, journal_observer, setup_log_file
from argoproxy.requestlog import RequestIndex
from argoproxy.observe.logs import configure_logging, request_logger
from argoproxy.observe.metrics import install_metrics
from argoproxy.fronts.serve import FrontAnswers
from argoproxy.pipeline.answers import Answers
from argoproxy.pipeline.gateway import Gateway
from argoproxy.providers import create_backend
from argoproxy.redaction import Secrets, configured_secrets
from argoproxy.routing.dispatch import key_limiter, routing_for
from argoproxy.config.settings import Settings
from argoproxy.config.tracing_settings import tracing_on
from argoproxy.observe.status_page import StatusPage
from argoproxy.teamkeys.service import TeamKeys, open_store
from argoproxy.upstream.client import Upstream
from argoproxy.upstream.stock import StockTransport, make_session
from argoproxy.upstream.transport import TransportFactory

if TYPE_CHECKING:
    from argoproxy.tracing import Tracing
    from argoproxy.pipeline.collaborators import StoredResponses

# What the API doors keep, made for a worker from its settings and its Answers (None: nothing is kept):
# argoproxy/fronts/kept.py's kept_state, handed by serve/proxy.py.
ResponsesStateMaker = Callable[[Settings, Answers], "StoredResponses | None"]

HEALTH_CONNECTIONS = 2  # the health probe's own pool: one probe at a time per worker, cached HEALTH_CACHE_SECONDS


def build_door(settings: Settings, upstream: Upstream | None = None,
               responses: ResponsesStateMaker | None = None) -> Door:
    """The door for these settings; `upstream` replaces the real upstream client (in-process tests); `responses`
    makes what the Responses door keeps (None: a stateless Responses door)."""
    configure_logging(settings.debug, Secrets.from_settings(settings))
    tracing = traced(settings)
    if upstream is None:
        upstream = real_upstream(settings, tracing)
    elif tracing is not None:
        upstream = upstream.traced_by(tracing)
    backend = create_backend(settings, upstream)
    answers = Answers(settings)  # the answer side the Gateway and its observers share
    if settings.debug:
        answers.observers.append(request_logger())
    keys = team_keys(settings) if settings.enable_auth else None
    if settings.log_dir:
        secrets = configured_secrets(settings)
        journal = Journal(settings.log_dir, secrets=secrets, body_bytes=settings.journal_body_bytes)
        # Under DEBUG the per-request lines are DEBUG records: log.log takes what stderr takes.
        setup_log_file(settings.log_dir, logger=logging.getLogger("cot_proxy"), secrets=secrets,
                       level=logging.DEBUG if settings.debug else logging.INFO)
        index = RequestIndex(keys.store, settings.request_log_rows) \
            if keys is not None and settings.request_log_rows else None  # the request log (argoproxy/requestlog/)
        answers.observers.append(journal_observer(journal, index))
    # A session of its own: a probe through the calls' Session made stock connections in the pool the fast path
    # uses, which urllib3 then reconnects for good instead of making its own kind (no 1xx skipping there).
    health = HealthCheck(make_session(HEALTH_CONNECTIONS), settings.target_base_url, settings.health_cache_seconds)
    limiter = key_limiter(settings)
    if limiter is not None:
        answers.observers.append(limiter.observe)
    stored = responses(settings, answers) if responses is not None else None  # before the door: its state routes
    if keys is not None:
        answers.observers.append(keys.observe)
    auth = door_auth(settings, keys)  # who the client is; the one guard asks it whose key is the operator's
    guard = Guard(settings, limiter, keys, operator_paths=operator_paths(), operator=auth.is_admin)
    gateway = Gateway(settings, backend, upstream, FrontAnswers, answers,  # FrontAnswers: the API doors' encoder
                      routing=routing_for(settings), limiter=limiter, team_keys=keys, stored=stored, guard=guard,
                      spelled=spelled_paths(), batches=door_batches())
    metrics = install_metrics(gateway)
    if tracing is not None:
        gateway.answers.observers.append(tracing.observe)
    page = None
    if settings.status_page:  # it reads the upstreams' health through the own pages, once they are built
        page = StatusPage(metrics.exposition, lambda: deployments(pages, settings),
                          team_keys=lambda: getattr(gateway, "team_keys", None), **queue_view(gateway))
        gateway.answers.observers.append(page.observe)
    pages = own_pages(gateway, auth, health, metrics.view, page)
    with_signin(settings, pages, auth, keys)
    return door_routes(gateway, auth, pages, metrics=metrics, tracing=tracing)


def door_routes(gateway: Gateway, auth: Auth, pages: OwnPages, **door: Any) -> Door:
    """The door over its route table: each family's handler in the room that owns it, given what it uses."""
    settings, backend, answers, routing = gateway.settings, gateway.backend, gateway.answers, gateway.routing
    forwards = backend.forwards_unknown and routing is None  # routed: no upstream is "the" one to forward to
    table, fronts = route_table(settings, gateway, forwards)
    extra = backend_routes(backend.extra_routes())
    for route in extra:
        table.add(route.path, route.kind, "backend", route.methods)
    listing = ModelListing(backend, routing, gateway.guard, gateway.passthrough, answers.recorded,
                           allowed=settings.allowed_models, pseudo_models=settings.llm_params.pseudo_models,
                           forwards=forwards)
    handlers: dict[str, Handler] = {
        "models": listing, "own": lambda call, route: answers.recorded(call, pages.answer(
            route, call.plan.query, call.client.request)),  # the pages read no live call (observe/)
        "forward": Forwarded(gateway.forward, backend, gateway.upstream.send, listing,
                             BatchModels(settings.max_body_bytes, settings.timeout, door_batches())),
        "backend": BackendRoutes(extra, gateway.guard, gateway.reading.forwarded, gateway.route_sender,
                                 gateway.planner.think_config, answers, backend.completion_routes)}
    console = Console(auth, lambda: console_store(gateway), settings.max_body_bytes,
                      default_team=settings.oidc_default_team, tools=mcp_state(pages),
                      connections=console_connections(settings))
    handlers["console"] = lambda call, route: answers.recorded(call, console.answer(
        route, call.plan.query, call.client.request))
    if gateway.stored is not None:
        handlers["state"] = StoredStateHandler(gateway.stored, auth.is_admin, answers.recorded)
    return Door(gateway, table, handlers, auth, answers, fronts, settings=settings, backend=backend,
                routed=routing is not None, **door)


def route_table(settings: Settings, gateway: Gateway, forwards: bool) -> tuple[RouteTable, tuple[Front, ...]]:
    """The route table and the API doors served: a door whose API the upstream serves itself
    (FRONTS_PASSTHROUGH) may leave its paths to be forwarded, in its error shape; the stored responses' routes
    claimed first, unless the upstream holds the state."""
    passed = set(settings.fronts_passthrough) if forwards else set()
    fronts = tuple(f for f in FRONTS.values() if not (f.forwarded_when_passed_through and f.name in passed))
    table = standard_table(forwards, settings.forward_paths, fronts)
    for stepped_aside in (f for f in FRONTS.values() if f not in fronts):
        table.forwarded_fronts.extend((prefix, stepped_aside.name) for prefix in stepped_aside.forwarded_prefixes)
    stored = gateway.stored
    if stored is not None and stored.serves_routes(gateway.backend, gateway.routing is not None):
        table.claims.insert(0, stored.claim)
    return table, fronts


def with_signin(settings: Settings, pages: OwnPages, auth: Auth, keys: TeamKeys | None) -> None:
    """Sign-in's routes among the own pages (OIDC_ISSUER; else they answer 404), its sessions in the key store
    (settings require ENABLE_AUTH with it: `keys` is there), which principal_of reads through `auth.sessions`."""
    if not settings.oidc_issuer or keys is None:
        pages.kinds.update(dict.fromkeys(("signin_login", "signin_callback", "signin_me", "signin_logout"), signin_off))
        from argoproxy.signin.resource import resource_off
        pages.kinds["oauth_resource"] = resource_off
        pages.kinds.update(dict.fromkeys(AUTHSERVER_KINDS, signin_off))
        return
    from argoproxy.signin.pages import signin_pages  # (Authlib is imported only with sign-in on)
    store = getattr(keys.store, "primary", keys.store)  # Redis behind its outage policy: sessions go to Redis itself
    signin = signin_pages(settings, store)
    keys.inactive_days = settings.oidc_inactive_days
    auth.sessions = signin.sessions
    pages.kinds.update(signin.kinds())
    from argoproxy.signin.access_tokens import protect_mcp
    pages.kinds["oauth_resource"] = protect_mcp(settings, signin.provider, store, auth)
    from argoproxy.authserver.setup import authorization_server  # the proxy as MCP clients' (MCP_OAUTH_SERVER)
    pages.kinds.update(authorization_server(settings, signin, store, auth.access_tokens))


def signin_off(kind: str, query: str, req: Any) -> Any:
    raise ProxyError(404, "Sign-in is off: OIDC_ISSUER is not set (docs/signin.md).", code="unknown_route")


def own_pages(gateway: Gateway, auth: Auth, health: HealthCheck, metrics_view: Any, page: StatusPage | None) -> OwnPages:
    """The proxy's own routes (/, /health, /metrics, /ui, the listener proof, a door's own answers)."""
    routing = gateway.routing

    def door_answer(name: str, kind: str) -> dict[str, Any] | None:
        front = front_named(name)
        return front.own_answer(kind) if front is not None else None
    return OwnPages(auth, health, metrics_view=metrics_view,
                    metrics_public=gateway.settings.metrics_public, status_page=page,
                    upstreams_health=routing.health if routing is not None else None,
                    backend_health=gateway.backend.health, door_answer=door_answer)


def door_auth(settings: Settings, team_keys: TeamKeys | None) -> Auth:
    """Who the client is: the keys every door's clients send, in each door's spellings (edge/auth.py)."""
    return Auth(settings, team_keys, KeySpellings.of(FRONTS.values()))


def operator_paths() -> tuple[str, ...]:
    """The doors' forwarded paths only the operator's keys may use (Front.operator_paths), for the one guard."""
    return tuple(g for front in FRONTS.values() for g in front.operator_paths)


def spelled_paths() -> tuple[tuple[str, object], ...]:
    """What bodies in a door's own API may generate, by path (forwarded bodies, a batch's lines): the doors'."""
    return tuple(pair for front in FRONTS.values() for pair in front.spelled_paths)


def door_batches() -> tuple[tuple[str, Any], ...]:
    """The doors' own batch routes whose body lists requests (Front.batch_routes), for the guard and the meter."""
    return tuple(pair for front in FRONTS.values() for pair in front.batch_routes)

def deployments(pages: OwnPages, settings: Settings) -> list[dict]:
    """What the status page shows of the upstreams: every routed deployment, or the one target."""
    status, body = pages.health_body("")
    if isinstance(body.get("deployments"), list):
        return body["deployments"]
    row = {"model": "*", "backend": settings.backend, "served_by": body.get("target_url", ""),
           "state": "up" if status < 400 else "down"}
    if status >= 400 and body.get("error"):
        row["error"] = body["error"]
    return [row]


def queue_view(gateway: Gateway) -> dict[str, Any]:
    """What the status page shows of admission's queue, when a deployment has a limit: its rows, and each key's
    waits (fed by the queue itself)."""
    seating = getattr(getattr(gateway, "routing", None), "seating", None)
    if seating is None or not seating.limited:
        return {}
    return {"queue": seating.rows, "waits": seating.admission.keep_waits()}


def mcp_state(pages: OwnPages) -> Callable[[], dict[str, Any]] | None:
    """The MCP servers' state and today's tool calls, as the status page shows them (None: no status page)."""
    page = pages.status_page
    return (lambda: page.data()["tools"]) if page is not None else None


def console_connections(settings: Settings) -> Any:
    """People's connections to the per-person MCP servers, for the console (None: no such server; the MCP package
    is then not imported)."""
    if not any(s.per_person for s in settings.mcp_servers):
        return None
    from argoproxy.mcp.connection_states import connection_states
    return connection_states(settings)


def console_store(gateway: Gateway) -> Any:
    """The key store the proxy reads, for the console (a Redis store behind its outage policy: Redis itself, where
    a change must go); None while auth is off."""
    keys = gateway.team_keys
    return getattr(keys.store, "primary", keys.store) if keys is not None else None


def team_keys(settings: Settings) -> TeamKeys:
    return TeamKeys(open_store(settings.keys_db, settings.redis_url, settings.redis_outage),
                    cache_seconds=settings.key_cache_seconds)


def traced(settings: Settings) -> Tracing | None:
    """The worker's tracing, when on (TRACING, OTEL_*): OpenTelemetry's SDK is imported and started here, in the
    worker building its app, never in the Gunicorn master; off, it is not imported at all."""
    if not tracing_on(settings.tracing, os.environ):
        return None
    from argoproxy.tracing import Tracing
    batching = None
    if settings.fast_path == "on":
        from argoproxy.fastpath.otlp import lean_batching
        batching = lean_batching  # records batched and written by the fast path's (observe/ imports no fastpath)
    return Tracing(settings, Secrets.from_settings(settings), batching)


def real_upstream(settings: Settings, tracing: Tracing | None = None) -> Upstream:
    transport: TransportFactory = StockTransport
    if settings.fast_path == "on":
        from argoproxy import fastpath
        from argoproxy.fastpath.transport import FastTransport
        fastpath.install()  # done in the Gunicorn master already; again here for the app built in-process
        transport = FastTransport  # the Session's pools used directly (upstream/ imports no fastpath)
    return Upstream(settings.connect_timeout, settings.timeout, settings.max_retries,
                    pool_size=max(64, settings.worker_connections), max_response_bytes=settings.max_response_bytes,
                    transport=transport, tracer=tracing)
