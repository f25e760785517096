"""The MCP tool calls' usage rows in Redis (docs/mcp.md): one hash of counters, its fields day, key, server, tool and
what is counted, each an increment of its own (a write sent twice adds, it never overwrites). RedisKeyStore has
these methods; SQLite's store keeps the same rows in its tool_usage table."""

from __future__ import annotations

from typing import Any

from argoproxy.teamkeys.store import usage_day

KEY = "cot_proxy:tool_usage"
SEP = "\x1f"  # as redis_store.py's: in no day, key name or server name
COUNTED = ("calls", "errors", "millis", "in", "out", "cost")
ToolRow = tuple[str, str, str, str, int, int, int, int, int, int]


class RedisToolUsage:
    redis: Any

    def record_tool_usage(self, name: str, server: str, tool: str, now: float, calls: int, errors: int, millis: int,
                          bytes_in: int, bytes_out: int, cost: int = 0) -> None:
        """A key's MCP tool calls, by day, key, server and tool: one round trip of increments."""
        field = SEP.join((usage_day(now), name, server, tool)) + SEP
        pipe = self.redis.pipeline(transaction=False)
        for what, value in zip(COUNTED, (calls, errors, millis, bytes_in, bytes_out, cost)):
            if value:
                pipe.hincrby(KEY, field + what, value)
        pipe.execute()

    def tool_usage(self, since: str = "") -> list[ToolRow]:
        """(key name, server, tool, day, calls, errors, milliseconds, bytes in, bytes out, nano-dollars), by day then
        name, server and tool."""
        totals: dict[tuple[str, str, str, str], dict[str, int]] = {}
        for field, value in self.redis.hgetall(KEY).items():
            row, _, what = field.rpartition(SEP)
            day, name, server, tool = row.split(SEP, 3)  # the tool's name last: its server chose it
            if day >= since:
                totals.setdefault((day, name, server, tool), {})[what] = int(value)
        return [(name, server, tool, day, *[t.get(what, 0) for what in COUNTED])  # type: ignore[misc]
                for (day, name, server, tool), t in sorted(totals.items())]
