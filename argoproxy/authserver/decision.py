"""Who issues /mcp's access tokens (MCP_OAUTH_SERVER): `issuer`, OIDC_ISSUER; `proxy`, the proxy; `auto`, the proxy
when OIDC_ISSUER's discovery offers MCP clients no client id of their own (neither dynamic client registration nor
Client ID Metadata Documents), read once the first time it is asked (start-up asks it, and says it)."""

from __future__ import annotations

import threading
from typing import Any, NoReturn

from argoproxy.errors import ProxyError
from argoproxy.signin.resource import offered_ways


class Decision:
    def __init__(self, mode: str, provider: Any) -> None:
        self.mode, self.provider = mode, provider
        self._decided: bool | None = None if mode == "auto" else mode == "proxy"
        self._lock = threading.Lock()

    def serves(self) -> bool:
        """Is the proxy the authorization server? (auto: a 502 while the issuer's discovery cannot be read)"""
        if self._decided is None:
            offered = bool(offered_ways(self.provider.document()))
            with self._lock:
                self._decided = not offered
        return self._decided


def server_off(kind: str, query: str, req: Any) -> NoReturn:
    """A route of the authorization server while the proxy is none: 404."""
    raise ProxyError(404, "The proxy is not the authorization server for MCP clients here (MCP_OAUTH_SERVER, "
                          "docs/mcp-auth.md).", code="unknown_route")
