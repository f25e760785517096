"""The shapes of what the Responses door accepts and leaves out (a hosted MCP tool's fields, an input item's
`status`), checked as OpenAI's API document gives them: a request it refuses is a 400 here too, naming the field,
rather than one passed on with the wrong part silently dropped. A field the document does not list is not looked
at (left out, not refused), nor a hosted tool whose fields are not held here."""

from __future__ import annotations

from typing import Any, Callable

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import bad_request
from argoproxy.fronts.fields import Rule, checked, fields_of, kind, list_of, one_of, or_null

Bad = Callable[[str, str], ProxyError]

_STRINGS = list_of(kind("a string"), "[{}]")
_FILTER = fields_of({"read_only": kind("a boolean"), "tool_names": _STRINGS})  # MCPToolFilter
CONNECTORS = ("connector_dropbox", "connector_gmail", "connector_googlecalendar", "connector_googledrive",
              "connector_microsoftteams", "connector_outlookcalendar", "connector_outlookemail",
              "connector_sharepoint")
TUNNEL_ID = "tunnel_"  # then 32 lowercase letters or digits


def _allowed_tools(value: Any, param: str, bad: Bad) -> None:
    """A list of tool names, or a filter."""
    (_STRINGS if isinstance(value, list) else _FILTER)(value, param, bad)


def _require_approval(value: Any, param: str, bad: Bad) -> None:
    """"always", "never", or a filter for each."""
    if isinstance(value, dict):
        fields_of({"always": _FILTER, "never": _FILTER})(value, param, bad)
    else:
        one_of("always", "never")(value, param, bad)


def _headers(value: Any, param: str, bad: Bad) -> None:
    """An object of strings."""
    kind("an object")(value, param, bad)
    for name, each in value.items():
        kind("a string")(each, f"{param}.{name}", bad)


def _tunnel_id(value: Any, param: str, bad: Bad) -> None:
    tail = value[len(TUNNEL_ID):] if isinstance(value, str) and value.startswith(TUNNEL_ID) else ""
    if len(tail) != 32 or not all(c in "abcdefghijklmnopqrstuvwxyz0123456789" for c in tail):
        raise bad("must be `tunnel_` and 32 lowercase letters or digits.", param)


# Hosted tools, by `type`: (their fields' rules, the fields required besides `type`). A chat upstream runs none
# (they are left out).
HOSTED_TOOLS: dict[str, tuple[dict[str, Rule], tuple[str, ...]]] = {
    "mcp": ({"server_label": kind("a string"), "server_url": kind("a string"),
             "server_description": kind("a string"), "authorization": kind("a string"),
             "connector_id": one_of(*CONNECTORS), "tunnel_id": _tunnel_id, "defer_loading": kind("a boolean"),
             "headers": or_null(_headers), "allowed_tools": or_null(_allowed_tools),
             "require_approval": or_null(_require_approval),
             "allowed_callers": or_null(list_of(one_of("direct", "programmatic"), "[{}]"))},
            ("server_label",)),
}

# An input item's `status`, by the item's type, when the document gives it a set of values (a message's may be
# any string under Open Responses' document, and is not typed by OpenAI's). Null is taken as the field left out.
_PROGRESS = ("in_progress", "completed", "incomplete")
ITEM_STATUSES: dict[str, tuple[str, ...]] = {
    "function_call": _PROGRESS, "function_call_output": _PROGRESS, "reasoning": _PROGRESS,
    "local_shell_call": _PROGRESS, "local_shell_call_output": _PROGRESS, "shell_call": _PROGRESS,
    "shell_call_output": _PROGRESS, "computer_call": _PROGRESS, "computer_call_output": _PROGRESS,
    "tool_search_call": _PROGRESS, "tool_search_output": _PROGRESS,
    "apply_patch_call": ("in_progress", "completed"), "apply_patch_call_output": ("completed", "failed"),
    "web_search_call": ("in_progress", "searching", "completed", "failed"),
    "file_search_call": ("in_progress", "searching", "completed", "incomplete", "failed"),
    "image_generation_call": ("in_progress", "completed", "generating", "failed"),
    "code_interpreter_call": ("in_progress", "completed", "incomplete", "interpreting", "failed"),
    "mcp_call": ("in_progress", "completed", "incomplete", "calling", "failed"),
}


def hosted_tool(tool: dict[str, Any], tool_type: str, param: str, bad: Bad) -> None:
    """A hosted tool's fields, when they are held here (the tool is left out either way)."""
    if tool_type not in HOSTED_TOOLS:
        return
    rules, required = HOSTED_TOOLS[tool_type]
    for key in required:
        if key not in tool:
            raise bad_request(f"Missing required parameter: '{param}.{key}'.", f"{param}.{key}",
                              "missing_required_parameter")
    checked(tool, rules, param, bad)


def item_status(item: dict[str, Any], item_type: str, param: str, bad: Bad) -> None:
    """An input item's `status`, one of its type's values (the door does not read it)."""
    if item.get("status") is None:
        return
    if item_type in ITEM_STATUSES:
        one_of(*ITEM_STATUSES[item_type])(item["status"], f"{param}.status", bad)
    elif item_type == "message":
        kind("a string")(item["status"], f"{param}.status", bad)
