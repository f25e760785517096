"""The MCP gateway (argoproxy/mcp/) mounted on the door when `mcp_servers` names any: `/mcp` and `/mcp/<server>`
become the proxy's own routes, after the door's Origin and key checks; without MCP servers `/mcp` is any other
path (forwarded when the backend forwards). The supervisor of the MCP servers is the Gunicorn master's
(serve/gunicorn_hooks.py); a proxy built without that master (in-process) starts its own."""

from __future__ import annotations

import atexit
import os
from typing import TYPE_CHECKING

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
    return endpoint


def own_supervisor(settings: Settings) -> str:
    from argoproxy.mcp.launch import start_supervisor, stop_supervisor, supervisor_options
    path = start_supervisor(settings.mcp_servers, options=supervisor_options(settings))
    atexit.register(stop_supervisor)
    assert path is not None
    return path
