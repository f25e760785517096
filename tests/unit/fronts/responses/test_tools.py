"""The tools over a chat backend (argoproxy/fronts/responses/tools.py, shapes.py): Codex's, MCP, hosted and
built-in ones mapped or left out, their fields checked."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.responses.request import request_to_chat
from tests.unit.fronts.responses.test_request import FRONT, chunk
from tests.unit.fronts.responses.test_stream import shape


APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files.",
               "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}}
CODEX_TOOLS = [{"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": False},
               APPLY_PATCH, {"type": "web_search"}, {"type": "local_shell"}, {"type": "image_generation"},
               {"type": "namespace", "name": "mcp__docs", "description": "Docs server",
                "tools": [{"type": "function", "name": "search", "parameters": {"type": "object"}}]}]


def test_codex_tools_map_or_drop():
    """Function tools pass; custom tools become one-string functions (the grammar in the description);
    namespaced functions are flattened; hosted and built-in tools are dropped and named in `dropped`."""
    chat, ex = FRONT.to_chat({"model": "m", "input": "x", "tools": CODEX_TOOLS, "tool_choice": "auto",
                              "parallel_tool_calls": False})
    functions = {t["function"]["name"]: t["function"] for t in chat["tools"]}
    assert list(functions) == ["shell", "apply_patch", "mcp__docs__search"]
    patch = functions["apply_patch"]
    assert patch["parameters"]["required"] == ["input"] and patch["parameters"]["properties"]["input"]["type"] == "string"
    assert patch["description"].startswith("Edit files.") and "begin_patch hunk+" in patch["description"]
    assert ex.dropped == ("web_search", "local_shell", "image_generation")
    assert chat["tool_choice"] == "auto" and chat["parallel_tool_calls"] is False


def test_only_hosted_tools_leave_no_tools_and_no_choice():
    chat, ex = FRONT.to_chat({"model": "m", "input": "x", "tools": [{"type": "web_search_preview"}],
                              "tool_choice": {"type": "web_search_preview"}, "parallel_tool_calls": True})
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat
    assert ex.dropped == ("web_search_preview",)
    chat, _ = FRONT.to_chat({"model": "m", "input": "x", "tools": [APPLY_PATCH],
                             "tool_choice": {"type": "custom", "name": "apply_patch"}})
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}


def test_a_streamed_custom_call_sends_its_input_events():
    _, ex = FRONT.to_chat({"model": "m", "input": "x", "tools": CODEX_TOOLS, "stream": True})
    chunks = [chunk({"tool_calls": [{"index": 0, "id": "call_p", "type": "function",
                                     "function": {"name": "apply_patch", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"input": "*** Be'}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'gin"}'}}]}),
              chunk(finish="tool_calls")]
    events = list(FRONT.stream(iter(chunks), ex))
    assert shape(events) == [
        ("response.created", None, None), ("response.in_progress", None, None),
        ("response.output_item.added", 0, None), ("response.custom_tool_call_input.delta", 0, None),
        ("response.custom_tool_call_input.done", 0, None), ("response.output_item.done", 0, None),
        ("response.completed", None, None)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added, done = events[2]["item"], events[5]["item"]
    assert added["type"] == "custom_tool_call" and added["input"] == "" and added["status"] == "in_progress"
    assert events[3]["delta"] == "*** Begin" and events[4]["input"] == "*** Begin"
    assert done == {**added, "input": "*** Begin", "status": "completed"}
    assert events[-1]["response"]["output"] == [done]


def test_allowed_tools_offers_only_the_tools_it_lists():
    tools = [{"type": "function", "name": n, "parameters": {"type": "object"}} for n in ("read_file", "delete_file")]
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "read_file"},
                                                                     {"type": "mcp", "server_label": "docs"}]}
    chat, _ = FRONT.to_chat({"model": "m", "input": "x", "tools": tools, "tool_choice": choice,
                             "parallel_tool_calls": False})
    assert [t["function"]["name"] for t in chat["tools"]] == ["read_file"] and chat["tool_choice"] == "required"
    chat, _ = FRONT.to_chat({"model": "m", "input": "x", "tools": tools, "parallel_tool_calls": False,
                             "tool_choice": {**choice, "tools": [{"type": "mcp", "server_label": "docs"}]}})
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat
    with pytest.raises(ProxyError) as bad:
        FRONT.to_chat({"model": "m", "input": "x", "tools": tools, "tool_choice": {**choice, "tools": "read_file"}})
    assert bad.value.param == "tool_choice.tools"


MCP = {"type": "mcp", "server_label": "docs"}


@pytest.mark.parametrize("tool,param", [
    ({"type": "mcp"}, "server_label"),
    ({**MCP, "server_label": None}, "server_label"),
    ({**MCP, "server_url": 5}, "server_url"),
    ({**MCP, "connector_id": "connector_myspace"}, "connector_id"),
    ({**MCP, "tunnel_id": "tunnel_ABC"}, "tunnel_id"),
    ({**MCP, "headers": {"X-Key": 1}}, "headers.X-Key"),
    ({**MCP, "headers": "X-Key: 1"}, "headers"),
    ({**MCP, "allowed_tools": "search"}, "allowed_tools"),
    ({**MCP, "allowed_tools": ["search", 1]}, "allowed_tools[1]"),
    ({**MCP, "allowed_tools": {"read_only": "yes"}}, "allowed_tools.read_only"),
    ({**MCP, "require_approval": "sometimes"}, "require_approval"),
    ({**MCP, "require_approval": {"never": {"tool_names": "search"}}}, "require_approval.never.tool_names"),
    ({**MCP, "defer_loading": "no"}, "defer_loading"),
    ({**MCP, "allowed_callers": ["anyone"]}, "allowed_callers[0]"),
])
def test_an_mcp_tools_fields_are_checked_though_it_is_left_out(tool, param):
    """A hosted MCP tool has no chat form and is left out, but its fields are the document's: a wrong one was
    dropped with it (and, the tools being echoed, a null server_label came back in the response object)."""
    with pytest.raises(ProxyError) as info:
        request_to_chat({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}, tool]})
    assert info.value.status == 400 and info.value.param == f"tools[1].{param}"


def test_a_well_formed_mcp_tool_is_still_left_out():
    tool = {**MCP, "server_url": "https://mcp.example.com", "headers": {"X-Key": "k"}, "allowed_tools": ["search"],
            "require_approval": {"never": {"tool_names": ["search"], "read_only": True}}, "allowed_callers": None,
            "tunnel_id": "tunnel_" + "a1" * 16, "connector_id": "connector_gmail", "defer_loading": False,
            "newer_field": 1}
    chat = request_to_chat({"model": "m", "input": "hi", "tools": [tool, {"type": "function", "name": "f"}]})
    assert [t["function"]["name"] for t in chat["tools"]] == ["f"]


WEB = {"type": "web_search"}
FILES = {"type": "file_search", "vector_store_ids": ["vs_1"]}
CODE = {"type": "code_interpreter", "container": {"type": "auto"}}
COMPUTER = {"type": "computer_use_preview", "environment": "browser", "display_width": 1024, "display_height": 768}
IMAGES = {"type": "image_generation"}
SHELL = {"type": "shell"}
CUSTOM = {"type": "custom", "name": "apply_patch"}


@pytest.mark.parametrize("tool,param", [
    ({**WEB, "search_context_size": "huge"}, "search_context_size"),
    ({**WEB, "external_web_access": "yes"}, "external_web_access"),
    ({**WEB, "filters": {"allowed_domains": "example.com"}}, "filters.allowed_domains"),
    ({**WEB, "user_location": {"type": "exact"}}, "user_location.type"),
    ({"type": "web_search_2025_08_26", "user_location": {"city": 5}}, "user_location.city"),
    ({"type": "web_search_preview", "search_content_types": ["video"]}, "search_content_types[0]"),
    ({"type": "web_search_preview_2025_03_11", "user_location": {"city": "Paris"}}, "user_location.type"),
    ({"type": "file_search"}, "vector_store_ids"),
    ({**FILES, "vector_store_ids": "vs_1"}, "vector_store_ids"),
    ({**FILES, "max_num_results": "5"}, "max_num_results"),
    ({**FILES, "filters": {"type": "eq", "key": "k"}}, "filters.value"),
    ({**FILES, "filters": {"type": "like", "key": "k", "value": "v"}}, "filters.type"),
    ({**FILES, "filters": {"type": "in", "key": "k", "value": [True]}}, "filters.value[0]"),
    ({**FILES, "filters": {"type": "and", "filters": [{"type": "in", "key": "k"}]}}, "filters.filters[0].value"),
    ({**FILES, "ranking_options": {"ranker": "best"}}, "ranking_options.ranker"),
    ({**FILES, "ranking_options": {"hybrid_search": {"text_weight": 1}}},
     "ranking_options.hybrid_search.embedding_weight"),
    ({"type": "code_interpreter"}, "container"),
    ({**CODE, "container": {"type": "manual"}}, "container.type"),
    ({**CODE, "container": {"type": "auto", "memory_limit": "2g"}}, "container.memory_limit"),
    ({**CODE, "container": {"type": "auto", "file_ids": ["f"] * 51}}, "container.file_ids"),
    ({**CODE, "container": {"type": "auto", "network_policy": {"type": "allowlist", "allowed_domains": []}}},
     "container.network_policy.allowed_domains"),
    ({**CODE, "allowed_callers": []}, "allowed_callers"),
    ({**IMAGES, "quality": "best"}, "quality"),
    ({**IMAGES, "output_compression": 101}, "output_compression"),
    ({**IMAGES, "partial_images": 4}, "partial_images"),
    ({**IMAGES, "input_image_mask": {"image_url": 5}}, "input_image_mask.image_url"),
    ({"type": "computer_use_preview", "environment": "browser", "display_width": 1024}, "display_height"),
    ({**COMPUTER, "environment": "android"}, "environment"),
    ({**COMPUTER, "display_width": 10.5}, "display_width"),
    ({**SHELL, "environment": {"type": "container_reference"}}, "environment.container_id"),
    ({**SHELL, "environment": {"type": "local", "skills": [{"name": "s", "path": "/p"}]}},
     "environment.skills[0].description"),
    ({**SHELL, "environment": {"type": "container_auto", "skills": [{"type": "skill_reference", "skill_id": ""}]}},
     "environment.skills[0].skill_id"),
    ({"type": "apply_patch", "allowed_callers": ["anyone"]}, "allowed_callers[0]"),
    ({"type": "tool_search", "execution": "remote"}, "execution"),
    ({**CUSTOM, "format": {"type": "grammar", "syntax": "ebnf", "definition": "x"}}, "format.syntax"),
    ({**CUSTOM, "format": {"type": "grammar", "syntax": "lark"}}, "format.definition"),
    ({**CUSTOM, "format": {"type": "json"}}, "format.type"),
    ({**CUSTOM, "defer_loading": "no"}, "defer_loading"),
])
def test_hosted_and_built_in_tools_fields_are_checked_though_they_are_left_out(tool, param):
    """Hosted and built-in tools have no chat form and are left out (a custom tool becomes a function), but their
    fields are the document's: a wrong one was dropped with the tool."""
    with pytest.raises(ProxyError) as info:
        request_to_chat({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}, tool]})
    assert info.value.status == 400 and info.value.param == f"tools[1].{param}"


