"""What the door leaves out is checked as Anthropic's document types it (argoproxy/fronts/messages/shapes.py)."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.messages.request import request_to_chat


@pytest.mark.parametrize("key", ["temperature", "top_p", "top_k", "system", "metadata", "stop_sequences", "tools",
                                 "tool_choice", "thinking", "stream", "output_config", "service_tier"])
def test_a_null_the_document_does_not_allow_is_refused_naming_the_field(key):
    """Anthropic's document types these without null, and its API refuses one: the door read null as the field
    left out (the conformance bench's "a refused request refused" failed on each)."""
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], key: None}
    with pytest.raises(ProxyError) as err:
        request_to_chat(body)
    assert err.value.status == 400 and err.value.message.startswith(f"{key}: must not be null")


def test_the_nulls_the_document_allows_are_taken():
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "cache_control": None,
            "container": None, "inference_geo": None}
    assert request_to_chat(body)["messages"] == [{"role": "user", "content": "hi"}]
    counted = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": None}
    assert request_to_chat(counted, count_only=True)["model"] == "m"  # count_tokens has no max_tokens to type


@pytest.mark.parametrize("flag,value,param", [("strict", "yes", "strict"), ("defer_loading", 1, "defer_loading"),
                                              ("cache_control", {"type": 1}, "cache_control.type"),
                                              ("allowed_callers", [5], "allowed_callers"),
                                              ("input_examples", "x", "input_examples")])
def test_an_anthropic_defined_tools_shared_fields_are_checked_though_it_is_left_out(flag, value, param):
    """A server tool (bash, web search...) has no chat form and is left out, but its fields shared with client
    tools are the document's like theirs: a wrong one was passed over (the conformance bench's largest group)."""
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "bash_20250124", "name": "bash", flag: value}]}
    with pytest.raises(ProxyError) as err:
        request_to_chat(body)
    assert err.value.message.startswith(f"tools.0.{param}:")
    body["tools"][0].pop(flag)
    assert "tools" not in request_to_chat(body)  # well formed: left out, as before


def refused_at(body: dict, count_only: bool = False) -> str:
    """The field a refused request's 400 names (the message's prefix, as Anthropic words it)."""
    with pytest.raises(ProxyError) as err:
        request_to_chat(body, count_only=count_only)
    assert err.value.status == 400
    return err.value.message.split(":", 1)[0]


def _with_tool(tool: dict) -> dict:
    return {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}


WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch"}


