"""create_app: the Flask application for one Settings object (one per worker process)."""

from __future__ import annotations

import logging

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException

from argoproxy.client_input import ClientInput
from argoproxy.door import Door, Edge
from argoproxy.errors import ProxyError, error_body, error_type
from argoproxy.fronts import front_named
from argoproxy.health import HealthCheck
from argoproxy.journal import Journal, journal_observer, setup_log_file
from argoproxy.jsonfast import dumps
from argoproxy.logs import configure_logging, request_logger
from argoproxy.metrics import install_metrics
from argoproxy.pipeline import Gateway
from argoproxy.providers import create_backend
from argoproxy.redaction import Secrets, configured_secrets
from argoproxy.request_ids import RequestIds, current_request_id
from argoproxy.routes import build_blueprint
from argoproxy.routing.dispatch import install_routing
from argoproxy.settings import Settings
from argoproxy.upstream import Upstream

log = logging.getLogger("cot_proxy")


def create_app(settings: Settings) -> Flask:
    configure_logging(settings.debug, Secrets.from_settings(settings))
    fast = settings.fast_path == "on"
    if fast:
        from argoproxy import fastpath
        fastpath.install()  # done in the Gunicorn master already; again here for the app built in-process
    upstream = Upstream(settings.connect_timeout, settings.timeout, settings.max_retries,
                        pool_size=max(64, settings.worker_connections),
                        max_response_bytes=settings.max_response_bytes, fast_path=fast)
    backend = create_backend(settings, upstream)
    gateway = Gateway(settings, backend, upstream)
    if settings.debug:
        gateway.observers.append(request_logger())
    if settings.log_dir:
        secrets = configured_secrets(settings)
        journal = Journal(settings.log_dir, secrets=secrets)
        setup_log_file(settings.log_dir, logger=logging.getLogger("cot_proxy"), secrets=secrets)
        gateway.observers.append(journal_observer(journal))
        gateway.capture_upstream = True
        gateway.collect_output = True
    health = HealthCheck(upstream.session, settings.target_base_url, settings.health_cache_seconds)
    install_routing(gateway)

    app = Flask("cot_proxy")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.url_map.merge_slashes = False  # the door sees canonical paths only (argoproxy/paths.py)
    app.extensions["cot_proxy"] = gateway
    metrics = install_metrics(app, gateway)
    door = Door(gateway, health, metrics.view)
    app.extensions["cot_proxy_door"] = door
    app.register_blueprint(build_blueprint(door))
    register_error_handlers(app, gateway)
    app.wsgi_app = RequestIds(Edge(ClientInput(app.wsgi_app, settings.client_timeout)))
    return app


def register_error_handlers(app: Flask, gateway: Gateway) -> None:
    """Every error the proxy returns has OpenAI's shape; compatible mode sends them all with HTTP 200."""
    compatible = gateway.settings.compatible

    def reply(status: int, body: dict, headers: dict | None = None) -> Response:
        call = g.get("call")
        front = front_named(call.front) if call is not None else None
        if front is not None and isinstance(body.get("error"), dict):  # each front door has its error shape
            body = front.error_body(status, body["error"], current_request_id())
        elif isinstance(body.get("error"), dict):  # so that a client's report leads to the log line
            body["error"]["request_id"] = current_request_id()
        if call is not None and not call.observed:
            call.status, call.output = status, body
            gateway.observe(call)
        response = Response(gateway.secrets.data(dumps(body)), 200 if compatible else status, content_type="application/json")
        for name, value in (headers or {}).items():
            response.headers[name] = value
        if front is not None and front.name == "messages":
            response.headers["request-id"] = current_request_id()
        return response

    @app.errorhandler(ProxyError)
    def proxy_error(err: ProxyError) -> Response:
        if err.status >= 500:
            log.warning("%s %s", err.status, err.message)
        call = g.get("call")
        if err.raw is not None and (call is None or call.exchange is None):  # translated fronts get their shape
            response = reply(err.status, err.body(), err.headers)
            response.set_data(gateway.secrets.data(err.raw))  # relayed as it was, but never with a secret
            return response
        return reply(err.status, err.body(), err.headers)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        status = err.code or 500
        messages = {
            404: "Unknown route.",
            405: "Method not allowed on this route.",
            413: f"The request body is larger than the proxy accepts ({app.config['MAX_CONTENT_LENGTH']} bytes).",
        }
        headers = {"Allow": ", ".join(err.valid_methods)} if getattr(err, "valid_methods", None) else None
        code = {404: "unknown_route", 405: "method_not_allowed", 413: "request_too_large"}.get(status)
        return reply(status, error_body(messages.get(status, err.description or err.name), error_type(status), None, code),
                     headers)

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Response:
        log.exception("unexpected error in request %s", current_request_id() or "-")
        return reply(500, error_body("The proxy failed to handle this request; see its log.", "server_error",
                                     None, "internal_error"))
