"""`input`'s items as chat messages (argoproxy/fronts/responses/input_items.py): replayed tool calls and
their outputs, screenshots, statuses, unknown types."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.responses.request import request_to_chat
from tests.unit.fronts.responses.test_request import FRONT
from tests.unit.fronts.responses.test_tools import CODEX_TOOLS


def test_codex_history_items_replay_as_chat_tool_calls():
    chat, ex = FRONT.to_chat({"model": "m", "tools": CODEX_TOOLS, "input": [
        {"role": "user", "content": "fix it"},
        {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_p", "name": "apply_patch", "input": "*** Begin"},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
        {"type": "local_shell_call", "id": "lsh_1", "call_id": "call_s", "status": "completed",
         "action": {"type": "exec", "command": ["ls"]}},
        {"type": "local_shell_call_output", "id": "lsh_1", "output": "a.py"},
        {"type": "function_call", "call_id": "call_d", "name": "search", "namespace": "mcp__docs", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_d", "output": "found"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
        {"type": "additional_tools", "role": "developer", "tools": [{"type": "function", "name": "late"}]}]})
    messages = chat["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "apply_patch", "arguments": '{"input": "*** Begin"}'}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_p", "content": "Done!"}
    shell = messages[3]["tool_calls"][0]
    assert shell["id"] == "call_s" and shell["function"]["name"] == "local_shell"
    assert '"command": ["ls"]' in shell["function"]["arguments"]
    assert messages[4] == {"role": "tool", "tool_call_id": "call_s", "content": "a.py"}  # named by item id
    assert messages[5]["tool_calls"][0]["function"]["name"] == "mcp__docs__search"
    assert [t["function"]["name"] for t in chat["tools"]][-1] == "late"
    assert "web_search_call" in ex.dropped


def test_computer_calls_replay_as_chat_tool_calls_and_their_screenshots_as_images():
    """A computer-use history was refused: its calls are the client's, like a local shell's, and a screenshot is
    an image a chat upstream with vision reads. Parallel calls' tool messages stay together, the screenshots
    after them."""
    shot = {"type": "computer_screenshot", "image_url": "data:image/png;base64,AAAA"}
    chat = request_to_chat({"model": "m", "tools": [{"type": "computer_use_preview", "environment": "browser",
                                                     "display_width": 800, "display_height": 600}], "input": [
        {"role": "user", "content": "open the page"},
        {"type": "computer_call", "id": "cu_1", "call_id": "call_a", "status": "completed",
         "action": {"type": "click", "button": "left", "x": 5, "y": 6}, "pending_safety_checks": []},
        {"type": "computer_call", "id": "cu_2", "call_id": "call_b", "status": "completed",
         "action": {"type": "screenshot"}, "pending_safety_checks": []},
        {"type": "computer_call_output", "call_id": "call_a", "output": shot},
        {"type": "computer_call_output", "call_id": "call_b", "output": {**shot, "image_url": "https://x/b.png"},
         "acknowledged_safety_checks": None}]})
    messages = chat["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    calls = messages[1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_a", "call_b"] and calls[0]["function"]["name"] == "computer"
    assert '"action": {"type": "click", "button": "left", "x": 5, "y": 6}' in calls[0]["function"]["arguments"]
    assert [m["tool_call_id"] for m in messages[2:4]] == ["call_a", "call_b"]
    assert messages[4]["content"] == [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                      {"type": "image_url", "image_url": {"url": "https://x/b.png"}}]


@pytest.mark.parametrize("item", [
    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "status": "done"},
    {"type": "function_call_output", "call_id": "c1", "output": "r", "status": "failed"},
    {"type": "reasoning", "summary": [], "status": 1},
    {"type": "apply_patch_call_output", "call_id": "c1", "output": "ok", "status": "incomplete"},
    {"type": "web_search_call", "id": "ws_1", "status": "interpreting"},
    {"type": "message", "role": "user", "content": "hi", "status": False},
])
def test_an_input_items_status_is_one_of_its_types_values(item):
    """The door does not read `status`, but the document gives each item type its values: another was taken."""
    with pytest.raises(ProxyError) as info:
        request_to_chat({"model": "m", "input": [{"role": "user", "content": "hi"}, item]})
    assert info.value.status == 400 and info.value.param == "input[1].status"


def test_the_statuses_the_document_gives_are_taken():
    items = [{"type": "message", "role": "user", "content": "hi", "status": "any string"},  # both documents: any
             {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "status": "completed"},
             {"type": "function_call_output", "call_id": "c1", "output": "r", "status": None},
             {"type": "reasoning", "summary": [], "status": "incomplete"},
             {"type": "web_search_call", "id": "ws_1", "status": "searching"}]
    assert [m["role"] for m in request_to_chat({"model": "m", "input": items})["messages"]] == [
        "user", "assistant", "tool"]


def test_an_input_item_of_an_empty_type_is_named_as_it_came():
    with pytest.raises(ProxyError) as info:
        request_to_chat({"model": "m", "input": [{"type": "", "content": "x"}]})
    assert "of type ''" in info.value.message and info.value.param == "input[0].type"
