"""Cross-origin requests to the proxy's OAuth routes (docs/mcp-auth.md): an MCP client running in a web page (the MCP
Inspector) discovers, registers and redeems its codes from its own site, as the authorization servers it is written
for allow. The protected resource metadata (RFC 9728), the authorization server's metadata (RFC 8414), its JWKS,
/oauth/register and /oauth/token answer a preflight and carry `Access-Control-Allow-Origin: *`, without credentials:
they take none from cookies, so a page gains nothing a client outside a browser has not (web_pages.py's Origin rule
guards what a browser's cookie or the upstream's credential would pay for). /oauth/authorize and its consent page are
navigations: they get none, and keep the Origin rule."""

from __future__ import annotations

from typing import Callable, Iterable

from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError

CORS_KINDS = frozenset({"oauth_resource", "oauth_server_metadata", "oauth_jwks", "oauth_register", "oauth_token"})
ALLOW_HEADERS = "Authorization, Content-Type, MCP-Protocol-Version"  # the MCP SDKs send the last on discovery
EXPOSE_HEADERS = "WWW-Authenticate"
MAX_AGE = "600"
OPEN = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSE_HEADERS}


def preflight(methods: Iterable[str]) -> Answer:
    """The answer to a browser's OPTIONS before its cross-origin request."""
    allowed = ", ".join(sorted(set(methods) - {"OPTIONS"}))
    return Answer(b"", 204, {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": allowed,
                             "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": MAX_AGE,
                             "Cache-Control": "no-store"})


def opened(method: str, methods: Iterable[str], answer: Callable[[], Answer]) -> Answer:
    """A CORS route's answer (`answer()`), readable by any site's page, its errors too; OPTIONS: the preflight's."""
    if method == "OPTIONS":
        return preflight(methods)
    try:
        done = answer()
    except ProxyError as err:
        err.headers.update(OPEN)
        raise
    for name, value in OPEN.items():
        done.headers[name] = value  # (one value a name: the route's own, if any, replaced)
    return done
