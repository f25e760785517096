"""The one door every request goes through, a Request in and an Answer out (edge/http_objects.py): canonical path
(edge/paths.py) -> one Route (edge/classify.py) -> request id + Call (every request observed, refused ones too) ->
other sites' pages refused (edge/web_pages.py) -> auth -> 404/405 -> the route's part of the plan (its body, the
model it names) -> the API routes to the sequence (Gateway.api, relay_native, count_tokens), every other family to
its handler in the room that owns it (serve/build.py's `door_routes`). It only routes, and answers errors in the
route's front-door shape; direct_routes.py calls `Door.handle` (tests/unit/test_gateway.py: no Flask)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Mapping

from msgspec import structs

from argoproxy.edge.auth import Auth, without_key_params
from argoproxy.edge.classify import Route, RouteTable
from argoproxy.edge.http_objects import Answer, Request
from argoproxy.edge.model_readers import compressed
from argoproxy.edge.paths import PathError, canonical
from argoproxy.edge.request_body import parse_object, read_api_body, read_request_body
from argoproxy.edge.web_pages import WebPages
from argoproxy.errors import ProxyError, named
from argoproxy.fronts import DoorArgs, Front, front_named
from argoproxy.jsonfast import dumps
from argoproxy.observe.refusals import error_cause
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.request_shape import validate

if TYPE_CHECKING:  # built in serve/build.py (prometheus_client is imported only in the workers)
    from argoproxy.config.settings import Settings
    from argoproxy.observe.metrics import Metrics
    from argoproxy.pipeline.answers import Answers
    from argoproxy.pipeline.backend import Backend
    from argoproxy.pipeline.gateway import Gateway
    from argoproxy.tracing import Tracing

log = logging.getLogger("cot_proxy")

READS_BODY = frozenset({"api", "front", "backend"})  # route families whose request body the proxy parses
ADAPTED_HEADER = "X-Adapted-Params"  # what capability adaptation changed in the request

Handler = Callable[[Call, Route], Answer]


class Door:
    def __init__(self, gateway: Gateway, table: RouteTable, handlers: Mapping[str, Handler], auth: Auth,
                 answers: Answers, fronts: tuple[Front, ...], *, settings: Settings, backend: Backend, routed: bool,
                 metrics: Metrics | None = None, tracing: Tracing | None = None) -> None:
        """serve/build.py's `door_routes` builds the table, the doors served and the other families' handlers;
        `routed`: several upstreams (argoproxy/routing/), else one, which answers a model's detail if it forwards."""
        self.gateway, self.table, self.auth, self.answers, self.fronts = gateway, table, auth, answers, fronts
        self.settings, self.backend, self.routed = settings, backend, routed
        self.forwards = backend.forwards_unknown and not routed
        self.metrics, self.tracing = metrics, tracing
        self.web_pages = WebPages(settings)
        self.record = answers.recorded  # every answer made outside the sequence is recorded so (mcp_mount's too)
        self.families: dict[str, Handler] = {"api": self.api, "front": self.front, **handlers}

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
        if call.planned.adapted:  # what capability adaptation changed in the request (argoproxy/pipeline/adapt.py)
            answer.headers[ADAPTED_HEADER] = ", ".join(call.planned.adapted)
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
            route = next((replace(route, front=door.name) for door in self.fronts
                          if door.claims_client(req.headers, target.query)), route)
        call.client = structs.replace(call.client, path=route.path, front=route.front)
        call.plan.kind, call.plan.path, call.plan.query = route.kind, route.path, target.query
        self.web_pages.check(req, route.kind)
        self.auth.check(req, route)
        front = front_named(route.front) if route.front != "openai" else None  # the chat door: no lookup
        if call.plan.query:  # a client key never goes upstream (a door's key parameters, with auth off too)
            params = self.auth.key_params if self.auth.enabled else front.key_params if front else frozenset()
            call.plan.query = without_key_params(call.plan.query, params)
        self.allowed_here(call, route, front, req)
        self.carried(call, route, front)
        return self.families[route.family](call, route)

    def allowed_here(self, call: Call, route: Route, front: Front | None, req: Request) -> None:
        """404: no route; 405 (or the door's own error): a method it does not take; 415: a compressed body."""
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

    def carried(self, call: Call, route: Route, front: Front | None) -> None:
        """The route's part of the plan for its handler: the body's bytes where it sends or reads them, and the
        model a model route names (in its path, or a door's body)."""
        plan, method, family = call.plan, call.client.method, route.family
        if family == "forward" or (family == "backend" and method != "GET") or (
                family in ("models", "state") and (method == "POST" or (self.forwards and route.model is not None))):
            plan.raw_body = read_request_body(call.client.request, self.settings.max_body_bytes)
        if family == "models":
            plan.model = route.model
            if route.model is None and route.kind == "model" and front is not None and method == "POST":
                plan.model = front.model_named(parse_object(plan.raw_body, must_be_object=False))

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
        """An error in its door's shape (OpenAI's, the door's own, MCP's at /mcp) with the request id, no secret."""
        if err.status >= 500:
            log.warning("%s %s", err.status, err.message)
        status, rid, front = err.status, call.client.request_id, front_named(call.client.front)
        body = err.body()
        if front is not None:  # (a door whose shape is OpenAI's keeps the client's id beside its own)
            body = front.error_body(status, named(body["error"], rid, call.client.client_request_id), rid)
        else:
            named(body["error"], rid, call.client.client_request_id)  # so that a client's report leads to the log line
        if call.plan.kind == "mcp" and front is None:  # (imported here: a worker without MCP servers loads none of it)
            from argoproxy.mcp.jsonrpc import refusal
            body = refusal(status, body)
        raw = err.raw if call.plan.exchange is None else None  # relayed as it came
        data = self.answers.secrets.data(raw if raw is not None else dumps(body))
        if not call.outcome.observed:  # observed with what is sent: the DEBUG line said out=0B for an error's body
            call.outcome.status, call.outcome.output, call.outcome.bytes_out = status, body, len(data)
            call.outcome.refused = error_cause(status, err.code, err.cause)
            self.answers.observe(call)
        answer = Answer(data, 200 if self.settings.compatible else status, err.headers,  # a relayed body as it came
                        content_type=None if raw is not None and "Content-Type" in err.headers else "application/json")
        for name, value in (front.id_headers(rid).items() if front is not None else ()):
            answer.headers[name] = value
        return answer

    # ---------------------------------------------------------------- the API routes, to the sequence
    def api(self, call: Call, route: Route) -> Answer:
        if not self.routed and call.plan.kind not in self.backend.kinds:
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
        body: dict[str, Any]
        plan.raw_body, body, plan.members = read_api_body(call.client.request, self.settings.max_body_bytes)
        plan.body = body  # the request as admitted, which planning starts from
        named = args.model if args is not None and args.model is not None else body.get("model")
        plan.model = named if isinstance(named, str) else None
        return body

