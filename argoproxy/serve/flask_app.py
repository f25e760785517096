"""create_app: the Flask application for one Settings object (one per worker process)."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import WebsocketMismatch

from argoproxy.edge.client_input import ClientInput
from argoproxy.serve import gunicorn_errors
from argoproxy.edge.raw_target import Edge
from argoproxy.serve.door import Door
from argoproxy.errors import error_body, error_type
from argoproxy.serve.proxy import build_proxy
from argoproxy.serve.direct_routes import DirectRoutes
from argoproxy.serve.mcp_mount import MCP_SEGMENT, mount_mcp
from argoproxy.edge.request_ids import ENVIRON_KEY, RequestIds
from argoproxy.serve.flask_view import build_blueprint, error_answer, internal_error, through, to_flask
from argoproxy.serve.websocket_upgrade import Upgrades
from argoproxy.config.settings import Settings

log = logging.getLogger("cot_proxy")


def create_app(settings: Settings) -> Flask:
    door = build_proxy(settings)
    mcp = mount_mcp(door)  # /mcp, when MCP servers are configured (argoproxy/mcp/)
    gunicorn_errors.answer_for(door)  # Gunicorn's own errors in the shape of this door's routes
    app = Flask("cot_proxy")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["cot_proxy"] = door.gateway
    app.extensions["cot_proxy_door"] = door
    app.extensions["cot_proxy_metrics"] = door.metrics
    app.register_blueprint(build_blueprint(door))
    register_error_handlers(app, door)
    # Flask's documented way to add WSGI middleware (its stubs declare wsgi_app a method). /mcp is answered
    # without Flask's dispatch (direct_routes.py): its tool calls are round trips an agent waits on.
    served = DirectRoutes(app.wsgi_app, door, (MCP_SEGMENT,)) if mcp is not None else app.wsgi_app
    client_input = ClientInput(served, settings.client_timeout, fast_path=settings.fast_path == "on",
                               door_of=door.front_of)
    upgrades = Upgrades(client_input, door, settings)  # the Responses WebSocket (GET /v1/responses upgraded)
    app.wsgi_app = RequestIds(Edge(upgrades))  # type: ignore[method-assign]
    return app


def current_request_id() -> str:
    """The id of the request Flask is handling (RequestIds put it in the environ)."""
    return request.environ.get(ENVIRON_KEY, "")


def register_error_handlers(app: Flask, door: Door) -> None:
    """Errors Flask makes itself, in OpenAI's shape too; the door answers every other error (argoproxy/serve/door.py).
    A method Flask's URL map does not list (PROPFIND...), and a request asking to upgrade to a WebSocket (which the
    map refuses for a rule not declared one), are sent through the door, which answers and counts them like any
    request: the same answer as on /mcp, which Flask does not dispatch (direct_routes.py)."""

    def reply(status: int, body: dict, headers: dict | None = None) -> Response:
        return to_flask(error_answer(door, request.environ, status, body, headers))

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        if err.code == 405 or isinstance(err, WebsocketMismatch):  # the door decides (it ignores Upgrade)
            return through(door)
        status = err.code or 500
        messages = {404: "Unknown route.", 405: "Method not allowed on this route."}
        allowed = getattr(err, "valid_methods", None)  # MethodNotAllowed's own
        headers = {"Allow": ", ".join(allowed)} if allowed else None
        code = {404: "unknown_route", 405: "method_not_allowed"}.get(status)
        return reply(status, error_body(messages.get(status, err.description or err.name), error_type(status), None, code),
                     headers)

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Response:
        log.exception("unexpected error in request %s", current_request_id() or "-")
        return to_flask(internal_error(door, request.environ))
