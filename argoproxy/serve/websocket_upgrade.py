"""The upgrade hook: WSGI middleware that takes `GET /v1/responses` with `Upgrade: websocket` (the Responses API's
WebSocket mode, argoproxy/fronts/responses/websocket/) off the HTTP path and holds the connection; every other
request goes on to the app as before (one dictionary look-up).

The upgrade is checked as the door checks a request (the canonical path, its route, a web page's Origin and Host,
the key: a refusal is the door's answer in its shape), then answered 101 through the server's own start_response and write (Gunicorn writes
the head), and the client's socket is the connection's until it ends; then it is shut, and Gunicorn, reading
the end of it, closes it. Where the worker cannot hold a socket the upgrade is answered 426 at once, before any
key is asked for: the sync worker class (one request at a time), a server that hands no socket, a worker holding
half its open-file limit in connections already (the rest stays for HTTP requests and their upstreams), a gthread
worker holding WEBSOCKET_THREADS (each holds one of its threads; never all of them). Once the key is checked, a
key holding WEBSOCKET_CONNECTIONS_PER_KEY connections, or the instance WEBSOCKET_CONNECTIONS, is answered 426
too (fronts/responses/websocket/places.py counts them across the workers), so that clients use HTTP, where the
key's limits hold.
"""

from __future__ import annotations

import logging
import resource
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable

from msgspec import structs

from argoproxy.edge.http_objects import Answer, Request
from argoproxy.edge.paths import PathError, canonical
from argoproxy.errors import ProxyError
from argoproxy.fastpath.server_reach import client_socket
from argoproxy.fronts.responses.websocket.places import Places
from argoproxy.fronts.responses.websocket.session import Session
from argoproxy.edge.raw_target import RAW_TARGET_KEY
from argoproxy.pipeline.call import Call
from argoproxy.serve.door import Door
from argoproxy.serve.flask_view import to_flask

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.edge.classify import Route

log = logging.getLogger("cot_proxy")

KIND = "responses"  # the Responses door's create route (POST /v1/responses, /responses)

# Whether this worker is leaving (a graceful stop, a restart after MAX_REQUESTS): set in the worker by Gunicorn's
# post_worker_init (serve/gunicorn_app.py: watch_worker); never, outside Gunicorn.
_worker_leaving: Callable[[], bool] = lambda: False


def watch_worker(worker: Any) -> None:
    """Called in each Gunicorn worker as it starts: its connections close with 1001 once it stops being alive."""
    global _worker_leaving
    _worker_leaving = lambda: not worker.alive


class Holds:
    """The WebSocket connections one worker holds: at most `limit`, `why` naming the bound."""

    def __init__(self, limit: int, why: str) -> None:
        self.limit, self.why, self.held = limit, why, 0
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.held >= self.limit:
                return False
            self.held += 1
            return True

    def give_back(self) -> None:
        with self.lock:
            self.held -= 1


