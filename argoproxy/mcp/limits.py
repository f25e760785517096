"""What bounds each tool call at /mcp (docs/mcp.md, "Limits"): its server's deadline (`timeout`), the largest
answer passed on (`max_result_bytes`) and its price (`price_per_call`), from `mcp_servers`; and a team key's tool
limits and dollar budget (argoproxy/teamkeys/tool_calls.py), checked before anything reaches the server.

A call refused here, or an answer over the bound, is a JSON-RPC error of the proxy's own, in the range the
specification leaves to implementations (-32000 to -32099):
- LIMITED (-32029, as HTTP's 429): over the key's or its team's tool calls per minute or at once, or its dollar
  budget spent; `data` names the limit and the seconds until it may pass (`retryAfter`);
- RESULT_TOO_LARGE (-32004): the server's answer is longer than its `max_result_bytes`; the answer is dropped
  whole (never cut: cut JSON is no answer).
The deadline's end is jsonrpc.REQUEST_TIMEOUT (-32003), answered by the supervisor, which also tells the server
the call is cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argoproxy.config.mcp_servers import MAX_RESULT_BYTES, McpServer
from argoproxy.jsonfast import dumps
from argoproxy.mcp import jsonrpc
from argoproxy.teamkeys import tool_calls
from argoproxy.teamkeys.records import KeyRecord
from argoproxy.teamkeys.service import TeamKeys

LIMITED = -32029
RESULT_TOO_LARGE = -32004
# The proxy's own endings of a call its server never answered: no price is charged for them.
UNANSWERED = frozenset({jsonrpc.SERVER_UNAVAILABLE, jsonrpc.REQUEST_TIMEOUT, jsonrpc.REQUEST_CANCELLED})


@dataclass(frozen=True)
class CallBounds:
    timeout: float  # seconds
    max_result_bytes: int
    price: int  # nano-dollars per call its server answers


@dataclass
class AdmittedCall:
    """An admitted call: what it holds of its key's tool windows and dollar budgets (tool_calls.Hold; None:
    nothing), and what it costs once answered."""
    hold: tool_calls.Hold | None
    price: int


class Limits:
    def __init__(self, servers: tuple[McpServer, ...], call_timeout: float, keys: TeamKeys | None = None) -> None:
        self.default = CallBounds(call_timeout, MAX_RESULT_BYTES, 0)
        self.bounds = {s.name: CallBounds(s.timeout or call_timeout, s.max_result_bytes, s.price_per_call)
                       for s in servers}
        self.keys = keys  # None: auth off, no team keys to hold to anything

    def of(self, server: str) -> CallBounds:
        return self.bounds.get(server, self.default)

    def admit(self, record: KeyRecord | None, server: str,
              id: jsonrpc.RequestId | None) -> AdmittedCall | dict[str, Any] | None:
        """A team key's call to `server` held to its limits: AdmittedCall (to end), the error that answers it
        instead, or None (no team key, or nothing to hold or charge)."""
        if not self.holds(record, server):
            return None  # nothing to count: no store round trip
        assert record is not None and self.keys is not None
        price = self.of(server).price
        got = tool_calls.admit(self.keys, record, price)
        if isinstance(got, tool_calls.ToolRefusal):
            return jsonrpc.error(id, LIMITED, got.message, {"limit": got.limit, "retryAfter": got.seconds})
        return AdmittedCall(got, price)

    def holds(self, record: KeyRecord | None, server: str) -> bool:
        """Whether `admit` holds or charges anything of a call of the key's to `server` (a team key with tool limits,
        or a server with a price)."""
        return record is not None and self.keys is not None and (bool(self.of(server).price)
                                                                 or record.tool_windows is not None)

    def end(self, held: AdmittedCall | dict[str, Any] | None, answer: dict[str, Any]) -> int:
        """The call ended with `answer`: what it held given back; its price charged when its server answered it (a
        result, or an error of the server's own), never when the proxy ended it (UNANSWERED, or the client left:
        an empty answer). Returns what it cost (nano-dollars)."""
        if not isinstance(held, AdmittedCall) or self.keys is None:
            return 0
        error = answer.get("error")
        answered = "result" in answer or (isinstance(error, dict) and error.get("code") not in UNANSWERED)
        cost = held.price if answered else 0
        if held.hold is not None:
            tool_calls.end(self.keys, held.hold, cost)
        return cost

    def bounded(self, server: str | None, answer: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The answer and its JSON, or RESULT_TOO_LARGE's when it is longer than the server's bound."""
        body = dumps(answer)
        if server is None:
            return answer, body
        most = self.of(server).max_result_bytes
        if len(body) <= most:
            return answer, body
        error = jsonrpc.error(answer.get("id"), RESULT_TOO_LARGE, f"The tool's result is {len(body)} bytes, more "
                              f"than the {most} this server's calls may answer (mcp_servers.{server}.max_result_bytes).",
                              {"bytes": len(body), "maxResultBytes": most})
        return error, dumps(error)
