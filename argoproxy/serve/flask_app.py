"""create_app: the Flask application for one Settings object (one per worker process)."""

from __future__ import annotations

from flask import Flask

from argoproxy.edge.client_input import ClientInput
from argoproxy.serve import gunicorn_errors
from argoproxy.edge.raw_target import Edge
from argoproxy.serve.proxy import build_proxy
from argoproxy.serve.direct_routes import DirectRoutes
from argoproxy.serve.mcp_mount import mount_mcp
from argoproxy.edge.request_ids import RequestIds
from argoproxy.serve.websocket_upgrade import Upgrades
from argoproxy.config.settings import Settings


def create_app(settings: Settings) -> Flask:
    """The WSGI application: Flask's app holds the worker's door (its extensions, its test client), and every
    request goes to the door without Flask's dispatch (direct_routes.py), through the edge's middleware."""
    door = build_proxy(settings)
    mount_mcp(door)  # /mcp, when MCP servers are configured (argoproxy/mcp/)
    gunicorn_errors.answer_for(door)  # Gunicorn's own errors in the shape of this door's routes
    app = Flask("cot_proxy")
    app.extensions["cot_proxy"] = door.gateway
    app.extensions["cot_proxy_door"] = door
    app.extensions["cot_proxy_metrics"] = door.metrics
    client_input = ClientInput(DirectRoutes(door), settings.client_timeout, fast_path=settings.fast_path == "on",
                               door_of=door.front_of)
    upgrades = Upgrades(client_input, door, settings)  # the Responses WebSocket (GET /v1/responses upgraded)
    # Flask's documented way to add WSGI middleware (its stubs declare wsgi_app a method)
    app.wsgi_app = RequestIds(Edge(upgrades))  # type: ignore[method-assign]
    return app
