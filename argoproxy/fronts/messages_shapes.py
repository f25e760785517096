"""The shapes of what the Messages door accepts and leaves out (prompt caching's `cache_control`, a client tool's
flags), checked as Anthropic's API checks them: a request its document refuses is a 400 here too, naming the
field, rather than one passed on with the wrong part silently dropped. What the door translates is checked where
it is translated (messages.py)."""

from __future__ import annotations

import re
from typing import Any, Callable

from argoproxy.errors import ProxyError

Bad = Callable[[str, str], ProxyError]

TTLS = ("5m", "1h")  # cache_control.ttl's values
CALLERS = ("direct", "code_execution_20250825", "code_execution_20260120")  # allowed_callers' values
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")


def cache_control(holder: dict[str, Any], where: str, bad: Bad) -> None:
    """`cache_control`, when given: {"type": "ephemeral"} with an optional `ttl` of 5m or 1h, nothing else."""
    value = holder.get("cache_control")
    if value is None:
        return
    param = f"{where}.cache_control" if where else "cache_control"
    if not isinstance(value, dict):
        raise bad("must be an object ({\"type\": \"ephemeral\"}).", param)
    if value.get("type") != "ephemeral":
        raise bad("`type` must be \"ephemeral\".", f"{param}.type")
    if "ttl" in value and value["ttl"] not in TTLS:
        raise bad(f"`ttl` must be one of {', '.join(TTLS)}.", f"{param}.ttl")
    extra = sorted(set(value) - {"type", "ttl"})
    if extra:
        raise bad(f"Extra inputs are not permitted: {', '.join(map(str, extra))}.", f"{param}.{extra[0]}")


def client_tool(tool: dict[str, Any], where: str, bad: Bad) -> None:
    """A client (custom) tool's fields besides those translated, of their types. A field the document does not
    list is left out, not refused (the API refuses it): a client newer than the vendored document keeps working."""
    if not TOOL_NAME.fullmatch(tool["name"]):
        raise bad("must be 1 to 128 letters, digits, underscores or hyphens.", f"{where}.name")
    tool_flags(tool, where, bad)


def tool_flags(tool: dict[str, Any], where: str, bad: Bad) -> None:
    """The fields every tool of the document shares, client or Anthropic-defined (bash, text editor, web
    search...): checked on a tool the door leaves out too, since the API would refuse the request."""
    for key in ("strict", "defer_loading"):
        if key in tool and not isinstance(tool[key], bool):
            raise bad("must be a boolean.", f"{where}.{key}")
    if tool.get("eager_input_streaming") is not None and not isinstance(tool["eager_input_streaming"], bool):
        raise bad("must be a boolean.", f"{where}.eager_input_streaming")
    examples = tool.get("input_examples", [])
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise bad("must be a list of objects.", f"{where}.input_examples")
    callers = tool.get("allowed_callers", [])
    if not isinstance(callers, list) or any(c not in CALLERS for c in callers):
        raise bad(f"must be a list of {', '.join(CALLERS)}.", f"{where}.allowed_callers")
    cache_control(tool, where, bad)
