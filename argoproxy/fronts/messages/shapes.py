"""The shapes of what the Messages door accepts and leaves out (prompt caching's `cache_control`, a client tool's
flags, Anthropic-defined tools, citations), checked as Anthropic's API document gives them: a request it refuses is
a 400 here too, naming the field, rather than one passed on with the wrong part silently dropped. What the door
translates is checked where it is translated (request.py, content.py, tools.py). A field the document does not list
is not looked at (left out, not refused): a client newer than the vendored document keeps working."""

from __future__ import annotations

import re
from typing import Any, Callable

from argoproxy.errors import ProxyError
from argoproxy.fronts.fields import (Rule, by_type, checked, fields_of, integer, kind, list_of, number, one_of, or_null,
                                     text)


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


# The request's own fields, as the document types them (NOT_NULL, in request.py, refuses their nulls first):
# those the door leaves out (service_tier, container, inference_geo) and those it passes on, whose bounds are
# Anthropic's rather than the chat request's (temperature and top_p up to 1, not 2).
EFFORTS = ("low", "medium", "high", "xhigh", "max")
OUTPUT_CONFIG = fields_of({"effort": or_null(one_of(*EFFORTS)),
                           "format": or_null(fields_of({"type": one_of("json_schema"), "schema": kind("an object")},
                                                       ("type", "schema")))})
# `thinking`: a budget under the document's minimum of 1,024 tokens is taken (a chat upstream has no minimum).
_DISPLAY = {"display": or_null(one_of("summarized", "omitted"))}
THINKING = by_type({"enabled": fields_of({"budget_tokens": integer(), **_DISPLAY}, ("budget_tokens",)),
                    "adaptive": fields_of(_DISPLAY), "disabled": fields_of({})})
REQUEST = {"service_tier": one_of("auto", "standard_only"), "container": or_null(kind("a string")),
           "inference_geo": or_null(kind("a string")), "temperature": number(0, 1), "top_p": number(0, 1),
           "top_k": integer(0), "stop_sequences": list_of(kind("a string")),
           "metadata": fields_of({"user_id": or_null(text(0, 512))}), "output_config": OUTPUT_CONFIG,
           "thinking": THINKING}