@pytest.mark.parametrize("tool,param", [
    ({**WEB_SEARCH, "max_uses": 0}, "max_uses"),
    ({**WEB_SEARCH, "max_uses": "5"}, "max_uses"),
    ({**WEB_SEARCH, "allowed_domains": "example.com"}, "allowed_domains"),
    ({**WEB_SEARCH, "allowed_domains": ["example.com", 5]}, "allowed_domains.1"),
    ({**WEB_SEARCH, "blocked_domains": {}}, "blocked_domains"),
    ({**WEB_SEARCH, "user_location": "Paris"}, "user_location"),
    ({**WEB_SEARCH, "user_location": {"city": "Paris"}}, "user_location.type"),
    ({**WEB_SEARCH, "user_location": {"type": "exact"}}, "user_location.type"),
    ({**WEB_SEARCH, "user_location": {"type": "approximate", "country": "FRA"}}, "user_location.country"),
    ({**WEB_SEARCH, "user_location": {"type": "approximate", "city": ""}}, "user_location.city"),
    ({**WEB_SEARCH, "user_location": {"type": "approximate", "timezone": 1}}, "user_location.timezone"),
    ({**WEB_SEARCH, "name": "search"}, "name"),
    ({"type": "web_search_20260209"}, "name"),
    ({**WEB_FETCH, "max_content_tokens": -1}, "max_content_tokens"),
    ({**WEB_FETCH, "citations": {"enabled": "yes"}}, "citations.enabled"),
    ({**WEB_FETCH, "citations": True}, "citations"),
    ({**WEB_FETCH, "max_uses": 1.5}, "max_uses"),
    ({"type": "web_fetch_20260309", "name": "web_fetch", "use_cache": "no"}, "use_cache"),
    ({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": 0}, "max_characters"),
    ({"type": "text_editor_20250124", "name": "str_replace_based_edit_tool"}, "name"),
    ({"type": "bash_20250124", "name": "shell"}, "name"),
])
def test_an_anthropic_defined_tools_own_fields_are_checked_though_it_is_left_out(tool, param):
    """Each server tool's own fields, as the document gives them for its type (web search's max_uses, domains and
    user_location, web fetch's token bound and citations...), and the name its type must have: a wrong one was
    dropped with the tool and the request answered; Anthropic's API refuses it."""
    assert refused_at(_with_tool(tool)) == f"tools.0.{param}"


def test_well_formed_anthropic_defined_tools_are_still_left_out():
    """What the document takes for each type is still accepted and left out (a chat upstream runs none), and a
    type newer than the vendored document is left out unchecked."""
    tools = [{**WEB_SEARCH, "max_uses": 8, "allowed_domains": ["example.com"], "blocked_domains": None,
              "user_location": {"type": "approximate", "city": "Paris", "country": "FR", "region": None,
                                "timezone": "Europe/Paris"}, "cache_control": {"type": "ephemeral"}},
             {**WEB_FETCH, "max_uses": None, "max_content_tokens": 1000, "citations": {"enabled": True}},
             {"type": "web_fetch_20260309", "name": "web_fetch", "use_cache": False, "citations": None},
             {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": 1},
             {"type": "tool_search_tool_regex", "name": "tool_search_tool_regex"},
             {"type": "computer_20250124", "name": "computer", "display_width_px": 1024},
             {"name": "Read", "input_schema": {"type": "object"}}]
    dropped: dict[str, None] = {}
    chat = request_to_chat({**_with_tool(tools[0]), "tools": tools}, dropped=dropped)
    assert [t["function"]["name"] for t in chat["tools"]] == ["Read"]
    assert list(dropped) == ["web_search_20250305", "web_fetch_20250910", "web_fetch_20260309",
                             "text_editor_20250728", "tool_search_tool_regex", "computer_20250124"]


CHAR = {"type": "char_location", "cited_text": "a", "document_index": 0, "document_title": None,
        "start_char_index": 0, "end_char_index": 1}


def _user(*blocks: dict) -> dict:
    return {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": list(blocks)}]}


@pytest.mark.parametrize("citations,param", [
    ("a", "citations"),
    ({}, "citations"),
    ([5], "citations.0"),
    ([{"type": "paragraph"}], "citations.0.type"),
    ([{k: v for k, v in CHAR.items() if k != "end_char_index"}], "citations.0.end_char_index"),
    ([{k: v for k, v in CHAR.items() if k != "document_title"}], "citations.0.document_title"),
    ([{**CHAR, "start_char_index": -1}], "citations.0.start_char_index"),
    ([{**CHAR, "document_index": "0"}], "citations.0.document_index"),
    ([{**CHAR, "document_title": ""}], "citations.0.document_title"),
    ([{**CHAR, "cited_text": None}], "citations.0.cited_text"),
    ([CHAR, {**CHAR, "type": "page_location", "start_page_number": 0, "end_page_number": 1}],
     "citations.1.start_page_number"),
    ([{**CHAR, "type": "content_block_location", "start_block_index": 0}], "citations.0.end_block_index"),
    ([{"type": "web_search_result_location", "cited_text": "a", "encrypted_index": "e", "title": None, "url": ""}],
     "citations.0.url"),
    ([{"type": "web_search_result_location", "cited_text": "a", "encrypted_index": "e", "url": "https://x"}],
     "citations.0.title"),
    ([{"type": "search_result_location", "cited_text": "a", "search_result_index": 0, "source": 5, "title": None,
       "start_block_index": 0, "end_block_index": 0}], "citations.0.source"),
])
def test_a_text_blocks_citations_are_checked_though_they_are_left_out(citations, param):
    """A text block's `citations` (given back as an answer carried them) as the document types each kind: a
    malformed one was dropped and the request answered, wherever the text block was."""
    block = {"type": "text", "text": "t", "citations": citations}
    assert refused_at(_user(block)) == f"messages.0.content.0.{param}"
    assistant = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": [block]}, {"role": "user", "content": "r"}]}
    assert refused_at(assistant) == f"messages.1.content.0.{param}"
    assert refused_at({**_user({"type": "text", "text": "t"}), "system": [block]}) == f"system.0.{param}"
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [block]}
    assert refused_at(_user(result)) == f"messages.0.content.0.content.0.{param}"
    document = {"type": "document", "source": {"type": "content", "content": [block]}}
    assert refused_at(_user(document)) == f"messages.0.content.0.source.content.0.{param}"
    assert refused_at(_user(block), count_only=True) == f"messages.0.content.0.{param}"


@pytest.mark.parametrize("field,value,param", [
    ("citations", {"enabled": 1}, "citations.enabled"),
    ("citations", [], "citations"),
    ("title", "", "title"),
    ("title", "t" * 501, "title"),
    ("context", "", "context"),
    ("context", 5, "context"),
])
def test_a_documents_citations_config_title_and_context_are_checked(field, value, param):
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}, field: value}
    assert refused_at(_user(document)) == f"messages.0.content.0.{param}"


def test_well_formed_citations_are_accepted_and_left_out():
    cited = [CHAR, {**CHAR, "type": "page_location", "document_title": "Doc", "start_page_number": 1,
                    "end_page_number": 2},
             {**CHAR, "type": "content_block_location", "start_block_index": 0, "end_block_index": 1},
             {"type": "web_search_result_location", "cited_text": "a", "encrypted_index": "e", "title": None,
              "url": "https://example.com"},
             {"type": "search_result_location", "cited_text": "a", "search_result_index": 0, "source": "s",
              "title": None, "start_block_index": 0, "end_block_index": 0, "newer_field": 1}]
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"},
                "citations": {"enabled": True}, "title": "Doc", "context": None}
    body = _user({"type": "text", "text": "t", "citations": cited}, {"type": "text", "text": "u", "citations": None},
                 document)
    assert request_to_chat(body)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "t"}, {"type": "text", "text": "u"}, {"type": "text", "text": "Doc\n\nd"}]}]


