"""The console's routes (the `console` family of edge/classify.py): `/admin/v1/...` (api.py) and the console page's
script, `/ui/console.js` (console.js, read once: the page at /ui loads it beside the status page's own views)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable

from argoproxy.console.api import AdminApi
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError

if TYPE_CHECKING:
    from argoproxy.edge.auth import Auth
    from argoproxy.edge.classify import Route
    from argoproxy.edge.http_objects import Request


class Console:
    def __init__(self, auth: Auth, store: Callable[[], Any], max_body: int, default_team: str = "",
                 tools: Callable[[], dict[str, Any]] | None = None, connections: Any = None) -> None:
        self.api = AdminApi(auth, store, max_body, default_team, tools, connections)

    def answer(self, route: Route, query: str, request: Request | None) -> Answer:
        if request is None:  # a call the proxy made itself: never the console's
            raise ProxyError(404, f"No route {route.label} here.", code="unknown_route")
        if route.kind == "ui_console":
            return Answer(script(), 200, {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
                          content_type="text/javascript; charset=utf-8")
        # The query as sent: the door takes `key` out of every query when auth is on (Google's ?key= spelling of a
        # client key), and here `key` is a key's name (?key= of /admin/v1/usage and /requests), never a secret.
        return self.api.answer(route, request.target.partition("?")[2] or query, request)


@cache
def script() -> bytes:
    return resources.files("argoproxy.console").joinpath("console.js").read_bytes()
