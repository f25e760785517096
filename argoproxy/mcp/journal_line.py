"""A journal line per tool call (docs/mcp.md, "What is recorded"): in the client journal the model requests' lines
go to (LOG_DIR's client_interaction.jsonl), beside the line of the HTTP request that carried it, with `kind`
`tool_call`: who called which tool of which server, how it ended, how long it took, its bytes in and out and what
it cost. Never its result, and its arguments only when JOURNAL_TOOL_ARGUMENTS opts in (the endpoint then hands them
over: ToolCall.arguments)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Callable

from argoproxy.mcp.recording import NO_SERVER, Hook, ToolCall

NANOS_PER_DOLLAR = Decimal(10**9)
# The journal's record(file, logging_id, input, output, ..., status=, latency_ms=, extra=): observe/journal.py's
# Journal.record, handed over by serve/mcp_mount.py.
Record = Callable[..., None]


def journaled(record: Record) -> Hook:
    def hook(call: ToolCall, context: Any) -> None:
        client = getattr(context, "client", None)
        record("client", uuid.uuid4().hex, call.arguments, None, status=200, latency_ms=call.seconds * 1000,
               extra={"request_id": getattr(client, "request_id", None), "kind": "tool_call", **line_of(call)})
    return hook


def line_of(call: ToolCall) -> dict[str, Any]:
    """What the line says of the call (its `input` is the arguments, when kept; its `output` stays null)."""
    return {"key": call.key, "server": call.server or NO_SERVER, "tool": call.tool, "outcome": call.outcome,
            "error_code": call.code, "bytes_in": call.bytes_in, "bytes_out": call.bytes_out,
            "cost_usd": float(Decimal(call.cost) / NANOS_PER_DOLLAR)}