class Upgrades:
    """WSGI middleware: the Responses WebSocket upgrade, held here; every other request to `app`."""

    def __init__(self, app: Callable[..., Iterable[bytes]], door: Door, settings: Settings) -> None:
        self.app, self.door = app, door
        # The connection's modules (wsproto: a tenth of a second of CPU) are imported by the first upgrade, not
        # by every worker as it starts
        self.lifetime, self.idle = settings.websocket_lifetime, settings.websocket_idle
        self.max_message, self.send_timeout = settings.max_body_bytes, settings.client_timeout
        self.worker_class = settings.worker_class
        self.holds = worker_holds(settings)
        self.places = None if settings.worker_class == "sync" else Places(settings.websocket_connections,
                                                                          settings.websocket_connections_per_key)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        upgrade = environ.get("HTTP_UPGRADE")
        if upgrade is None or upgrade.lower() != "websocket" or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        req = Request.from_environ(environ, environ.get(RAW_TARGET_KEY, ""))
        try:
            route = self.door.table.classify(canonical(req.target))
        except PathError:
            return self.app(environ, start_response)
        if route.kind != KIND:
            return self.app(environ, start_response)  # the door answers it, as any GET
        return self.upgraded(environ, start_response, req, route)

    def upgraded(self, environ: dict[str, Any], start_response: Callable[..., Any], req: Request,
                 route: Route) -> Iterable[bytes]:
        sock = client_socket(environ)
        why = self.unheld(sock)
        if why is not None:
            return to_flask(self.error(req, route, upgrade_required(why)))(environ, start_response)
        try:
            return self.held(environ, start_response, req, route, sock)
        finally:
            if self.holds is not None:
                self.holds.give_back()

    def unheld(self, sock: Any) -> str | None:
        """Why this worker cannot hold the connection (None: it takes it, a gthread worker counting it)."""
        if sock is None:
            return "this server hands the proxy no socket to hold"
        if self.worker_class == "sync":
            return "this proxy's worker class (sync) serves one request at a time"
        if self.holds is not None and not self.holds.take():
            return f"this worker holds its most WebSocket connections ({self.holds.limit}: {self.holds.why})"
        return None

    def held(self, environ: dict[str, Any], start_response: Callable[..., Any], req: Request, route: Route,
             sock: Any) -> Iterable[bytes]:
        # As the client sent them (auth takes the key out of the request it checks), with its Host: each
        # response's request is checked as the upgrade is (web pages by their Origin and Host, the key).
        from argoproxy.fronts.responses.websocket.connection import ConnectionLimits, serve
        from argoproxy.fronts.responses.websocket.frames import BadHandshake, Frames, accept
        headers = {**req.headers, "Host": req.host} if req.host else dict(req.headers)
        checked = self.copy(headers)
        try:
            self.door.web_pages.check(req)
            self.door.auth.check(checked, route)
            ws, head = accept([(k.encode("latin-1"), v.encode("latin-1")) for k, v in handshake(environ)],
                              req.target.encode("latin-1"))
        except ProxyError as err:
            return to_flask(self.error(req, route, err))(environ, start_response)
        except BadHandshake as err:
            return to_flask(self.error(req, route, ProxyError(
                400, f"Not a WebSocket handshake: {err}.", code="bad_websocket_handshake")))(environ, start_response)
        assert self.places is not None  # (the sync worker was answered in unheld)
        place = self.places.take_for(checked, self.door.auth.enabled)
        if isinstance(place, str):
            return to_flask(self.error(req, route, upgrade_required(place)))(environ, start_response)
        try:
            start_response("101 Switching Protocols", head)(b"")  # Gunicorn writes the head
            session = Session(self.door.handle, headers, lambda: self.door.auth.check(self.copy(headers), route),
                              path=route.label)
            code = serve(Frames(ws, sock, self.max_message, self.send_timeout), session,
                         ConnectionLimits(self.lifetime, self.idle), lambda: _worker_leaving())
        finally:  # however it ended: the client gone, a failure, the worker stopping
            self.places.give_back(place)
        log.debug("id=%s Responses WebSocket closed: %d after %d responses", req.request_id, code,
                  session.responses)  # (each response has its own line)
        return []

    def error(self, req: Request, route: Route, err: ProxyError) -> Answer:
        call = Call.of_request(req, route.kind, route.path)
        call.client = structs.replace(call.client, path=route.path, front=route.front)
        return self.door.error_answer(call, err)

    @staticmethod
    def copy(headers: dict[str, str]) -> Request:
        return Request.of("GET", "/v1/responses", headers=dict(headers))



def worker_holds(settings: Settings) -> Holds | None:
    """What one worker may hold: half its open-file limit (the rest for HTTP requests and their upstreams), and a
    gthread worker WEBSOCKET_THREADS, never every thread (HTTP requests keep at least one); None under sync."""
    if settings.worker_class == "sync":
        return None
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    bounds = [] if files == resource.RLIM_INFINITY else [(files // 2, "half its open-file limit, ulimit -n")]
    if settings.worker_class == "gthread":
        bounds.append((min(settings.websocket_threads, settings.threads - 1), "WEBSOCKET_THREADS"))
    return Holds(*min(bounds)) if bounds else None


def handshake(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The request's headers as the handshake reads them (from the WSGI environ)."""
    return [(key[5:].replace("_", "-").lower(), str(value)) for key, value in environ.items()
            if key.startswith("HTTP_")]


def upgrade_required(why: str) -> ProxyError:
    return ProxyError(426, f"The Responses API's WebSocket mode is not served here: {why}. Send POST /v1/responses "
                           "over HTTP (stream: true gives the same events).", code="websocket_not_served")