def test_well_formed_hosted_tools_are_still_left_out():
    """What Codex and the Agents SDK send, and every field the document gives, is taken (a field it does not list
    too: a client newer than the vendored document)."""
    tools = [{**WEB, "external_web_access": False, "search_context_size": "low", "filters": {"allowed_domains": None},
              "user_location": {"type": "approximate", "city": "Paris", "country": None}, "newer_field": 1},
             {"type": "web_search_preview", "search_content_types": ["text", "image"],
              "user_location": {"type": "approximate", "timezone": "Europe/Paris"}},
             {**FILES, "max_num_results": 5, "ranking_options": {"ranker": "auto", "score_threshold": 0.5,
                                                                 "hybrid_search": {"embedding_weight": 1,
                                                                                   "text_weight": 0.5}},
              "filters": {"type": "or", "filters": [{"type": "eq", "key": "k", "value": True},
                                                    {"type": "and", "filters": [
                                                        {"type": "nin", "key": "n", "value": ["a", 1]}]}]}},
             {**CODE, "container": "cntr_1"},
             {**CODE, "allowed_callers": ["direct"], "container": {
                 "type": "auto", "file_ids": ["f"], "memory_limit": "4g", "network_policy": {
                     "type": "allowlist", "allowed_domains": ["pypi.org"],
                     "domain_secrets": [{"domain": "pypi.org", "name": "TOKEN", "value": "t"}]}}},
             {**IMAGES, "quality": "high", "size": "1024x1024", "output_compression": 100, "partial_images": 0,
              "model": "gpt-image-1", "input_fidelity": None, "input_image_mask": {"file_id": "f"}},
             COMPUTER, {"type": "computer"}, {"type": "local_shell"}, {"type": "programmatic_tool_calling"},
             {**SHELL, "environment": {"type": "local", "skills": [{"name": "s", "description": "d", "path": "/p"}]}},
             {**SHELL, "environment": {"type": "container_auto", "skills": [
                 {"type": "skill_reference", "skill_id": "sk_1"},
                 {"type": "inline", "name": "n", "description": "d",
                  "source": {"type": "base64", "media_type": "application/zip", "data": "UEsD"}}]}},
             {"type": "apply_patch"}, {"type": "tool_search", "execution": "client", "parameters": None},
             {"type": "a_tool_from_next_year", "anything": 1},
             {**CUSTOM, "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"},
              "defer_loading": False}]
    chat = request_to_chat({"model": "m", "input": "hi", "tools": tools})
    assert [t["function"]["name"] for t in chat["tools"]] == ["apply_patch"]
