"""What a tool call leaves behind (docs/mcp.md, "What is recorded"): one ToolCall per `tools/call` request, handed
to the hooks the proxy gives the endpoint (serve/mcp_mount.py wires them): `/metrics` series this module registers
(ToolMetrics), an `execute_tool` span started through the tracer's public hook (`span_of` says what it holds), and
a team key's usage rows (`used`).
The observers know nothing of MCP: this package says what a tool call is, and calls them.

A tool's name is a metric label only once it is known to be one of a configured server's tools: its server answered
the call with a result and lists the name (ToolNames); any other name is `other`, so a client's made-up names never
become series."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from argoproxy.config.mcp_servers import SEPARATOR
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.names import MAX_NAME, prefixed

OTHER = "other"  # the label of a name not known to be a configured server's tool
NO_SERVER = "none"  # the server label of a call that ended at the proxy (not allowed, no such tool)
TOOL_LABEL_CAP = 1000  # tool names a worker keeps as labels
RELIST_AFTER = 60.0  # seconds before a server's listing is read again for a name it did not list
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(frozen=True)
class ToolCall:
    """One tools/call, answered: `tool` is the prefixed name (`git__status`, at most 64 characters) whichever
    endpoint was called, `label` the same once known (else `other`); `server` None when the call ended at the proxy."""

    server: str | None
    tool: str
    label: str
    id: jsonrpc.RequestId
    key: str | None  # the team key's name (never the key)
    outcome: str  # ok | tool_error | error
    code: int | None  # the JSON-RPC error's code
    start_ns: int  # wall clock, as spans are dated
    seconds: float
    bytes_in: int
    bytes_out: int
    cost: int = 0  # nano-dollars charged: its server's price_per_call, when its server answered (mcp/limits.py)
    arguments: Any = field(default=None, repr=False)  # only when JOURNAL_TOOL_ARGUMENTS opts in (the journal's line)

    @property
    def error_type(self) -> str | None:
        """error.type as the MCP conventions give it: `tool_error` for a result with isError, else the code."""
        return None if self.outcome == "ok" else "tool_error" if self.outcome == "tool_error" else str(self.code)


Hook = Callable[[ToolCall, Any], None]  # (the call, the request's context the endpoint was handed)


def outcome_of(answer: dict[str, Any]) -> tuple[str, int | None]:
    error = answer.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        return "error", code if isinstance(code, int) and not isinstance(code, bool) else jsonrpc.INTERNAL_ERROR
    result = answer.get("result")
    return ("tool_error" if isinstance(result, dict) and result.get("isError") is True else "ok"), None


class ToolNames:
    """The configured servers' tools as this worker knows them (server -> own names), read from a server's own
    listing when a call it answered names a tool not known yet (at most once a minute per server), and at most
    TOOL_LABEL_CAP in all."""

    def __init__(self, listing: Callable[[str], Iterable[str]]) -> None:
        self.listing = listing  # a server's tool names, as it lists them
        self.known: dict[str, set[str]] = {}
        self.read_at: dict[str, float] = {}
        self.count = 0
        self.lock = threading.Lock()

    def label(self, server: str | None, own: str | None, answered: bool, sent: str = "") -> str:
        """`sent`: the name a call that ended at the proxy (refused: its key's globs, its limits) was sent under,
        labelled when its server listed it: such a call was `other` whatever it named. It asks no listing (a
        refused key may send many)."""
        if server is None or own is None:
            return self.known_name(sent)
        names = self.known.get(server)
        if names is not None and own in names:
            return prefixed(server, own)
        if not answered or time.monotonic() - self.read_at.get(server, -RELIST_AFTER) < RELIST_AFTER:
            return OTHER
        self.read_at[server] = time.monotonic()
        listed = set(self.listing(server))
        with self.lock:
            kept = self.known.setdefault(server, set())
            for name in listed - kept:
                if self.count >= TOOL_LABEL_CAP:
                    break
                kept.add(name)
                self.count += 1
        return prefixed(server, own) if own in kept else OTHER


    def known_name(self, sent: str) -> str:
        server, _, own = sent.partition(SEPARATOR)
        return sent if own in self.known.get(server, ()) and prefixed(server, own) == sent else OTHER


class ToolMetrics:
    """cot_proxy_tool_calls_total{server,tool,outcome}, cot_proxy_tool_call_seconds{server} and the bytes a call
    carried each way, by server; `registry`: where the proxy's metrics register (None: prometheus_client's
    multiprocess files, which a scrape merges over the workers, as every other series)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram
        self.calls = Counter("cot_proxy_tool_calls", "MCP tool calls answered, by server, tool (`other`: a name "
                             "that is no configured server's tool) and outcome (ok, tool_error, error).",
                             ["server", "tool", "outcome"], registry=registry)
        self.seconds = Histogram("cot_proxy_tool_call_seconds", "Seconds from an MCP tool call read to its "
                                 "answer, by server.", ["server"], buckets=SECONDS_BUCKETS, registry=registry)
        self.bytes_in = Counter("cot_proxy_tool_call_request_bytes", "Bytes of MCP tool call requests, by server.",
                                ["server"], registry=registry)
        self.bytes_out = Counter("cot_proxy_tool_call_response_bytes", "Bytes of MCP tool call answers, by server.",
                                 ["server"], registry=registry)
        self.children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}  # (labels are bounded: so is this)

    def observe(self, call: ToolCall, context: Any = None) -> None:
        server = call.server or NO_SERVER
        key = (server, call.label, call.outcome)
        children = self.children.get(key)
        if children is None:
            children = self.children[key] = (self.calls.labels(*key), self.seconds.labels(server),
                                             self.bytes_in.labels(server), self.bytes_out.labels(server))
        calls, seconds, bytes_in, bytes_out = children
        calls.inc()
        seconds.observe(call.seconds)
        bytes_in.inc(call.bytes_in)
        bytes_out.inc(call.bytes_out)


