"""The tool search (argoproxy/mcp/tool_search.py) on its own: BM25 ranking finds the tool a task names in a
120-tool catalog; when search applies (auto: past the tool count or the window's share; on; off); the listing it
gives (the search tool and this session's finds, no other session's); its arguments checked."""

from __future__ import annotations

import json

import pytest

from argoproxy.mcp.tool_search import CALLER, DEFINITION, MAX_LIMIT, SEARCH_TOOL, ToolSearch, ranked
from argoproxy.meter.tokens import count_text
from tests.fakes.catalog_mcp_server import CATALOG

TOOLS = [{**t, "name": f"cat__{t['name']}"} for t in CATALOG]


@pytest.mark.parametrize("task, tool", [
    ("open a bug in the issue tracker for the login crash", "cat__issue_create"),
    ("book a meeting with the team in my calendar", "cat__calendar_event_create"),
    ("show me the logs of a kubernetes pod? first list every pod in the namespace", "cat__pod_list"),
    ("export the customer's invoice", "cat__invoice_export"),
    ("review pull request 42 and leave a note", "cat__pull_request_comment"),
    ("delete the old docker image tag from the registry", "cat__container_image_delete"),
    ("read one table of the sql database", "cat__database_table_get"),
])
def test_a_tasks_words_find_its_tool_among_120(task, tool):
    found = [t["name"] for t in ranked(TOOLS, task, 3)]
    assert tool in found, found
    assert found[0].startswith(tool.rsplit("_", 1)[0])  # the right kind of work first


def test_a_query_sharing_no_word_finds_nothing():
    assert ranked(TOOLS, "zzz qqq", 5) == [] and ranked(TOOLS, "  ", 5) == [] and ranked([], "file", 5) == []


def searching(mode="auto", window=8192, most=40):
    return ToolSearch(mode, 0.1, most, window, count_text)


def test_auto_searches_past_the_tool_count_or_the_windows_share():
    few = TOOLS[:5]
    assert searching().applies(TOOLS) and not searching().applies(few)
    assert searching(window=500).applies(few)  # five tools, but more than a tenth of a 500-token window
    assert searching("on").applies(few[:1]) and not searching("off").applies(TOOLS)


def listing(tools):
    return {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}


def test_the_listing_is_the_search_tool_and_the_sessions_finds_alone():
    search = searching()
    assert search.listing(listing(TOOLS), "key:a", "s1")["result"]["tools"] == [DEFINITION, CALLER]
    answer = search.answer(2, {"query": "calendar meeting", "limit": 2}, TOOLS)
    assert search.remember("key:a", "s1", answer) and not search.remember("key:a", "s1", answer)  # new, then not
    assert not search.remember("key:a", "", answer)  # no session (2026-07-28): nothing kept
    found = [t["name"] for t in answer["result"]["structuredContent"]["tools"]]
    assert json.loads(answer["result"]["content"][0]["text"])["tools"][0]["inputSchema"]["properties"]
    assert len(found) == 2 and all(n.startswith("cat__calendar_event_") for n in found)
    shown = [t["name"] for t in search.listing(listing(TOOLS), "key:a", "s1")["result"]["tools"]]
    assert shown == [SEARCH_TOOL, CALLER["name"], *sorted(found, key=[t["name"] for t in TOOLS].index)]
    # another session, or the same id under another key: the search tool alone
    assert search.listing(listing(TOOLS), "key:a", "s2")["result"]["tools"] == [DEFINITION, CALLER]
    assert search.listing(listing(TOOLS), "key:b", "s1")["result"]["tools"] == [DEFINITION, CALLER]
    # a catalog that fits is listed as it is (auto)
    assert search.listing(listing(TOOLS[:3]), "key:a", "s1")["result"]["tools"] == TOOLS[:3]
    # a tool found but no longer the key's (its globs, its server gone) is not shown
    search.mode = "on"
    assert search.listing(listing(TOOLS[:3]), "key:a", "s1")["result"]["tools"] == [DEFINITION, CALLER]


@pytest.mark.parametrize("arguments", [None, {}, {"query": ""}, {"query": 3}, {"query": "file", "limit": 0},
                                       {"query": "file", "limit": MAX_LIMIT + 1}, {"query": "file", "limit": True},
                                       {"query": "file", "limit": "5"}])
def test_bad_arguments_are_a_tool_error(arguments):
    result = searching().answer(1, arguments, TOOLS)["result"]
    assert result["isError"] is True and "must be" in result["content"][0]["text"]


def test_a_long_query_is_read_bounded_and_the_finds_kept_bounded():
    search = searching()
    assert search.answer(1, {"query": "file " * 100_000, "limit": MAX_LIMIT}, TOOLS)["result"]["isError"] is False
    for query in ("email pod wiki", "invoice file issue", "calendar chat pod", "sql table spreadsheet"):
        search.remember("k", "s", search.answer(1, {"query": query, "limit": MAX_LIMIT}, TOOLS))
    assert len(search.found[("k", "s")]) == 64


def test_mcp_tool_call_is_the_call_of_the_tool_it_names():
    from argoproxy.mcp.tool_search import CALL_TOOL, unwrapped
    raw = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": CALL_TOOL, "arguments": {"name": "cat__file_get", "arguments": {"path": "a"}}}}
    assert unwrapped(raw) == {**raw, "params": {"name": "cat__file_get", "arguments": {"path": "a"}}}
    assert unwrapped({**raw, "params": {"name": CALL_TOOL, "arguments": {"name": "cat__file_get"}}})["params"] == {
        "name": "cat__file_get", "arguments": {}}  # none given: an empty object
    for arguments in ({}, {"name": 3}, {"name": SEARCH_TOOL}, {"name": CALL_TOOL}, None,
                      *({"name": "cat__file_get", "arguments": bad} for bad in ("path=a", ["a"], 5, True))):
        assert unwrapped({**raw, "params": {"name": CALL_TOOL, "arguments": arguments}}) is None
