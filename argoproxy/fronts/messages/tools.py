"""The Messages tools -> chat functions (server and Anthropic-defined tools left out, their types noted), and
tool_choice -> chat's tool_choice and parallel_tool_calls."""

from __future__ import annotations

from typing import Any

from argoproxy.fronts.fields import boolean, checked, string
from argoproxy.fronts.messages.errors import bad
from argoproxy.fronts.messages.shapes import TOOL_CHOICE, client_tool, server_tool


def tools_to_chat(tools: Any, dropped: dict[str, None] | None = None) -> list[dict[str, Any]]:
    """Client tools as chat functions. Server tools and Anthropic-defined tools (a versioned `type`:
    web_search_20250305, bash_20250124...) have no chat form: they are left out and their types noted in
    `dropped` (the door logs them). `dropped` is a dict used as an ordered set: a list's `in` made 40,000
    distinct types take 29 s."""
    if not isinstance(tools, list):
        raise bad("must be a list.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise bad("each tool must be an object.", f"tools.{i}")
        kind, name = tool.get("type"), tool.get("name")
        if kind is not None and not isinstance(kind, str):
            raise bad("must be a string.", f"tools.{i}.type")
        if name is not None and not isinstance(name, str):
            raise bad("must be a string.", f"tools.{i}.name")
        if kind not in (None, "custom"):
            server_tool(tool, f"tools.{i}", bad)
            if dropped is not None:
                dropped[kind] = None
            continue
        if not name:
            raise bad("Field required: a tool name.", f"tools.{i}.name")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise bad("Field required: an input_schema object.", f"tools.{i}.input_schema")
        client_tool(tool, f"tools.{i}", bad)
        function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
        description = string(tool, "description", f"tools.{i}.description", bad)
        if description is not None:
            function["description"] = description
        out.append({"type": "function", "function": function})
    return out


def tool_names(tools: list[Any], types: dict[str, None]) -> set[str]:
    """The names of the tools of these types."""
    return {t["name"] for t in tools
            if isinstance(t, dict) and t.get("type") in types and isinstance(t.get("name"), str)}


def tool_choice_to_chat(choice: Any) -> tuple[Any, bool | None]:
    """tool_choice -> (chat tool_choice, parallel_tool_calls)."""
    if not isinstance(choice, dict):
        raise bad("must be an object with a type.", "tool_choice")
    checked(choice, TOOL_CHOICE, "tool_choice", bad)
    disable = boolean(choice, "disable_parallel_tool_use", "tool_choice.disable_parallel_tool_use", bad)
    parallel = None if disable is None else not disable
    kind = choice.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        name = string(choice, "name", "tool_choice.name", bad, required=True)
        return {"type": "function", "function": {"name": name}}, parallel
    raise bad("type must be auto, any, tool (with a name) or none.", "tool_choice.type")
