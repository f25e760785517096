"""The MCP gateway as an OAuth 2.1 protected resource (docs/mcp-auth.md): its metadata (RFC 9728) at
/.well-known/oauth-protected-resource, .../mcp and .../mcp/<server>, the challenge a call without credentials
gets (MCP's authorization specification, 2025-11-25), and what the issuer offers MCP clients, said at start."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Mapping

from argoproxy.edge.http_objects import Answer
from argoproxy.edge.paths import canonical
from argoproxy.errors import ProxyError

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Request
    from argoproxy.signin.provider import OpenIdProvider

log = logging.getLogger("cot_proxy")
METADATA_PATH = "/.well-known/oauth-protected-resource"


class ProtectedResource:
    """/mcp and each /mcp/<server> at PUBLIC_URL, whose tokens OIDC_ISSUER issues with MCP_OAUTH_SCOPES."""

    def __init__(self, public_url: str, issuer: str, scopes: tuple[str, ...], servers: tuple[str, ...]) -> None:
        self.public_url, self.issuer, self.scopes, self.servers = public_url, issuer, scopes, frozenset(servers)
        self.proxy_issues: Callable[[], bool] = lambda: False  # the proxy the authorization server (authserver/)

    def resources(self) -> frozenset[str]:
        """Every resource here: /mcp and each server's."""
        return frozenset({self.resource("mcp"), *(self.resource(f"mcp/{name}") for name in self.servers)})

    def resource(self, path: str) -> str:
        """The resource a route path names: `mcp` or `mcp/<server>` at PUBLIC_URL."""
        return f"{self.public_url}/{path}"

    def challenge(self, path: str, error: str = "") -> str:
        """WWW-Authenticate for a call at `path` that has no token, a bad one (`invalid_token`) or too few scopes."""
        said = f', error="{error}"' if error else ""
        return (f'Bearer resource_metadata="{self.public_url}{METADATA_PATH}/{path}"{said}, '
                f'scope="{" ".join(self.scopes)}"')

    def served(self, path: str) -> None:
        """A 404 for `mcp/<server>` naming no server of mcp_servers: before its challenge (whose metadata would not
        be there) and before any token is checked for it."""
        server = path.partition("/")[2]
        if server and server not in self.servers:
            raise ProxyError(404, f"No MCP server is named {server[:64]!r}.", code="unknown_route")

    def metadata(self, path: str) -> dict[str, Any]:
        authority = self.public_url if self.proxy_issues() else self.issuer
        return {"resource": self.resource(path), "authorization_servers": [authority],
                "scopes_supported": list(self.scopes), "bearer_methods_supported": ["header"],
                "resource_name": "cot_proxy MCP gateway" + (f": {path[4:]}" if path != "mcp" else "")}

    def answer(self, kind: str, query: str, req: Request | None) -> Answer:
        """The own route oauth_resource (edge/classify.py): /mcp's metadata at the bare path too (a client that
        strips the path asks there); a server's only when it is one of mcp_servers."""
        parts = canonical(req.target).parts[2:] if req is not None else ()
        path = "/".join(("mcp", *parts[1:2]))
        self.served(path)
        return Answer.json(self.metadata(path))


def resource_off(kind: str, query: str, req: Any) -> Any:
    raise ProxyError(404, "/mcp is no OAuth protected resource here: OIDC_ISSUER and PUBLIC_URL are not both set "
                          "(docs/mcp-auth.md).", code="unknown_route")


def offered_ways(document: Mapping[str, Any]) -> list[str]:
    """How the issuer's discovery says MCP clients get a client id there without an admin."""
    return [name for name, offered in (("dynamic client registration", document.get("registration_endpoint")),
                                       ("Client ID Metadata Documents",
                                        document.get("client_id_metadata_document_supported") is True)) if offered]


def describe_issuer(provider: OpenIdProvider, mode: str = "issuer", audience: str = "<PUBLIC_URL>/mcp") -> str:
    """One line: what the issuer offers MCP clients (a client id without pre-registration), from its discovery, and
    who issues /mcp's tokens then (MCP_OAUTH_SERVER); `audience`: what the issuer's tokens must name (the one value
    its operator sets up there)."""
    if mode == "proxy":
        return (f"MCP OAuth: the proxy is the authorization server for MCP clients (MCP_OAUTH_SERVER=proxy); people "
                f"sign in at {provider.issuer}")
    try:
        document = provider.document()
    except ProxyError as exc:
        return f"MCP OAuth: {exc.message} (MCP clients cannot sign in until it answers)"
    ways = offered_ways(document)
    if not ways and mode == "auto":
        return (f"MCP OAuth: {provider.issuer} offers neither dynamic client registration nor Client ID Metadata "
                f"Documents: the proxy is the authorization server for MCP clients (MCP_OAUTH_SERVER=auto); people "
                f"sign in at {provider.issuer}")
    if not ways:
        return (f"MCP OAuth: {provider.issuer} offers neither dynamic client registration nor Client ID Metadata "
                f"Documents: MCP clients need a client registered there by hand (docs/mcp-auth.md)")
    return (f"MCP OAuth: MCP clients sign in at {provider.issuer} ({' and '.join(ways)}); its tokens for /mcp must "
            f"carry the audience {audience} (RFC 8707 resource indicators)")