def span_of(call: ToolCall) -> tuple[str, dict[str, Any], str | None]:
    """The call's span: its name, attributes and error.type, as the GenAI conventions' execute_tool span and the MCP
    conventions' tools/call span give them (never the arguments or the result)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.tool, "gen_ai.tool.type": "extension",
        "gen_ai.tool.call.id": str(call.id)[:MAX_NAME], "mcp.method.name": "tools/call",
        "jsonrpc.request.id": str(call.id)[:MAX_NAME], "cot_proxy.mcp.server": call.server or NO_SERVER}
    if call.key is not None:
        attributes["cot_proxy.key.name"] = call.key
    if call.code is not None:
        attributes["rpc.response.status_code"] = str(call.code)
    return f"execute_tool {call.label}", attributes, call.error_type


def traced(span: Callable[[Any, str, dict[str, Any], int, str | None], None]) -> Hook:
    """A hook that hands each call's span to the tracer's `span` (the request's context, name, attributes, start,
    error.type): a span under the request's own, in the client's trace when it sent a traceparent."""
    def hook(call: ToolCall, context: Any) -> None:
        name, attributes, error = span_of(call)
        span(context, name, attributes, call.start_ns, error)
    return hook


def used(tool_used: Callable[[str, str, str, bool, float, int, int, int], None]) -> Hook:
    """A hook that hands a team key's calls to its usage rows (the team keys' `tool_used`: key, server, tool, whether
    it failed, seconds, bytes in and out, cost), by the tool's label: a key's made-up names are one row, `other`."""
    def hook(call: ToolCall, context: Any) -> None:
        if call.key is not None:
            tool_used(call.key, call.server or NO_SERVER, call.label, call.outcome != "ok", call.seconds,
                      call.bytes_in, call.bytes_out, call.cost)
    return hook
