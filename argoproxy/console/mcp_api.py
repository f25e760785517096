"""`/admin/v1/mcp`: the MCP servers' state and today's tool calls by key, as the status page shows them
(observe/status_page.py's `tools`), and `/admin/v1/mcp/calls`: the tool calls' daily rows (`?since=` YYYY-MM-DD),
an admin's to read (the newest 1,000 rows)."""

from __future__ import annotations

from argoproxy.console.admin_call import AdminCall, no_such, not_allowed
from argoproxy.console.usage_api import day_param
from argoproxy.edge.http_objects import Answer
from argoproxy.spend import dollars

CALL_FIELDS = ("key", "server", "tool", "day", "calls", "errors", "millis", "bytes_in", "bytes_out")


def serve(call: AdminCall) -> Answer:
    if call.method != "GET":
        raise not_allowed("/admin/v1/mcp", "GET")
    call.scope.require_admin("read the MCP servers' state and tool calls")
    if not call.rest:
        state = call.tools() if call.tools is not None else {"servers": [], "keys": []}
        return Answer.json(state)
    if call.rest != ("calls",):
        raise no_such("MCP resource", "/".join(call.rest))
    since = day_param(call.params("since").get("since", ""))
    rows = [{**dict(zip(CALL_FIELDS, row[:9])), "cost_usd": dollars(row[9])} for row in call.store.tool_usage(since)]
    return Answer.json({"data": rows[-1000:], "next": None})
