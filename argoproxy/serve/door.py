"""The one door every request goes through: a Request in, an Answer out (argoproxy/edge/http_objects.py), in this order:

  canonical path (argoproxy/edge/paths.py) -> one Route (argoproxy/edge/classify.py) -> request id + Call (so metrics,
  journals and DEBUG lines see every request, refused ones included) -> other sites' web pages refused
  (argoproxy/edge/web_pages.py) -> auth -> 404/405 -> `?model=` against
  the allow-list -> the route family's handler (API pipeline, model list, backend route, /health, /metrics,
  forwarded path).

No route has a way in that skips a step: the Flask layer (argoproxy/serve/flask_view.py) has a single catch-all view
that calls `Door.handle`. Errors become answers here, in the route's front-door shape, so the door and all
behind it run without Flask (tests/unit/test_gateway.py drives it in-process).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from msgspec import structs

from argoproxy.pipeline.answer_shape import bad_answer
from argoproxy.edge import listener_proof
from argoproxy.edge.auth import Guard, KeySpellings, without_key_params
from argoproxy.edge.web_pages import WebPages
from argoproxy.pipeline.batch_models import BatchModels, upstream_fetch
from argoproxy.pipeline.call import Call
from argoproxy.edge.classify import Route, RouteTable, standard_table
from argoproxy.errors import ProxyError, named
from argoproxy.edge.http_objects import Answer, Request
from argoproxy.fronts import FRONTS, DoorArgs, Front, front_named
from argoproxy.observe.health import HealthCheck
from argoproxy.observe.refusals import error_cause
from argoproxy.jsonfast import dumps
from argoproxy.edge.paths import PathError, canonical, raw_target
from argoproxy.edge.model_readers import Named, Reader, body_model, compressed, path_models, reader_for
from argoproxy.edge.request_body import as_utf8, parse_with_members, read_request_body
from argoproxy.pipeline.gateway import Gateway
from argoproxy.pipeline.guard import ModelFree, plan_model
from argoproxy.edge.request_body import parse_object
from argoproxy.edge.validation import model_allowed
from argoproxy.pipeline.request_shape import validate
from argoproxy.upstream.wire import UpstreamResponse

if TYPE_CHECKING:  # built in serve/build.py (prometheus_client is imported only in the workers)
    from argoproxy.config.settings import Settings
    from argoproxy.observe.metrics import Metrics
    from argoproxy.teamkeys.service import TeamKeys
    from argoproxy.observe.status_page import StatusPage
    from argoproxy.tracing.tracer import Tracing

log = logging.getLogger("cot_proxy")

ROOT_ANSWER = {"status": "ok", "service": "cot_proxy"}  # GET and HEAD /: the proxy is up (details: /health)
RAW_TARGET_KEY = "cot_proxy.raw_target"  # environ: the request target as the client sent it (set by Edge)
JSON_TYPE = "application/json"
READS_BODY = frozenset({"api", "front", "backend"})  # route families whose request body the proxy parses
ADAPTED_HEADER = "X-Adapted-Params"  # what capability adaptation changed in the request

Handler = Callable[[Call, Route], Answer]


@dataclass(frozen=True)
class BackendRoute:
    """A route a backend serves itself: `handler(call, send)` answers it (the body is in call.plan.raw_body;
    `send(req, error)` is the sequence's one exchange with the upstream, Gateway.exchange); `models` reads the
    models it names for the guard (argoproxy/edge/model_readers.py; None: it names none)."""

    path: str
    kind: str
    methods: tuple[str, ...]
    handler: Callable[[Call, Any], Answer]
    models: Reader | None = None


# The page runs only its own inline script and style and talks only to this proxy.
STATUS_PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                      "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

class Door:
    def __init__(self, gateway: Gateway, health: HealthCheck, metrics_view: Callable[[], Answer] | None,
                 auth: Guard | None = None, *, metrics: Metrics | None = None, tracing: Tracing | None = None,
                 status_page: StatusPage | None = None) -> None:
        """`auth`: who the client is (serve/build.py builds it, and the one guard with its operator test); the
        worker's `metrics`, its `tracing` when TRACING is on (each request's spans, tracing/tracer.py), and its
        `status_page` when STATUS_PAGE is on."""
        self.gateway = gateway
        self.settings = gateway.settings
        self.backend = gateway.backend
        self.health = health
        self.metrics_view = metrics_view
        # The API doors (argoproxy/fronts/): each owns its routes, clients, keys, shapes; none is named here.
        # A door whose API the upstream serves itself (FRONTS_PASSTHROUGH) may leave its paths to be forwarded.
        passed = set(self.settings.fronts_passthrough) if self.backend.forwards_unknown and gateway.routing is None \
            else set()
        self.fronts: tuple[Front, ...] = tuple(f for f in FRONTS.values()
                                               if not (f.forwarded_when_passed_through and f.name in passed))
        self.auth = auth if auth is not None else door_auth(self.settings, gateway.team_keys)  # who the client is
        self.guard = gateway.guard  # the one guard every upstream-bound request passes (pipeline/guard.py)
        self.web_pages = WebPages(self.settings)
        self.metrics, self.tracing = metrics, tracing
        self.status_page = status_page
        self.allowed = self.settings.allowed_models
        self.batches = BatchModels(self.settings.max_body_bytes, self.settings.timeout, door_batches())
        # Readers of forwarded paths naming their models elsewhere than `model`: the doors' (a door whose API is
        # forwarded under FRONTS_PASSTHROUGH included).
        self.readers: tuple[tuple[str, Reader], ...] = tuple(pair for front in FRONTS.values()
                                                             for pair in front.model_readers)
        # Forwarded paths answering the upstream's model list, which the allow-list and a key's globs filter.
        self.listings = tuple((ModelFree(front.forwarded_lists), front) for front in FRONTS.values()
                              if front.forwarded_lists)
        # Routed (several upstreams by model, argoproxy/routing/): no upstream is "the" upstream to forward to.
        self.forwards = self.backend.forwards_unknown and gateway.routing is None
        self.table: RouteTable = standard_table(self.forwards, self.settings.forward_paths, self.fronts)
        for stepped_aside in (f for f in FRONTS.values() if f not in self.fronts):  # its paths forwarded: its errors
            self.table.forwarded_fronts.extend((prefix, stepped_aside.name) for prefix in stepped_aside.forwarded_prefixes)
        # Stored responses: their routes, unless the upstream holds the state. The door, as the sequence, knows the
        # store by its interface (pipeline/collaborators.py's StoredResponses: the Responses door's, argoproxy/state/).
        self.stored = gateway.stored
        if self.stored is not None and self.stored.serves_routes(self.backend, gateway.routing is not None):
            self.table.claims.insert(0, self.stored.claim)
        self.backend_routes: dict[str, BackendRoute] = {}
        for r in self.backend.extra_routes():
            route = r if isinstance(r, BackendRoute) else BackendRoute(*r)
            self.table.add(route.path, route.kind, "backend", route.methods)
            self.backend_routes[route.kind] = route
        self.families: dict[str, Handler] = {"api": self.api, "front": self.front, "models": self.models,
                                             "backend": self.backend_route, "own": self.own, "forward": self.forward,
                                             "state": self.state_route}

    # ---------------------------------------------------------------- the door
    def handle(self, req: Request) -> Answer:
        call = Call.of_request(req, "invalid_path", "-", self.tracing.begin() if self.tracing is not None else None)
        try:
            answer = self.enter(req, call)
        except ProxyError as err:
            answer = self.error_answer(call, err)
        except Exception:  # noqa: BLE001 - a bug must still answer in the API's shape, and be logged
            log.exception("unexpected error in request %s", call.client.request_id or "-")
            answer = self.error_answer(call, ProxyError(500, "The proxy failed to handle this request; see its log.",
                                                        type="server_error", code="internal_error"))
        adapted = call.planned.adapted
        if adapted:  # what capability adaptation changed in the request (argoproxy/pipeline/adapt.py)
            answer.headers[ADAPTED_HEADER] = ", ".join(adapted)
        return answer

    def enter(self, req: Request, call: Call) -> Answer:
        try:
            target = canonical(req.target)  # a PathError is a 400, observed like every answer
        except PathError:
            meant = self.meant_for(req.target)  # refused before it has a route, but plainly meant for a door
            if meant is not None:
                call.client = structs.replace(call.client, front=meant.name)
            raise
        route = self.table.classify(target)
        if route.family == "models" and route.front == "openai":  # /v1/models: whose client is it?
            for door in self.fronts:
                if door.claims_client(req.headers, target.query):
                    route = replace(route, front=door.name)
                    break
        call.client = structs.replace(call.client, path=route.path, front=route.front)
        call.plan.kind, call.plan.path, call.plan.query = route.kind, route.path, target.query
        self.web_pages.check(req)
        self.auth.check(req, route)
        front = front_named(route.front) if route.front != "openai" else None  # the chat door: no lookup
        if call.plan.query:  # a client key never goes upstream (a door's key parameters, with auth off too)
            params = self.auth.key_params if self.auth.enabled else front.key_params if front else frozenset()
            call.plan.query = without_key_params(call.plan.query, params)
        if route.family == "unknown":
            raise ProxyError(404, f"No route {route.label} on this proxy ({self.backend.name} backend).",
                             code="unknown_route")
        if call.client.method not in route.methods:
            unserved = front.unserved(route, call.client.method) if front is not None else None
            if unserved is not None:
                raise unserved
            allow = ", ".join(sorted(route.methods))
            raise ProxyError(405, f"{route.label} takes {allow} only.", code="method_not_allowed",
                             headers={"Allow": allow})
        if route.family in READS_BODY and compressed(req.headers):
            raise ProxyError(415, "Request bodies must not be compressed on this route (Content-Encoding "
                             f"{req.headers.get('Content-Encoding', '').strip()!r}); send the JSON as it is.",
                             code="unsupported_content_encoding")
        return self.families[route.family](call, route)

    def meant_for(self, target: str) -> Front | None:
        """The door a raw request target with no route (a bad path) is plainly meant for; None: none is."""
        return next((door for door in self.fronts if door.looks_like_mine(target)), None)

    def front_of(self, target: str) -> Front | None:
        """The door whose error shape answers a raw request target read before it had a route (Gunicorn's own
        answers: headers too large, a request line too long): its route's door, else the one it is plainly meant
        for; None for OpenAI's. A request line cut at Gunicorn's limit keeps its path, nearly always."""
        try:
            return front_named(self.table.classify(canonical(target)).front)
        except PathError:
            return self.meant_for(target)

    def error_answer(self, call: Call, err: ProxyError) -> Answer:
        """An error in the front door's shape (OpenAI's, or the door's own), with the request id; compatible
        mode sends it with HTTP 200. A relayed upstream error body goes out as it was, secrets removed."""
        if err.status >= 500:
            log.warning("%s %s", err.status, err.message)
        status, rid = err.status, call.client.request_id
        front = front_named(call.client.front)
        body = err.body()
        if front is not None:  # (a door whose shape is OpenAI's keeps the client's id beside its own)
            body = front.error_body(status, named(body["error"], rid, call.client.client_request_id), rid)
        else:
            named(body["error"], rid, call.client.client_request_id)  # so that a client's report leads to the log line
        secrets = self.gateway.answers.secrets
        data = secrets.data(err.raw if err.raw is not None and call.plan.exchange is None else dumps(body))
        if not call.outcome.observed:  # observed with what is sent: the DEBUG line said out=0B for an error's body
            call.outcome.status, call.outcome.output, call.outcome.bytes_out = status, body, len(data)
            call.outcome.refused = error_cause(status, err.code, err.cause)
            self.gateway.answers.observe(call)
        relayed = err.raw is not None and call.plan.exchange is None and "Content-Type" in err.headers  # as it came
        answer = Answer(data, 200 if self.settings.compatible else status, err.headers,
                        content_type=None if relayed else JSON_TYPE)
        if front is not None:
            for name, value in front.id_headers(rid).items():
                answer.headers[name] = value
        return answer

    # ---------------------------------------------------------------- families
    def api(self, call: Call, route: Route) -> Answer:
        if self.gateway.routing is None and call.plan.kind not in self.backend.kinds:
            raise ProxyError(404, f"The {self.backend.name} backend does not serve {route.label}.",
                             code="unknown_route")
        body = self.api_body(call, None)
        if not self.backend.transparent:  # a transparent backend leaves parameter checks to the upstream
            validate(call.plan.kind, body)
        return self.gateway.api(call, body)

    def front(self, call: Call, route: Route) -> Answer:
        """An API door's request, to the sequence it takes: relayed as written when the upstream serves the door's
        API itself, its tokens counted, or translated and served (Gateway.relay_native, count_tokens, api)."""
        front = front_named(route.front)
        if front is None:
            raise ProxyError(404, f"No API door serves {route.label}.", code="unknown_route")
        args = front.door_args(route, call.plan.query)
        body = self.api_body(call, args)
        count_only = call.plan.kind == "count_tokens"
        if self.gateway.relays(front, call.plan.model):
            return self.gateway.relay_native(call, front, body, count_only, args)
        if count_only:
            return self.gateway.count_tokens(call, front, body, args)
        return self.gateway.api(call, body, front, args)

    def api_body(self, call: Call, args: DoorArgs | None) -> dict[str, Any]:
        """An API request's body, read and parsed (its top-level members as written kept for a long one), and the
        model it names (in the body, or the door's path: `args`), which metrics and journals name when refused."""
        plan = call.plan
        plan.raw_body = as_utf8(read_request_body(call.client.request, self.settings.max_body_bytes))
        body: dict[str, Any]
        body, plan.members = parse_with_members(plan.raw_body)  # an object, or a 400
        plan.body = body  # the request as admitted, which planning starts from
        named = args.model if args is not None and args.model is not None else body.get("model")
        plan.model = named if isinstance(named, str) else None
        return body

    def state_route(self, call: Call, route: Route) -> Answer:
        """Stored responses and conversations (argoproxy/state/routes.py): the key's own only."""
        assert self.stored is not None
        body = None
        if call.client.method == "POST":
            raw = read_request_body(call.client.request, self.settings.max_body_bytes)
            body = parse_object(raw) if raw.strip() else {}
        ids = route.path.split("/")[2::2]  # v1/responses/{id}/..., v1/conversations/{id}/items/{id}
        answer = self.stored.answer_route(call, route.kind, ids, call.plan.query, body,
                                          self.auth.is_admin(call.client.request))
        return self.observed(call, answer)  # observed without its body: stored bodies are journaled nowhere new

    def forward(self, call: Call, route: Route) -> Answer:
        """A forwarded path: its body read, then the sequence's forwarded variant (Gateway.forward), the models it
        names read by the doors' readers; the upstream's own model list filtered for the key."""
        call.plan.raw_body = read_request_body(call.client.request, self.settings.max_body_bytes)
        front = self.forwarded_listing(call)
        listed = (lambda c, resp: self.filtered_listing(c, resp, front)) if front is not None else None
        return self.gateway.forward(call, self.forwarded_models, listed)

    def forwarded_listing(self, call: Call) -> Front | None:
        """The door whose forwarded model list this request asks for, when the allow-list or the key's globs
        filter it (None: forwarded as it is)."""
        if not (self.allowed or self.key_models(call)):
            return None
        return next((front for paths, front in self.listings if paths(call.client.method, call.plan.path)), None)

    def filtered_listing(self, call: Call, resp: UpstreamResponse, front: Front) -> Answer:
        """The upstream's own model list (a door's `forwarded_lists`) with only the models the request's key may
        use, as the proxy's own list is filtered (`model_list`)."""
        with resp:
            if resp.status_code != 200:
                raise bad_answer(f"its model list answered {resp.status_code}")
            try:
                answer = resp.json()
            except ValueError:
                raise bad_answer("its model list is not JSON") from None
        key_models = self.key_models(call)

        def keep(name: Any) -> bool:
            return (not self.allowed or model_allowed(self.allowed, name)) and \
                (not key_models or model_allowed(key_models, name))
        return self.observed(call, json_response(front.listed(answer, keep)))

    def backend_route(self, call: Call, route: Route) -> Answer:
        if call.client.method != "GET":
            call.plan.raw_body = read_request_body(call.client.request, self.settings.max_body_bytes)
        served = self.backend_routes[call.plan.kind]
        self.guard.admit(call, served.models, partial(self.gateway.reading.forwarded, call))
        answer = served.handler(call, self.gateway.route_sender(call))
        if call.plan.kind in self.backend.completion_routes and answer.status_code == 200:
            answer = self.as_chat_answer(call, answer)
        return self.observed(call, self.gateway.answers.scrubbed(call, answer))

    def as_chat_answer(self, call: Call, answer: Answer) -> Answer:
        """A backend route's chat.completion, through what a chat answer goes through: think tags handled per
        THINK_MODE and the model's LLM_PARAMS (ARGO's /v1/status returned <think> text chat strips)."""
        call.planned = structs.replace(call.planned, think=self.gateway.planner.think_config(
            call.plan.model, call.planned.upstream_model))
        answer.set_data(dumps(self.gateway.answers.completion_of(call, answer.get_data())))
        return answer

    def own(self, call: Call, route: Route) -> Answer:
        front = front_named(route.front)
        if front is not None:  # a door's answer that asks nothing of an upstream (its version...)
            return self.observed(call, json_response(front.own_answer(call.plan.kind)))
        if call.plan.kind == "root":  # answered here, never forwarded: clients probe it before their first request
            return self.observed(call, json_response(ROOT_ANSWER))
        if call.plan.kind in ("ui", "ui_data"):
            return self.observed(call, self.status_answer(call))
        if call.plan.kind == "listener_proof":
            return self.observed(call, self.listener_proof(call))
        if call.plan.kind == "metrics":
            if self.metrics_view is None:
                raise ProxyError(404, "Metrics are off.", code="unknown_route")
            req = call.client.request
            if req is not None and req.team_key is not None and not self.settings.metrics_public:
                raise ProxyError(403, "/metrics counts every team's use: a team key does not open it, the admin key "
                                      "(API_KEY_SECRET) does.", code="admin_key_required")
            return self.observed(call, self.metrics_view())
        status, body = self.health_body(call.plan.query)
        if self.auth.enabled and not self.auth.authenticated(call.client.request):
            body = {"status": body.get("status", "healthy" if status < 400 else "unhealthy")}  # status only
        return self.observed(call, json_response(body, status))

    @staticmethod
    def listener_proof(call: Call) -> Answer:
        """`cot-proxy run`'s question before it sends a key (argoproxy/edge/listener_proof.py)."""
        req = call.client.request
        proof = listener_proof.answer(req.headers, req.peer) if req is not None else None
        if proof is None:
            raise ProxyError(404, "No proof for that file from this proxy.", code="no_proof")
        answer = json_response({"proof": proof})
        answer.headers["Cache-Control"] = "no-store"
        return answer

    def status_answer(self, call: Call) -> Answer:
        """/ui (the page) and /ui/data (what it shows: the admin key's only when auth is on)."""
        if self.status_page is None:
            raise ProxyError(404, "The status page is off (STATUS_PAGE).", code="unknown_route")
        if call.plan.kind == "ui":
            return Answer(self.status_page.page(), 200, {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                                         "Content-Security-Policy": STATUS_PAGE_POLICY},
                          content_type="text/html; charset=utf-8")
        if not self.auth.is_admin(call.client.request):
            raise ProxyError(403, "Only the admin key (API_KEY_SECRET) opens the status page.",
                             code="admin_key_required")
        answer = json_response(self.status_page.data())
        answer.headers["Cache-Control"] = "no-store"  # keys' names and traffic: no cache or browser may keep them
        return answer

    def models(self, call: Call, route: Route) -> Answer:
        front = front_named(route.front)
        if front is not None and call.client.method != "DELETE":
            return self.door_models(call, route, front)
        if call.plan.kind == "models":
            self.guard.check(call, admit=False)
            return self.observed(call, json_response(self.model_list(call)))
        call.plan.model = route.model
        if self.allowed and self.forwards and not model_allowed(self.allowed, route.model):
            raise model_not_found(route.model)  # answered from the filtered list below when not forwarding
        # forwarded: the id goes upstream; else answered from the list the allow-list filtered
        self.guard.check(call, plan_model, served_later=not self.forwards, admit=False)
        if route.model in self.settings.llm_params.pseudo_models and call.client.method in ("GET", "HEAD"):
            # LLM_PARAMS pseudo models are the proxy's own: the upstream does not know them
            return self.observed(call, json_response({"id": route.model, "object": "model", "created": 0,
                                                      "owned_by": "cot_proxy"}))
        if self.forwards:
            return self.forwarded_model(call, route)
        if call.client.method == "DELETE":
            raise ProxyError(405, f"{route.label} takes GET only on the {self.backend.name} backend.",
                             code="method_not_allowed", headers={"Allow": "GET, HEAD"})
        entry = self.known_model(call, route.model)
        if entry is not None:
            return self.observed(call, json_response(entry))
        raise model_not_found(route.model)

    def forwarded_model(self, call: Call, route: Route) -> Answer:
        """/v1/models/{id} on a forwarding backend: the upstream's answer, or, where the upstream has no such
        route (llama.cpp answers 404 for any id), the proxy's own knowledge of the model."""
        call.plan.raw_body = read_request_body(call.client.request, self.settings.max_body_bytes)
        url, headers = self.backend.url(call.plan.path, call.plan.query), self.backend.upstream_headers(call)
        if call.client.method == "HEAD":  # a HEAD answer has no body to judge: what the proxy knows comes first
            entry = self.known_model(call, route.model)
            if entry is not None:
                return self.observed(call, json_response(entry))
            return self.gateway.passthrough(call, url, headers)
        if call.client.method != "GET":
            return self.gateway.passthrough(call, url, headers)
        try:
            return self.gateway.passthrough(call, url, headers)
        except ProxyError as err:
            entry = self.known_model(call, route.model) if err.status == 404 else None
            if entry is None:
                if err.status == 404 and err.code is None:  # llama.cpp's bare "Not Found": said as OpenAI says it
                    raise model_not_found(route.model) from None
                raise
            return self.observed(call, json_response(entry))

    def known_model(self, call: Call, name: str | None) -> dict[str, Any] | None:
        """A model entry from what the proxy serves (the model list: the upstream's, the routing entries, the
        LLM_PARAMS pseudo-models, filtered by the allow-list), or for a name only a routing glob serves
        (`claude-*`), an entry of its own."""
        if not name:
            return None
        listing = Call(structs.replace(call.client, method="GET", path="v1/models"),
                       structs.replace(call.plan, kind="models", path="v1/models", query=""))
        try:
            entry = self.backend.model_entry(name, self.model_list(listing)["data"])
        except ProxyError:  # no list to read (the upstream has none): the routing entries may still know it
            entry = None
        routing = self.gateway.routing
        if entry is None and routing is not None and (not self.allowed or model_allowed(self.allowed, name)) \
                and routing.serves(name):
            entry = {"id": name, "object": "model", "created": 0, "owned_by": "cot_proxy"}
        return entry

    def door_models(self, call: Call, route: Route, front: Front) -> Answer:
        """A door's model routes: the proxy's own list (the upstream's, routing entries, pseudo models, filtered
        by the allow-list) in the door's shape; one model (named in the path, or in the body) from the same
        knowledge (`known_model`, routing globs included); errors in the door's shape."""
        plan = call.plan
        body = None
        if call.client.method == "POST":  # a model named in the body
            body = parse_object(read_request_body(call.client.request, self.settings.max_body_bytes),
                                must_be_object=False)
        plan.path, plan.query = "v1/models", ""  # what an upstream's list is asked on (the door's params not passed)
        plan.headers = front.upstream_headers(plan.headers)
        if route.kind != "model":
            self.guard.check(call, admit=False)
            return self.observed(call, json_response(front.model_list(self.model_list(call)["data"], route.kind)))
        name = route.model if route.model is not None else front.model_named(body)
        plan.model = name
        self.guard.check(call, plan_model, served_later=True, admit=False)  # known_model: the allow-list's list
        entry = self.known_model(call, name)
        if entry is None:
            raise model_not_found(name)
        return self.observed(call, json_response(front.model_entry({**entry, "id": name})))

    # ---------------------------------------------------------------- pieces
    def model_list(self, call: Call) -> dict[str, Any]:
        """The backend's models plus LLM_PARAMS pseudo models, filtered by the allow-list."""
        if self.gateway.routing is not None:
            listing = {"object": "list", "data": self.gateway.routing.model_list()}
        else:
            listing = self.backend.list_models(call)
        data = listing.get("data", [])
        if not isinstance(data, list):
            raise bad_answer("the model list's `data` is not a list")
        known = {m.get("id") for m in data if isinstance(m, dict)}
        for name in self.settings.llm_params.pseudo_models:
            if name not in known:
                data.append({"id": name, "object": "model", "created": 0, "owned_by": "cot_proxy"})
        if self.allowed:
            data = [m for m in data if isinstance(m, dict) and self.listed_allowed(m, self.allowed)]
        key_models = self.key_models(call)
        if key_models:  # a team key sees the models it may use
            data = [m for m in data if isinstance(m, dict) and self.listed_allowed(m, key_models)]
        listing["data"] = data
        return listing

    @staticmethod
    def listed_allowed(entry: dict[str, Any], patterns: tuple[str, ...]) -> bool:
        """A model list entry passes the allow-list (or a team key's globs) by its id or by the id it resolves to
        (ARGO's aliases carry it as `internal_name`), as requests naming it are checked after alias resolution."""
        return model_allowed(patterns, entry.get("id")) or model_allowed(patterns, entry.get("internal_name"))

    def health_body(self, query: str) -> tuple[int, dict[str, Any]]:
        """(status, body) of /health with its detail: deployments, target URL, errors."""
        if self.gateway.routing is not None:
            return self.gateway.routing.health()
        try:
            own = self.backend.health(query)
        except ProxyError as err:
            return 503, {"status": "unhealthy", "error": err.message}
        if own is not None:
            return 200, own
        return self.health.status()

    def key_models(self, call: Call) -> tuple[str, ...]:
        """The model globs of the team key the request came with (none: any model ALLOWED_MODELS takes)."""
        req = call.client.request
        key = req.team_key if req is not None else None
        return key.allowed_models if key is not None else ()

    def forwarded_models(self, call: Call, named: Named) -> None:
        """The reader of a forwarded request's models: a deployment or engine in the path; the body's `model` (or
        what a door names it under, `name`...); each line or request of batch work."""
        path_models(call, named)
        reader = reader_for(self.readers, call.plan.path) or body_model
        reader(call, named)
        if getattr(named, "noting", False):
            return  # a team key's usage rows only: no batch file read back for them
        fetch = upstream_fetch(self.gateway.upstream.send, self.backend.url, self.backend.upstream_headers(call),
                               call.plan.query)
        self.batches.read(call, named, fetch)  # models named inside batch files and message batches

    def observed(self, call: Call, response: Answer) -> Answer:
        """Answers made outside the pipeline are counted and journaled too (streamed ones when they end)."""
        if call.outcome.observed:
            return response
        call.outcome.status = response.status_code
        if response.is_streamed:
            response.response = self._observe_after(call, response.chunks)
            return response
        # what an upstream said may be in it (a model list rebuilt from the upstream's quoted its key)
        response.set_data(self.gateway.answers.secrets.data(response.get_data()))
        call.outcome.bytes_out = len(response.get_data())
        self.gateway.answers.observe(call)
        return response

    def _observe_after(self, call: Call, chunks: Iterable[bytes]) -> Iterator[bytes]:
        try:
            for data in chunks:
                call.outcome.bytes_out += len(data)
                yield data
        finally:
            self.gateway.answers.observe(call)


class Edge:
    """WSGI middleware: keep the request target as the client sent it (the door canonicalises it) and show
    Flask one path, so that its URL map decides nothing (argoproxy/serve/flask_view.py has one catch-all view)."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        environ[RAW_TARGET_KEY] = raw_target(environ)
        environ["PATH_INFO"] = "/"
        return self.app(environ, start_response)


def door_auth(settings: Settings, team_keys: TeamKeys | None) -> Guard:
    """Who the client is: the keys every door's clients send, in each door's spellings (edge/auth.py)."""
    return Guard(settings, team_keys, KeySpellings.of(FRONTS.values()))


def operator_paths() -> tuple[str, ...]:
    """The doors' forwarded paths only the operator's keys may use (Front.operator_paths), for the one guard."""
    return tuple(g for front in FRONTS.values() for g in front.operator_paths)


def spelled_paths() -> tuple[tuple[str, object], ...]:
    """What bodies in a door's own API may generate, by path (forwarded bodies, a batch's lines): the doors'."""
    return tuple(pair for front in FRONTS.values() for pair in front.spelled_paths)


def door_batches() -> tuple[tuple[str, Any], ...]:
    """The doors' own batch routes whose body lists requests (Front.batch_routes), for the guard and the meter."""
    return tuple(pair for front in FRONTS.values() for pair in front.batch_routes)


def model_not_found(model: str | None) -> ProxyError:
    return ProxyError(404, f"The model `{model}` does not exist or you do not have access to it.", param="model",
                      code="model_not_found")


def json_response(obj: object, status: int = 200) -> Answer:
    return Answer(dumps(obj), status, content_type=JSON_TYPE)
