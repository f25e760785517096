"""`/admin/v1/`: the console's JSON API, which scripts may call too. The door hands it the route (the `console`
family, edge/classify.py); `AdminApi.answer` authorizes (authorize.py), checks a change (check_change), and hands
the request to its resource's module, one a resource: RESOURCES. Errors are the product's one shape,
`{"error": {"message", "type", "param", "code"}}`, each with its status (a 4xx: never a 5xx of our own)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import unquote

from argoproxy.console import audit_api, keys_api, mcp_api, me_api, people_api, requests_api, teams_api, usage_api
from argoproxy.console.admin_call import AdminCall
from argoproxy.console.authorize import authorize, check_change
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.redaction import mask_url

if TYPE_CHECKING:
    from argoproxy.edge.auth import Auth
    from argoproxy.edge.classify import Route
    from argoproxy.edge.http_objects import Request

log = logging.getLogger("cot_proxy")
PREFIX = ("admin", "v1")


Resource = Callable[[AdminCall], Answer]
# One module a resource; each asks the caller's scope (roles.py) what they may see and change.
RESOURCES: dict[str, Resource] = {"keys": keys_api.serve, "teams": teams_api.serve, "usage": usage_api.serve,
                                  "audit": audit_api.serve, "me": me_api.serve, "people": people_api.serve,
                                  "requests": requests_api.serve, "mcp": mcp_api.serve}


class AdminApi:
    def __init__(self, auth: Auth, store: Callable[[], Any], max_body: int, default_team: str = "",
                 tools: Callable[[], dict[str, Any]] | None = None, connections: Any = None) -> None:
        """`store`: the key store the proxy reads (None while auth is off); `default_team`: OIDC_DEFAULT_TEAM;
        `tools`: the MCP servers' state, as the status page shows it (None: no status page); `connections`:
        people's connections to the per-person MCP servers (mcp/connection_states.py; None: no such server)."""
        self.auth, self.store, self.max_body = auth, store, max_body
        self.default_team, self.tools, self.connections = default_team, tools, connections

    def answer(self, route: Route, query: str, request: Request) -> Answer:
        principal = authorize(request, self.auth)
        parts = tuple(unquote(p) for p in route.path.split("/")[len(PREFIX):] if p)
        resource = RESOURCES.get(parts[0].lower()) if parts else None  # a fixed name: any case, as routes
        if resource is None:
            raise ProxyError(404, f"No such resource {route.label}; /admin/v1/ serves "
                                  f"{', '.join(sorted(RESOURCES))}.", code="unknown_route")
        check_change(principal, request)
        store = self.store()
        if store is None:
            raise ProxyError(404, "The admin API needs ENABLE_AUTH on.", code="admin_api_off")
        try:
            answer = resource(AdminCall(request.method, parts[1:], query, request, principal, store, self.max_body,
                                        self.default_team, self.tools, self.connections))
        except ProxyError:
            raise
        except Exception as exc:  # noqa: BLE001 - the store failed (Redis away, a locked file): a 503, logged
            log.warning("admin API: the key store failed: %s", mask_url(f"{type(exc).__name__}: {exc}"))
            raise ProxyError(503, "The key store cannot answer now; try again.", code="key_store_unavailable") from None
        answer.headers["Cache-Control"] = "no-store"  # keys' names, limits and usage: no cache may keep them
        return answer
