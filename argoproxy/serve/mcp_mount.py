"""The MCP gateway (argoproxy/mcp/) mounted on the door when `mcp_servers` names any: `/mcp` and `/mcp/<server>`
become the proxy's own routes, after the door's Origin and key checks; without MCP servers `/mcp` is any other
path (forwarded when the backend forwards). The supervisor of the MCP servers is the Gunicorn master's
(serve/gunicorn_hooks.py); a proxy built without that master (in-process) starts its own."""

from __future__ import annotations

import atexit
import os
from typing import Any, TYPE_CHECKING

from argoproxy.config.settings import Settings
from argoproxy.edge.classify import Route
from argoproxy.edge.http_objects import Answer
from argoproxy.observe.journal import Journal
from argoproxy.redaction import configured_secrets
from argoproxy.pipeline.call import Call
from argoproxy.serve.door import Door

if TYPE_CHECKING:
    from argoproxy.mcp.endpoint import McpEndpoint

MCP_SEGMENT = "mcp"  # the path's first segment, any case: /mcp and /mcp/<server>


def mount_mcp(door: Door) -> McpEndpoint | None:
    settings = door.settings
    servers = settings.mcp_servers  # stdio and remote alike: the supervisor runs the one, reaches the other
    if not servers:
        return None  # and the MCP package is never imported: 17 modules a worker without MCP servers does not load
    from argoproxy.mcp.endpoint import METHODS, McpEndpoint, owner_of, tool_globs
    from argoproxy.mcp.journal_line import journaled
    from argoproxy.mcp.launch import SOCKET_ENV
    from argoproxy.mcp.limits import Limits
    from argoproxy.mcp.link import Link
    from argoproxy.mcp.listening import room_for
    from argoproxy.mcp.recording import ToolMetrics, traced, used
    from argoproxy.mcp.sessions import sessions_for
    from argoproxy.mcp.tool_search import ToolSearch
    from argoproxy.meter import count_text
    path = os.environ.get(SOCKET_ENV) or own_supervisor(settings)
    link = Link(path)
    endpoint = McpEndpoint(tuple(s.name for s in servers), link, auth_on=settings.enable_auth,
                           unix_socket=bool(settings.socket), call_timeout=settings.timeout,
                           limits=Limits(servers, settings.timeout, door.gateway.team_keys),
                           sessions=sessions_for(link, settings.redis_url))
    if any(s.per_person for s in servers):  # each person's own token to those servers (docs/mcp-credentials.md)
        from argoproxy.mcp.person_tokens import person_tokens
        link.person_fields = person_tokens(settings).fields
        endpoint.personal = frozenset(s.name for s in servers if s.per_person)
    endpoint.streams = room_for(settings.worker_class, settings.threads)  # GET and listen streams a worker holds
    endpoint.search = ToolSearch(settings.mcp_tool_search, settings.mcp_tool_search_share,
                                 settings.mcp_tool_search_tools, settings.mcp_tool_search_window, count_text)
    if door.metrics is not None:
        endpoint.hooks.append(ToolMetrics(door.metrics.family_registry()).observe)
    if door.tracing is not None:
        endpoint.hooks.append(traced(door.tracing.inner_span))
    if door.gateway.team_keys is not None:
        endpoint.hooks.append(used(door.gateway.team_keys.tool_used))
    if settings.log_dir:  # a line per tool call in the client journal (O_APPEND: beside the requests' own lines)
        journal = Journal(settings.log_dir, secrets=configured_secrets(settings),
                          body_bytes=settings.journal_body_bytes)
        endpoint.keep_arguments = settings.journal_tool_arguments
        endpoint.hooks.append(journaled(journal.record))

    def claim(parts: tuple[str, ...]) -> Route | None:
        if not parts or parts[0].lower() != MCP_SEGMENT or len(parts) > 2:
            return None
        return Route("mcp", "mcp", "/".join((MCP_SEGMENT, *parts[1:])), METHODS)

    def handle(call: Call, route: Route) -> Answer:
        req = call.client.request
        assert req is not None
        server = route.path.partition("/")[2] or None
        answer = endpoint.answer(req, server, owner_of(req, door.auth.is_admin(req)), tool_globs(req), call)
        return door.record(call, answer)

    door.table.claims.insert(0, claim)
    door.families["mcp"] = handle
    if any(s.auth == "per_user" for s in servers):
        mount_connect(door)
    return endpoint


def mount_connect(door: Door) -> None:
    """/ui/connect/NAME[/callback]: a person connects to a per_user server (mcp/connect_flow.py). Console routes:
    no key asked (edge/auth.py), the person is their console session."""
    from argoproxy.console.authorize import check_change
    from argoproxy.edge.paths import encode_path
    from argoproxy.signin.principal import principal_of
    from argoproxy.mcp.connect_flow import ConnectPages
    from argoproxy.mcp.person_tokens import person_tokens
    settings = door.settings
    tokens = person_tokens(settings)

    def who(headers: Any) -> str | None:
        live = door.auth.sessions.of(headers) if door.auth.sessions is not None else None
        return live.person.id if live is not None else None

    pages = ConnectPages(settings.mcp_servers, tokens.connections, settings.public_url, who,
                         client_secret=tokens.connections.client_secret)

    def claim(parts: tuple[str, ...]) -> Route | None:
        if len(parts) not in (3, 4) or (parts[0].lower(), parts[1].lower()) != ("ui", "connect") \
                or (len(parts) == 4 and parts[3] != "callback"):
            return None
        return Route("mcp_connect", "console", encode_path(parts), frozenset({"GET", "DELETE"}))

    console = door.families["console"]

    def handle(call: Call, route: Route) -> Answer:
        if route.kind != "mcp_connect":
            return console(call, route)
        req = call.client.request
        assert req is not None
        parts = route.path.split("/")
        signed = principal_of(req, door.auth) if req.method == "DELETE" else None
        if signed is not None:  # a session's change: the console's one rule (its CSRF token, this site's Origin)
            check_change(signed, req)
        answer = pages.answer(parts[2], len(parts) == 4, req.method, req.target.partition("?")[2], req.headers)
        return door.record(call, answer)

    door.table.claims.insert(0, claim)
    door.families["console"] = handle


def own_supervisor(settings: Settings) -> str:
    from argoproxy.mcp.launch import start_supervisor, stop_supervisor, supervisor_options
    path = start_supervisor(settings.mcp_servers, options=supervisor_options(settings))
    atexit.register(stop_supervisor)
    assert path is not None
    return path
