"""The shapes of what the Responses door accepts and leaves out (hosted and built-in tools' fields, a custom
tool's, an input item's `status`), checked as OpenAI's API document gives them: a request it refuses is a 400 here
too, naming the field, rather than one passed on with the wrong part silently dropped. A field the document does
not list is not looked at (left out, not refused), nor a tool whose type the document does not list: a client
newer than the vendored document keeps working."""

from __future__ import annotations

from typing import Any, Callable

from argoproxy.errors import ProxyError
from argoproxy.fronts.fields import (Rule, by_type, checked, fields_of, integer, kind, list_of, must_be, one_of,
                                     or_null, text)
from argoproxy.fronts.front import bad_request

Bad = Callable[[str, str], ProxyError]

_STRINGS = list_of(kind("a string"), "[{}]")
_FILTER = fields_of({"read_only": kind("a boolean"), "tool_names": _STRINGS})  # MCPToolFilter
CONNECTORS = ("connector_dropbox", "connector_gmail", "connector_googlecalendar", "connector_googledrive",
              "connector_microsoftteams", "connector_outlookcalendar", "connector_outlookemail",
              "connector_sharepoint")
TUNNEL_ID = "tunnel_"  # then 32 lowercase letters or digits


def is_item_reference(item: Any) -> bool:
    """An item_reference input item: its `type` says so, or, the document giving that `type` as optional, an item
    holding an `id` with neither a `type` nor a `role` (a message may leave its `type` out, never its role)."""
    if not isinstance(item, dict):
        return False
    kind = item.get("type")
    return kind == "item_reference" or (kind is None and "id" in item and "role" not in item)


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


def _filter(value: Any, param: str, bad: Bad) -> None:
    """A file search filter: a comparison (key, operator, value), or filters joined by and / or."""
    must_be(value, "an object", param, bad)
    if value.get("type") in ("and", "or"):
        checked(value, _COMPOUND, param, bad, ("filters",))
    else:
        checked(value, _COMPARISON, param, bad, ("type", "key", "value"))


def _filter_value(value: Any, param: str, bad: Bad) -> None:
    """A comparison's value: a string, number or boolean, or a list of strings and numbers."""
    if isinstance(value, list):
        for i, each in enumerate(value):
            if isinstance(each, bool) or not isinstance(each, (str, int, float)):
                raise bad("must be a string or a number.", f"{param}[{i}]")
    elif not isinstance(value, (str, int, float)):
        raise bad("must be a string, a number, a boolean or a list.", param)


def _container(value: Any, param: str, bad: Bad) -> None:
    """A code interpreter's container: an id, or one made for the request."""
    if not isinstance(value, str):
        _AUTO_CONTAINER(value, param, bad)


_COMPOUND: dict[str, Rule] = {"filters": list_of(_filter, "[{}]")}
_COMPARISON = {"type": one_of("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"), "key": kind("a string"),
               "value": _filter_value}
_RANKING = fields_of({"hybrid_search": fields_of({"embedding_weight": kind("a number"),
                                                  "text_weight": kind("a number")},
                                                 ("embedding_weight", "text_weight")),
                      "ranker": one_of("auto", "default-2024-11-15"), "score_threshold": kind("a number")})
_PLACE = {"type": one_of("approximate"), "city": or_null(kind("a string")), "country": or_null(kind("a string")),
          "region": or_null(kind("a string")), "timezone": or_null(kind("a string"))}
_CONTEXT_SIZE = one_of("low", "medium", "high")
_WEB_SEARCH = {"external_web_access": kind("a boolean"), "search_context_size": _CONTEXT_SIZE,
               "filters": or_null(fields_of({"allowed_domains": or_null(_STRINGS)})),
               "user_location": or_null(fields_of(_PLACE))}
_WEB_SEARCH_PREVIEW = {"search_content_types": list_of(one_of("text", "image"), "[{}]"),
                       "search_context_size": _CONTEXT_SIZE, "user_location": or_null(fields_of(_PLACE, ("type",)))}
_CALLERS = or_null(list_of(one_of("direct", "programmatic"), "[{}]", shortest=1))
_SECRET = fields_of({"domain": text(1), "name": text(1), "value": text(1, 10485760)}, ("domain", "name", "value"))
_NETWORK = by_type({"disabled": fields_of({}),
                    "allowlist": fields_of({"allowed_domains": list_of(kind("a string"), "[{}]", shortest=1),
                                            "domain_secrets": list_of(_SECRET, "[{}]", shortest=1)},
                                           ("allowed_domains",))})