COUNT_REQUEST = {"output_config": OUTPUT_CONFIG, "thinking": THINKING}
TOOL_CHOICE = {"disable_parallel_tool_use": kind("a boolean")}
# The blocks the door drops from the history (a chat upstream takes no reasoning back): their string fields.
DROPPED_BLOCKS = {"thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}
# A document's media_type, required by the document, may be left out: the type of its source says it.
DOCUMENT_SOURCES = {"text": fields_of({"media_type": one_of("text/plain")}),
                    "base64": fields_of({"media_type": one_of("application/pdf")})}
# A citation a text block carries back (as an answer gave it), by its `type`: every field is required.
_CITED = {"cited_text": kind("a string")}
_IN_DOCUMENT = {**_CITED, "document_index": integer(0), "document_title": or_null(text(1, 255))}
CITATIONS = by_type({
    "char_location": fields_of({**_IN_DOCUMENT, "start_char_index": integer(0), "end_char_index": integer()},
                               ("cited_text", "document_index", "document_title", "start_char_index",
                                "end_char_index")),
    "page_location": fields_of({**_IN_DOCUMENT, "start_page_number": integer(1), "end_page_number": integer()},
                               ("cited_text", "document_index", "document_title", "start_page_number",
                                "end_page_number")),
    "content_block_location": fields_of({**_IN_DOCUMENT, "start_block_index": integer(0),
                                         "end_block_index": integer()},
                                        ("cited_text", "document_index", "document_title", "start_block_index",
                                         "end_block_index")),
    "web_search_result_location": fields_of({**_CITED, "encrypted_index": kind("a string"),
                                             "title": or_null(text(1, 512)), "url": text(1, 2048)},
                                            ("cited_text", "encrypted_index", "title", "url")),
    "search_result_location": fields_of({**_CITED, "search_result_index": integer(0), "source": kind("a string"),
                                         "title": or_null(kind("a string")), "start_block_index": integer(0),
                                         "end_block_index": integer()},
                                        ("cited_text", "search_result_index", "source", "title",
                                         "start_block_index", "end_block_index")),
})
# `citations` of a document (or of web fetch's results): whether the answer may cite it.
CITATIONS_CONFIG = or_null(fields_of({"enabled": kind("a boolean")}))
TEXT_BLOCK = {"citations": or_null(list_of(CITATIONS))}
DOCUMENT_BLOCK = {"citations": CITATIONS_CONFIG, "title": or_null(text(1, 500)), "context": or_null(text(1))}
# A search result the client found (its `content`, text blocks, is read where it is translated).
SEARCH_RESULT = {"source": kind("a string"), "title": kind("a string"),
                 "citations": fields_of({"enabled": kind("a boolean")})}  # not null, unlike a document's
SEARCH_RESULT_REQUIRED = ("source", "title", "content")
TOOL_REFERENCE_NAME = re.compile(r"[a-zA-Z0-9_-]{1,256}")  # a tool_reference's `tool_name`
# Anthropic-defined tools the document lists, by `type`: the name each must have, and its own fields (besides
# those every tool shares, tool_flags). A chat upstream runs none of them (they are left out); a type the
# document does not list is left out unchecked.
_DOMAINS = or_null(list_of(kind("a string")))
_WEB_SEARCH = {"max_uses": or_null(integer(1)), "allowed_domains": _DOMAINS, "blocked_domains": _DOMAINS,
               "user_location": or_null(fields_of({"type": one_of("approximate"), "city": or_null(text(1, 255)),
                                                   "region": or_null(text(1, 255)), "country": or_null(text(2, 2)),
                                                   "timezone": or_null(text(1, 255))}, ("type",)))}
_WEB_FETCH = {"max_uses": or_null(integer(1)), "allowed_domains": _DOMAINS, "blocked_domains": _DOMAINS,
              "citations": CITATIONS_CONFIG, "max_content_tokens": or_null(integer(1))}
SERVER_TOOLS: dict[str, tuple[str, dict[str, Rule]]] = {
    "bash_20250124": ("bash", {}),
    "code_execution_20250522": ("code_execution", {}),
    "code_execution_20250825": ("code_execution", {}),
    "code_execution_20260120": ("code_execution", {}),
    "memory_20250818": ("memory", {}),
    "text_editor_20250124": ("str_replace_editor", {}),
    "text_editor_20250429": ("str_replace_based_edit_tool", {}),
    "text_editor_20250728": ("str_replace_based_edit_tool", {"max_characters": or_null(integer(1))}),
    "web_search_20250305": ("web_search", _WEB_SEARCH),
    "web_search_20260209": ("web_search", _WEB_SEARCH),
    "web_fetch_20250910": ("web_fetch", _WEB_FETCH),
    "web_fetch_20260209": ("web_fetch", _WEB_FETCH),
    "web_fetch_20260309": ("web_fetch", {**_WEB_FETCH, "use_cache": kind("a boolean")}),
    "tool_search_tool_bm25_20251119": ("tool_search_tool_bm25", {}),
    "tool_search_tool_bm25": ("tool_search_tool_bm25", {}),
    "tool_search_tool_regex_20251119": ("tool_search_tool_regex", {}),
    "tool_search_tool_regex": ("tool_search_tool_regex", {}),
}


def client_tool(tool: dict[str, Any], where: str, bad: Bad) -> None:
    """A client (custom) tool's fields besides those translated, of their types. A field the document does not
    list is left out, not refused (the API refuses it): a client newer than the vendored document keeps working."""
    if not TOOL_NAME.fullmatch(tool["name"]):
        raise bad("must be 1 to 128 letters, digits, underscores or hyphens.", f"{where}.name")
    input_schema(tool["input_schema"], f"{where}.input_schema", bad)
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


def server_tool(tool: dict[str, Any], where: str, bad: Bad) -> None:
    """An Anthropic-defined tool (left out): the fields every tool shares, and when the document lists its type,
    the name that type must have and its own fields."""
    tool_flags(tool, where, bad)
    if tool["type"] not in SERVER_TOOLS:
        return
    name, rules = SERVER_TOOLS[tool["type"]]
    if tool.get("name") != name:
        raise bad(f"must be {name!r} for a {tool['type']} tool.", f"{where}.name")
    checked(tool, rules, where, bad)


# Written out rather than as rules, like text_fields: a long conversation has hundreds of such blocks, and
# Claude Code dozens of tools, in every request.

def text_fields(block: dict[str, Any], where: str, bad: Bad) -> None:
    """A text block's fields besides its text: `cache_control`, and the `citations` it carries back (left out:
    a chat upstream cites nothing)."""
    if block.get("cache_control") is not None:
        cache_control(block, where, bad)
    if block.get("citations") is not None:
        checked(block, TEXT_BLOCK, where, bad)


def dropped_block(block: dict[str, Any], where: str, bad: Bad) -> None:
    """A thinking or redacted_thinking block (dropped): its fields are strings."""
    for key in DROPPED_BLOCKS[block["type"]]:
        if not isinstance(block.get(key), str):
            raise bad("Field required: a string." if block.get(key) is None else "must be a string.",
                      f"{where}.{key}")


def input_schema(schema: dict[str, Any], where: str, bad: Bad) -> None:
    """A client tool's input_schema: an object schema, its `properties` an object, its `required` names."""
    if schema.get("type") != "object":
        raise bad("must be \"object\".", f"{where}.type")
    properties, required = schema.get("properties"), schema.get("required")
    if properties is not None and not isinstance(properties, dict):
        raise bad("must be an object.", f"{where}.properties")
    if required is not None and (not isinstance(required, list) or not all(isinstance(n, str) for n in required)):
        raise bad("must be a list of strings.", f"{where}.required")
