"""The request target as the client sent it, kept for the door (serve/door.py canonicalises it): `Edge`, the WSGI
middleware that keeps it in the environ under RAW_TARGET_KEY and leaves PATH_INFO '/', so that nothing past it
reads a path the door did not canonicalise (serve/direct_routes.py hands every request to the door)."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from argoproxy.edge.paths import raw_target

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

RAW_TARGET_KEY = "cot_proxy.raw_target"  # environ: the request target as the client sent it (set by Edge)


class Edge:
    """WSGI middleware: the raw target kept, PATH_INFO made '/'."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[RAW_TARGET_KEY] = raw_target(environ)
        environ["PATH_INFO"] = "/"
        return self.app(environ, start_response)