_AUTO = {"file_ids": list_of(kind("a string"), "[{}]", longest=50),
         "memory_limit": or_null(one_of("1g", "4g", "16g", "64g")), "network_policy": _NETWORK}
_AUTO_CONTAINER = fields_of({"type": one_of("auto"), **_AUTO}, ("type",))
_SKILL = by_type({
    "skill_reference": fields_of({"skill_id": text(1, 64), "version": kind("a string")}, ("skill_id",)),
    "inline": fields_of({"name": kind("a string"), "description": kind("a string"), "source": fields_of(
        {"type": one_of("base64"), "media_type": one_of("application/zip"), "data": text(1, 70254592)},
        ("type", "media_type", "data"))}, ("name", "description", "source"))})
_LOCAL_SKILL = fields_of({"name": kind("a string"), "description": kind("a string"), "path": kind("a string")},
                         ("name", "description", "path"))
_SHELL_ENVIRONMENT = by_type({
    "container_auto": fields_of({**_AUTO, "skills": list_of(_SKILL, "[{}]", longest=200)}),
    "local": fields_of({"skills": list_of(_LOCAL_SKILL, "[{}]", longest=200)}),
    "container_reference": fields_of({"container_id": kind("a string")}, ("container_id",))})
_IMAGE_GENERATION = {
    "action": one_of("generate", "edit", "auto"), "background": one_of("transparent", "opaque", "auto"),
    "input_fidelity": or_null(one_of("high", "low")),
    "input_image_mask": fields_of({"file_id": kind("a string"), "image_url": kind("a string")}),
    "model": kind("a string"), "moderation": one_of("auto", "low"), "output_compression": integer(0, 100),
    "output_format": one_of("png", "webp", "jpeg"), "partial_images": integer(0, 3),
    "quality": one_of("low", "medium", "high", "auto"), "size": kind("a string")}

# Hosted and built-in tools, by `type`: (their fields' rules, the fields required besides `type`). A chat
# upstream runs none of them (they are left out).
HOSTED_TOOLS: dict[str, tuple[dict[str, Rule], tuple[str, ...]]] = {
    "mcp": ({"server_label": kind("a string"), "server_url": kind("a string"),
             "server_description": kind("a string"), "authorization": kind("a string"),
             "connector_id": one_of(*CONNECTORS), "tunnel_id": _tunnel_id, "defer_loading": kind("a boolean"),
             "headers": or_null(_headers), "allowed_tools": or_null(_allowed_tools),
             "require_approval": or_null(_require_approval),
             "allowed_callers": or_null(list_of(one_of("direct", "programmatic"), "[{}]"))},
            ("server_label",)),
    "web_search": (_WEB_SEARCH, ()),
    "web_search_2025_08_26": (_WEB_SEARCH, ()),
    "web_search_preview": (_WEB_SEARCH_PREVIEW, ()),
    "web_search_preview_2025_03_11": (_WEB_SEARCH_PREVIEW, ()),
    "file_search": ({"vector_store_ids": _STRINGS, "max_num_results": kind("an integer"),
                     "filters": or_null(_filter), "ranking_options": _RANKING}, ("vector_store_ids",)),
    "code_interpreter": ({"container": _container, "allowed_callers": _CALLERS}, ("container",)),
    "image_generation": (_IMAGE_GENERATION, ()),
    "computer_use_preview": ({"environment": one_of("windows", "mac", "linux", "ubuntu", "browser"),
                              "display_width": kind("an integer"), "display_height": kind("an integer")},
                             ("environment", "display_width", "display_height")),
    "shell": ({"allowed_callers": _CALLERS, "environment": or_null(_SHELL_ENVIRONMENT)}, ()),
    "apply_patch": ({"allowed_callers": _CALLERS}, ()),
    "tool_search": ({"execution": one_of("server", "client"), "parameters": or_null(kind("an object"))}, ()),
    # computer, local_shell, programmatic_tool_calling: no fields besides `type`
}

# A custom tool's flags (left out), and its grammar's syntaxes (its format is checked where it is read:
# tools.py: custom_function).
CUSTOM_FLAGS = {"defer_loading": kind("a boolean"), "allowed_callers": _CALLERS}
GRAMMAR_SYNTAXES = ("lark", "regex")

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
