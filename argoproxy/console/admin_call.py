"""One authorized call of `/admin/v1/` as its resource's module reads it (AdminCall), and the errors they share."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from argoproxy.console.paging import query_of
from argoproxy.console.roles import Scope, scope_of
from argoproxy.edge.request_body import parse_object, read_request_body
from argoproxy.errors import ProxyError
from argoproxy.teamkeys.audit import entry

if TYPE_CHECKING:
    from argoproxy.signin.principal import Principal
    from argoproxy.edge.http_objects import Request


@dataclass
class AdminCall:
    """One authorized call of the API: what its resource's module reads."""
    method: str
    rest: tuple[str, ...]  # the path's segments after the resource's name, decoded
    query: str
    request: Request
    principal: Principal
    store: Any  # the key store the proxy reads (teamkeys/store.py, redis_store.py)
    max_body: int
    default_team: str = ""  # OIDC_DEFAULT_TEAM: the team of a person whose groups name none
    tools: Any = None  # the MCP servers' state and today's tool calls (the status page's), for /admin/v1/mcp
    connections: Any = None  # people's connections to per-person MCP servers (mcp/connection_states.py), or None

    @cached_property
    def scope(self) -> Scope:
        """What the caller may see and change (roles.py)."""
        teams = self.store.teams() if self.principal.person is not None else []  # the admin key needs none
        return scope_of(self.principal, teams, self.default_team)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = parse_object(read_request_body(self.request, self.max_body))
        return body

    def params(self, *allowed: str) -> dict[str, str]:
        return query_of(self.query, frozenset(allowed))

    def who(self) -> str:
        """The audit log's "who": a person's email, else the admin key."""
        return getattr(self.principal.person, "email", "") or "admin key"

    def audit(self, action: str, target: str, changes: dict[str, Any]) -> None:
        """The change in the audit log: who, what (never a key), when, from where."""
        self.store.add_audit(entry(self.who(), action, target, changes, self.request.peer[0],
                                   self.request.headers.get("User-Agent", "")))


def not_allowed(label: str, allow: str) -> ProxyError:
    return ProxyError(405, f"{label} takes {allow} only.", code="method_not_allowed", headers={"Allow": allow})


def no_such(what: str, name: str) -> ProxyError:
    return ProxyError(404, f"No {what} named {name[:100]!r}.", code=f"{what.replace(' ', '_')}_not_found")
