"""What the console shows of a person's connections to the per-person MCP servers (docs/console.md), and their end:
each `auth: per_user` server with whether the person is connected, since when and until when their access token
holds (read from the sealed row: never a token, never a scope), and each `auth: token_exchange` server marked as such
(nothing to connect: their sign-in token is exchanged at each call). The console reaches this through the callable
serve/ hands it (console/ imports no MCP module)."""

from __future__ import annotations

from typing import Any

from argoproxy.config.mcp_servers import McpServers
from argoproxy.mcp.connections import Connections


class ConnectionStates:
    def __init__(self, servers: McpServers, connections: Connections) -> None:
        self.servers = [s for s in servers if s.per_person]
        self.connections = connections

    def of(self, person: str) -> list[dict[str, Any]]:
        """Every per-person server, as this person stands with it."""
        return [self.state(person, s.name) if s.auth == "per_user" else
                {"server": s.name, "auth": s.auth, "connected": None, "since": None, "expires": None, "renews": None}
                for s in self.servers]

    def held(self, person: str) -> list[dict[str, Any]]:
        """The connections the person holds (a server since taken out of config too): what an admin revokes."""
        return [self.state(person, name) for name in self.connections.connected(person)]

    def state(self, person: str, name: str) -> dict[str, Any]:
        tokens = self.connections.tokens(person, name)
        return {"server": name, "auth": "per_user", "connected": tokens is not None,
                "since": (tokens.connected_at or None) if tokens else None,
                "expires": (tokens.expires_at or None) if tokens else None,
                "renews": bool(tokens.refresh_token) if tokens else None}

    def forget(self, person: str, server: str | None = None) -> int:
        """The person's connection to `server` (None: every one) ended (revoked, its sessions ended); how many there
        were."""
        return self.connections.end(person, server)


def connection_states(settings: Any) -> ConnectionStates:
    """The console's view over the worker's own store of connections, sealed under CREDENTIALS_KEY_FILE."""
    from argoproxy.mcp.person_tokens import person_tokens
    return ConnectionStates(settings.mcp_servers, person_tokens(settings).connections)
