"""The blueprint: every route the proxy serves, as short views over the Gateway."""

from __future__ import annotations

from flask import Blueprint, Response, request

from argoproxy.auth import auth_guard
from argoproxy.errors import ProxyError
from argoproxy.fronts.serve import front_for_kind
from argoproxy.health import HealthCheck
from argoproxy.jsonfast import dumps
from argoproxy.pipeline import Gateway
from argoproxy.validation import model_allowed

ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
API_KINDS = {"chat/completions": "chat", "completions": "completions", "embeddings": "embeddings"}
# Each API route answers with and without the /v1 prefix (clients configured with either base URL).
API_PATHS = {path: kind for suffix, kind in API_KINDS.items() for path in (f"v1/{suffix}", suffix)}
FRONT_KINDS = {"responses": "responses", "messages": "messages", "messages/count_tokens": "count_tokens"}
FRONT_PATHS = {path: kind for suffix, kind in FRONT_KINDS.items() for path in (f"v1/{suffix}", suffix)}


def json_response(obj: object, status: int = 200) -> Response:
    return Response(dumps(obj), status, content_type="application/json")


def build_blueprint(gateway: Gateway, health: HealthCheck) -> Blueprint:
    bp = Blueprint("proxy", __name__)
    backend = gateway.backend
    settings = gateway.settings

    def rejected() -> None:  # a 401 is answered and counted like any other request (metrics, logs)
        rule = request.url_rule
        kind = (rule.defaults or {}).get("kind") if rule is not None else None
        call = gateway.new_call(kind or "other", request.path.lstrip("/"))
        served = front_for_kind(kind or "")
        if served is not None:
            call.front = served[0].name

    guard = auth_guard(settings, on_reject=rejected)  # runs before every view
    if guard is not None:
        bp.before_app_request(guard)

    @bp.route("/health", methods=["GET"])
    def health_view() -> Response:
        if gateway.routing is not None:
            return json_response(*reversed(gateway.routing.health()))
        try:
            own = backend.health()
        except ProxyError as err:
            return json_response({"status": "unhealthy", "error": err.message}, 503)
        if own is not None:
            return json_response(own)
        status, body = health.status()
        return json_response(body, status)

    def models_view(path: str) -> Response:
        call = gateway.new_call("models", path)
        if gateway.routing is not None:
            listing = {"object": "list", "data": gateway.routing.model_list()}
        else:
            listing = backend.list_models(call)
        data = listing.get("data", [])
        known = {m.get("id") for m in data if isinstance(m, dict)}
        for name in settings.llm_params.pseudo_models:
            if name not in known:
                data.append({"id": name, "object": "model", "created": 0, "owned_by": "cot_proxy"})
        if settings.allowed_models:
            listing["data"] = [m for m in data if isinstance(m, dict) and model_allowed(settings.allowed_models, m.get("id"))]
        return json_response(listing)

    bp.add_url_rule("/v1/models", "models", models_view, methods=["GET"], defaults={"path": "v1/models"})
    bp.add_url_rule("/models", "models_bare", models_view, methods=["GET"], defaults={"path": "models"})

    def api_view(path: str, kind: str) -> Response:
        if gateway.routing is None and kind not in backend.kinds:
            raise ProxyError(404, f"The {backend.name} backend does not serve /{path}.", code="unknown_route")
        return gateway.api(gateway.new_call(kind, path))

    for path, kind in API_PATHS.items():
        bp.add_url_rule(f"/{path}", f"api_{path}", api_view, methods=["POST"], defaults={"path": path, "kind": kind})

    def front_view(path: str, kind: str) -> Response:
        front, count_only = front_for_kind(kind)
        call = gateway.new_call(kind, path)
        call.front = front.name
        return gateway.fronts.api(call, front, count_only)

    for path, kind in FRONT_PATHS.items():
        bp.add_url_rule(f"/{path}", f"front_{path}", front_view, methods=["POST"], defaults={"path": path, "kind": kind})

    for rule, methods, view in backend.extra_routes():
        bp.add_url_rule(rule, view.__name__, view, methods=methods)

    def forward_view(path: str = "") -> Response:
        if path in ("health", "metrics"):
            raise ProxyError(405, f"/{path} takes GET only.", code="method_not_allowed", headers={"Allow": "GET"})
        if path.rstrip("/") in API_PATHS or path.rstrip("/") in FRONT_PATHS:
            raise ProxyError(405, f"/{path} takes POST only.", code="method_not_allowed", headers={"Allow": "POST"})
        if not backend.forwards_unknown or gateway.routing is not None:  # routed: no upstream is "the" upstream
            raise ProxyError(404, f"No route /{path} on this proxy ({backend.name} backend).", code="unknown_route")
        call = gateway.new_call("passthrough", path)
        return gateway.passthrough(call, backend.url(path, call.query), backend.upstream_headers(call))

    bp.add_url_rule("/", "forward_root", forward_view, methods=ALL_METHODS)
    bp.add_url_rule("/<path:path>", "forward", forward_view, methods=ALL_METHODS)
    return bp