@pytest.mark.parametrize("field,value,param", [
    ("service_tier", "priority", "service_tier"),
    ("container", 5, "container"),
    ("inference_geo", ["us"], "inference_geo"),
    ("temperature", 1.5, "temperature"),
    ("top_p", -0.1, "top_p"),
    ("top_k", -1, "top_k"),
    ("stop_sequences", "", "stop_sequences"),
    ("metadata", {"user_id": "u" * 513}, "metadata.user_id"),
    ("output_config", {"effort": "extreme"}, "output_config.effort"),
    ("output_config", {"format": {"type": "xml", "schema": {}}}, "output_config.format.type"),
    ("thinking", {"type": "on"}, "thinking.type"),
    ("thinking", {"type": "enabled"}, "thinking.budget_tokens"),
    ("thinking", {"type": "enabled", "budget_tokens": "4k"}, "thinking.budget_tokens"),
    ("thinking", {"type": "adaptive", "display": "full"}, "thinking.display"),
    ("tool_choice", {"type": "auto", "disable_parallel_tool_use": None}, "tool_choice.disable_parallel_tool_use"),
])
def test_the_requests_own_fields_are_checked_as_the_document_types_them(field, value, param):
    """Fields the door leaves out (service_tier, container...) or whose bounds are Anthropic's rather than the
    chat request's (temperature up to 1, not 2): a value the document refuses was taken."""
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], field: value}
    assert refused_at(body) == param


@pytest.mark.parametrize("block,param", [
    ({"type": "thinking", "thinking": "t"}, "signature"),
    ({"type": "thinking", "thinking": 5, "signature": "s"}, "thinking"),
    ({"type": "redacted_thinking"}, "data"),
    ({"type": "document", "source": {"type": "text", "media_type": "text/html", "data": "d"}}, "source.media_type"),
    ({"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": "JVBE"}},
     "source.media_type"),
])
def test_blocks_left_out_and_document_sources_are_checked(block, param):
    """Thinking blocks are dropped from the history, and a document's media_type is not sent on: a wrong one was
    taken."""
    body = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": [block, {"type": "text", "text": "a"}]},
        {"role": "user", "content": [block, {"type": "text", "text": "r"}]}]}
    if block["type"] == "document":  # a user's block only
        body["messages"] = body["messages"][2:]
        assert refused_at(body) == f"messages.0.content.0.{param}"
        return
    assert refused_at(body) == f"messages.1.content.0.{param}"
    body["messages"][1]["content"] = "a"
    assert refused_at(body) == f"messages.2.content.0.{param}"


@pytest.mark.parametrize("schema,param", [
    ({"properties": {}}, "input_schema.type"),
    ({"type": "array"}, "input_schema.type"),
    ({"type": "object", "properties": []}, "input_schema.properties"),
    ({"type": "object", "required": "city"}, "input_schema.required"),
])
def test_a_client_tools_input_schema_is_an_object_schema(schema, param):
    body = _with_tool({"name": "get", "input_schema": schema})
    assert refused_at(body) == f"tools.0.{param}"


def test_what_claude_code_and_the_sdk_send_is_still_taken():
    """The values the document takes for the fields now checked, as Claude Code and the SDK send them."""
    body = {"model": "m", "max_tokens": 32000, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                          {"type": "redacted_thinking", "data": "d"}, {"type": "text", "text": "a"}]},
        {"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "d"}}]}],
        "temperature": 1, "top_p": 0.99, "top_k": 0, "stop_sequences": [], "service_tier": "auto",
        "container": None, "inference_geo": "us", "metadata": {"user_id": "u"},
        "output_config": {"effort": "xhigh", "format": None}, "thinking": {"type": "enabled", "budget_tokens": 512},
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": False},
        "tools": [{"name": "get", "input_schema": {"type": "object", "properties": None, "required": ["a"]}}]}
    assert request_to_chat(body)["messages"][1] == {"role": "assistant", "content": "a"}
    for thinking in ({"type": "adaptive", "display": "omitted"}, {"type": "disabled"}):
        request_to_chat({**body, "thinking": thinking})
