"""What a request is: one Route per request, decided once on the canonical path (argoproxy/edge/paths.py).

Every request gets exactly one route, and with it a kind (the label metrics, journals and logs use) and a
family (which handler serves it):

  api       the OpenAI API routes the proxy understands (chat/completions, completions, embeddings), with
            and without the /v1 prefix
  front     the API doors' routes (argoproxy/fronts/: each door registers its own), translated to the internal
            request
  models    /v1/models and /v1/models/{id} (filtered by the allow-list); a door's own model routes
  backend   routes a backend serves itself (ARGO's /v1/chat, /v1/embed, /v1/status)
  own       the proxy's own /, /health, /metrics, /ui, sign-in's /ui/auth/... and /ui/logout, the MCP gateway's
            /.well-known/oauth-protected-resource[/mcp[/<server>]], the authorization server's
            /.well-known/oauth-authorization-server and /oauth/..., and the launcher's listener proof; a door's
            answers that ask nothing of an upstream
  console   the admin API /admin/v1/... and the console page's script /ui/console.js (argoproxy/console/: it
            authorizes its callers itself)
  forward   any other path, sent upstream unchanged, when the backend forwards and FORWARD_PATHS allows it
  unknown   nothing serves it (404)

Fixed route names match whatever their case (`/V1/Chat/Completions` is the chat route) and the request is
then handled and forwarded under the table's own spelling; the rest of a path (a model or file id) keeps
its case. So what the proxy classifies is exactly what the upstream receives.

The API doors are given to the table (`standard_table(..., doors)`): their fixed routes, the paths they alone
claim (a door's `route(parts)`, asked before the model routes and forwarding), and the forwarded paths that
answer in a door's error shape. This module names no door (tests/unit/test_door_names.py).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from argoproxy.edge.paths import Target, encode_path
from argoproxy.edge.listener_proof import PROOF_PATH

SIGNIN_ROUTES = (("ui/auth/login", "signin_login", {"GET"}), ("ui/auth/callback", "signin_callback", {"GET"}),
                 ("ui/auth/me", "signin_me", {"GET"}), ("ui/logout", "signin_logout", {"POST"}))
# The proxy as MCP clients' authorization server (argoproxy/authserver/; 404 while it is not one)
# (OPTIONS: a web page's preflight, where a route answers other sites' pages: edge/cors.py)
AUTHSERVER_ROUTES = (("oauth/authorize", "oauth_authorize", {"GET", "POST"}),
                     ("oauth/token", "oauth_token", {"POST", "OPTIONS"}),
                     ("oauth/register", "oauth_register", {"POST", "OPTIONS"}),
                     ("oauth/jwks", "oauth_jwks", {"GET", "HEAD", "OPTIONS"}))
AUTHSERVER_KINDS = ("oauth_server_metadata", *(kind for _, kind, _ in AUTHSERVER_ROUTES))
ALL_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"})
API_KINDS = {"chat/completions": "chat", "completions": "completions", "embeddings": "embeddings"}


@dataclass(frozen=True)
class Route:
    kind: str
    family: str
    path: str  # canonical, without the leading '/': what journals show and the upstream receives
    methods: frozenset[str] = ALL_METHODS
    model: str | None = None  # /v1/models/{id}: the decoded id
    front: str = "openai"  # the API the client speaks (its error shape): openai, or a door's name (fronts/)

    @property
    def label(self) -> str:
        return "/" + self.path


@dataclass
class RouteTable:
    """The fixed routes (by lower-cased segments) and the rule for everything else."""

    forwards: bool = False  # the backend sends unknown paths upstream
    forward_paths: tuple[str, ...] = ("*",)
    # The fixed routes by their lower-cased segments, each Route made once (immutable: every request shares it).
    fixed: dict[tuple[str, ...], Route] = field(default_factory=dict)
    # The doors' claims on paths beyond the fixed routes (asked in order), and forwarded paths' error shapes.
    claims: list[Callable[[tuple[str, ...]], Route | None]] = field(default_factory=list)
    forwarded_fronts: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    def add(self, path: str, kind: str, family: str, methods: Iterable[str], front: str = "openai",
            bare: bool = False) -> None:
        """Register a fixed route; bare=True also serves it without the leading v1/ (base URLs without /v1)."""
        spelling = tuple(p for p in path.strip("/").split("/") if p)  # "" is the root: ()
        spellings = [spelling] + ([spelling[1:]] if bare and spelling[0] == "v1" else [])
        for s in spellings:
            self.fixed[tuple(p.lower() for p in s)] = Route(kind, family, encode_path(s), frozenset(methods),
                                                           front=front)

    def classify(self, target: Target) -> Route:
        parts = target.parts
        key = tuple(map(str.lower, parts))
        fixed = self.fixed.get(key)
        if fixed is not None:
            return fixed
        for claim in self.claims:
            claimed = claim(parts)
            if claimed is not None:
                return claimed
        model_at = model_id_at(key)
        if model_at:
            model = "/".join(parts[model_at:])  # ids such as meta-llama/Llama-3 hold a '/'
            spelling = ("v1", "models") if model_at == 2 else ("models",)
            return Route("model", "models", encode_path(spelling + parts[model_at:]),
                         frozenset({"GET", "HEAD", "DELETE"}), model=model)
        if self.forwards and forward_allowed(self.forward_paths, target.path):
            return Route("passthrough", "forward", target.path, front=self.forwarded_front(key))
        return Route("unknown", "unknown", target.path)

    def forwarded_front(self, key: tuple[str, ...]) -> str:
        """The door whose error shape a forwarded path answers in (a door's batch routes, forwarded), else
        OpenAI's."""
        for prefix, front in self.forwarded_fronts:
            if key[:len(prefix)] == prefix:
                return front
        return "openai"

    def add_door(self, door: "DoorRoutes") -> None:
        """A door's routes, its claims and its forwarded paths."""
        for r in door.routes:
            self.add(r.path, r.kind, r.family, r.methods, front=door.name, bare=r.bare)
        self.claims.append(door.route)
        self.forwarded_fronts.extend((prefix, door.name) for prefix in door.forwarded_prefixes)


class DoorRoutes(Protocol):
    """What the table reads of an API door (argoproxy/fronts/front.py: Front)."""
    name: str
    routes: tuple[Any, ...]  # DoorRoute: path, kind, family, methods, bare
    forwarded_prefixes: tuple[tuple[str, ...], ...]

    def route(self, parts: tuple[str, ...]) -> Route | None: ...


def model_id_at(key: tuple[str, ...]) -> int:
    """Where the id starts in /v1/models/{id} or /models/{id}; 0 when the path is neither."""
    if len(key) > 2 and key[:2] == ("v1", "models"):
        return 2
    if len(key) > 1 and key[0] == "models":
        return 1
    return 0


def forward_allowed(patterns: tuple[str, ...], path: str) -> bool:
    """FORWARD_PATHS: globs over the canonical path with its leading '/' ('*' matches across '/')."""
    full = "/" + path
    return any(fnmatch.fnmatchcase(full, p if p.startswith(("/", "*")) else "/" + p) for p in patterns)


def standard_table(forwards: bool, forward_paths: tuple[str, ...], doors: Iterable[DoorRoutes] = ()) -> RouteTable:
    """The routes every proxy has: the API routes, the model list, /health and /metrics; and the doors'."""
    table = RouteTable(forwards, forward_paths)
    for suffix, kind in API_KINDS.items():
        table.add(f"v1/{suffix}", kind, "api", {"POST"}, bare=True)
    for door in doors:
        table.add_door(door)
    table.add("v1/models", "models", "models", {"GET", "HEAD"}, bare=True)
    table.add("", "root", "own", {"GET", "HEAD"})  # clients probe it (Claude Code sends HEAD / first)
    table.add("health", "health", "own", {"GET", "HEAD"})
    table.add("metrics", "metrics", "own", {"GET", "HEAD"})
    table.add("ui", "ui", "own", {"GET", "HEAD"})  # the status page (argoproxy/observe/status_page.py)
    table.add("ui/data", "ui_data", "own", {"GET", "HEAD"})
    for path, kind, methods in SIGNIN_ROUTES:  # sign-in (argoproxy/signin/pages.py; 404 while OIDC_ISSUER is unset)
        table.add(path, kind, "own", methods)
    for path, kind, methods in AUTHSERVER_ROUTES:
        table.add(path, kind, "own", methods)
    table.add(PROOF_PATH, "listener_proof", "own", {"GET"})  # `cot-proxy run` asks it before sending a key
    table.add("ui/console.js", "ui_console", "console", {"GET", "HEAD"})  # the console page's script
    table.claims.append(admin_api)
    table.claims.append(resource_metadata)
    table.claims.append(server_metadata)
    return table


RESOURCE_METADATA = (".well-known", "oauth-protected-resource")  # RFC 9728; 404 without OAuth (signin/resource.py)


def resource_metadata(parts: tuple[str, ...]) -> Route | None:
    """/.well-known/oauth-protected-resource, and under it /mcp and /mcp/<server>: the MCP gateway's protected
    resource metadata (an own, open route; the server's name keeps its case)."""
    key = tuple(p.lower() for p in parts)
    if key[:2] != RESOURCE_METADATA or len(parts) > 4 or (len(parts) > 2 and key[2] != "mcp"):
        return None
    return Route("oauth_resource", "own", encode_path(RESOURCE_METADATA + tuple(key[2:3]) + parts[3:]),
                 frozenset({"GET", "HEAD", "OPTIONS"}))


SERVER_METADATA = (".well-known", "oauth-authorization-server")  # RFC 8414 (argoproxy/authserver/)


def server_metadata(parts: tuple[str, ...]) -> Route | None:
    """/.well-known/oauth-authorization-server, with or without a path after it (RFC 8414 puts an issuer's path
    there: a PUBLIC_URL with one), the authorization server's metadata (an own, open route)."""
    if tuple(p.lower() for p in parts[:2]) != SERVER_METADATA:
        return None
    return Route("oauth_server_metadata", "own", encode_path(SERVER_METADATA + parts[2:]),
                 frozenset({"GET", "HEAD", "OPTIONS"}))


ADMIN_METHODS = frozenset({"GET", "POST", "PATCH", "DELETE"})


def admin_api(parts: tuple[str, ...]) -> Route | None:
    """/admin/v1/... (any case for its fixed part), the console's JSON API; the names after it keep their case."""
    if len(parts) < 2 or (parts[0].lower(), parts[1].lower()) != ("admin", "v1"):
        return None
    return Route("admin", "console", encode_path(("admin", "v1") + parts[2:]), ADMIN_METHODS)
