"""The Responses front door's translations, without HTTP: requests to chat, answers and streams back."""

from __future__ import annotations

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import COMPACT, Exchange, Pieces
from argoproxy.fronts.responses import ResponsesFront, ResponseStream, chat_to_response, request_to_chat
from tests.fakes.fake_upstream import interleaved_tool_calls

FRONT = ResponsesFront()
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta=None, finish=None, usage=None):
    obj = {**BASE, "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    if usage is not None:
        obj = {**BASE, "choices": [], "usage": usage}
    return obj


USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16,
         "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2}}


def exchange(**request):
    body = {"model": "m", "input": "hi", **request}
    return FRONT.to_chat(body)[1]


# ------------------------------------------------------------------ requests

def test_string_input_and_instructions():
    chat = request_to_chat({"model": "m", "input": "hello", "instructions": "be brief", "max_output_tokens": 50,
                            "temperature": 0.2, "top_p": 0.9})
    assert chat == {"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "hello"}],
                    "temperature": 0.2, "top_p": 0.9, "max_tokens": 50}


def test_items_with_images_and_a_function_round_trip():
    chat = request_to_chat({"model": "m", "stream": True, "input": [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{\"a\":1}"},
        {"type": "function_call", "call_id": "call_2", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}]},
        {"role": "user", "content": "and tomorrow?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_3", "name": "look", "arguments": "{}"},
    ]})
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["messages"] == [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "", "tool_calls": [  # not null: llama.cpp refuses it
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"a\":1}"}},
            {"id": "call_2", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "and tomorrow?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [  # a turn's text and its calls: one message
            {"id": "call_3", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
    ]


def test_tools_choice_formats_and_reasoning():
    chat = request_to_chat({"model": "m", "input": "x", "parallel_tool_calls": False,
                            "tools": [{"type": "function", "name": "f", "description": "d",
                                       "parameters": {"type": "object"}, "strict": True}],
                            "tool_choice": {"type": "function", "name": "f"},
                            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"},
                                                "strict": True}},
                            "reasoning": {"effort": "low", "summary": "auto"}})
    assert chat["tools"] == [{"type": "function", "function": {"name": "f", "description": "d",
                                                               "parameters": {"type": "object"}, "strict": True}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "out",
                                                                              "schema": {"type": "object"},
                                                                              "strict": True}}
    assert chat["reasoning_effort"] == "low"
    assert request_to_chat({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}})[
        "response_format"] == {"type": "json_object"}
    assert "response_format" not in request_to_chat({"model": "m", "input": "x", "text": {"format": {"type": "text"}}})


@pytest.mark.parametrize("body, param", [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"model": "m", "input": [{"id": "msg_1"}]}, "input[0].id"),  # a reference without `type`: its id
    ({"model": "m", "input": [{"type": 0, "id": "msg_1"}]}, "input[0].type"),  # not a missing type: not a string
    ({"model": "m", "input": [{"type": False, "content": "x"}]}, "input[0].type"),
    ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c", "output": {
        "type": "computer_screenshot", "file_id": "file_1"}}]}, "input[0].output.image_url"),
    ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c", "output": {
        "type": "screenshot", "image_url": "https://x/a.png"}}]}, "input[0].output.type"),
    ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].output"),
    ({"model": "m", "input": "x", "tools": [{"type": "custom"}]}, "tools[0].name"),
    ({"model": "m", "input": "x", "tools": [{"name": "f", "parameters": {}}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "tools": [{"type": "namespace", "name": "crm"}]}, "tools[0].tools"),
    ({"model": "m", "input": [{"type": "custom_tool_call", "name": "apply_patch", "input": "x"}]}, "input[0].call_id"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].image_url"),
    ({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "function"}}, "tool_choice"),
])
def test_bad_requests_name_the_parameter(body, param):
    with pytest.raises(ProxyError) as info:
        request_to_chat(body)
    assert info.value.status == 400 and info.value.param == param


# ------------------------------------------------------------------ whole answers

def test_whole_answer_with_reasoning_text_and_calls():
    completion = {"id": "c", "object": "chat.completion", "created": 1, "model": "upstream-name", "usage": USAGE,
                  "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                      "role": "assistant", "content": "Let me look.", "reasoning_content": "thinking...",
                      "tool_calls": [{"id": "call_9", "type": "function",
                                      "function": {"name": "look", "arguments": "{\"q\":1}"}}]}}]}
    ex = exchange(tools=[{"type": "function", "name": "look", "parameters": {}}], temperature=0.5)
    obj = FRONT.from_chat(completion, ex)
    assert obj["object"] == "response" and obj["id"].startswith("resp_") and obj["status"] == "completed"
    assert obj["model"] == "m" and obj["temperature"] == 0.5 and obj["store"] is False
    # echoed with every field the documents require, null when not given
    assert obj["tools"] == [{"type": "function", "name": "look", "parameters": {}, "description": None, "strict": None}]
    kinds = [item["type"] for item in obj["output"]]
    assert kinds == ["reasoning", "message", "function_call"]
    assert obj["output"][0]["content"] == [{"type": "reasoning_text", "text": "thinking..."}]
    assert obj["output"][1]["content"][0]["text"] == "Let me look."
    call = obj["output"][2]
    assert (call["call_id"], call["name"], call["arguments"], call["status"]) == ("call_9", "look", "{\"q\":1}",
                                                                                  "completed")
    assert obj["usage"] == {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                            "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 16}
    assert obj["incomplete_details"] is None and obj["error"] is None


def test_length_is_incomplete():
    completion = {"choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant",
                                                                                 "content": "cut"}}]}
    ex = exchange()
    obj = FRONT.from_chat(completion, ex)
    assert obj["status"] == "incomplete" and obj["incomplete_details"] == {"reason": "max_output_tokens"}
    # no usage upstream: estimated (no request to count here; "cut" is one token) and marked so
    assert obj["usage"]["output_tokens"] == 1 and obj["usage"]["input_tokens"] == 0 and ex.usage_estimated


# ------------------------------------------------------------------ streams

def shape(events):
    """Event types with the indexes that must line up."""
    out = []
    for e in events:
        keys = {k: e[k] for k in ("output_index", "content_index") if k in e}
        out.append((e["type"], keys.get("output_index"), keys.get("content_index")))
    return out


def test_text_stream_event_sequence_exactly():
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
              chunk(finish="stop"), chunk(usage=USAGE)]
    ex = exchange()
    events = list(FRONT.stream(iter(chunks), ex))
    assert shape(events) == [
        ("response.created", None, None), ("response.in_progress", None, None),
        ("response.output_item.added", 0, None), ("response.content_part.added", 0, 0),
        ("response.output_text.delta", 0, 0), ("response.output_text.delta", 0, 0),
        ("response.output_text.done", 0, 0), ("response.content_part.done", 0, 0),
        ("response.output_item.done", 0, None), ("response.completed", None, None)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    item_id = events[2]["item"]["id"]
    assert all(e["item_id"] == item_id for e in events[3:8])
    assert [e["delta"] for e in events[4:6]] == ["Hel", "lo"]
    assert events[6]["text"] == "Hello" and events[7]["part"]["text"] == "Hello"
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["id"] == events[0]["response"]["id"]
    assert final["output"] == [events[8]["item"]] and final["usage"]["output_tokens"] == 5
    assert ex.output is final and ex.usage == USAGE


def test_reasoning_then_text_then_two_calls():
    chunks = [chunk({"role": "assistant", "reasoning_content": "hmm"}), chunk({"reasoning_content": " ok"}),
              chunk({"content": "Calling."}),
              chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                     "function": {"name": "f", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":"}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
              chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                     "function": {"name": "g", "arguments": "{}"}}]}),
              chunk(finish="tool_calls")]
    events = list(FRONT.stream(iter(chunks), exchange()))
    assert shape(events) == [
        ("response.created", None, None), ("response.in_progress", None, None),
        ("response.output_item.added", 0, None), ("response.content_part.added", 0, 0),
        ("response.reasoning_text.delta", 0, 0), ("response.reasoning_text.delta", 0, 0),
        ("response.reasoning_text.done", 0, 0), ("response.content_part.done", 0, 0),
        ("response.output_item.done", 0, None),
        ("response.output_item.added", 1, None), ("response.content_part.added", 1, 0),
        ("response.output_text.delta", 1, 0), ("response.output_text.done", 1, 0),
        ("response.content_part.done", 1, 0), ("response.output_item.done", 1, None),
        ("response.output_item.added", 2, None), ("response.function_call_arguments.delta", 2, None),
        ("response.function_call_arguments.delta", 2, None), ("response.function_call_arguments.done", 2, None),
        ("response.output_item.done", 2, None),
        ("response.output_item.added", 3, None), ("response.function_call_arguments.delta", 3, None),
        ("response.function_call_arguments.done", 3, None), ("response.output_item.done", 3, None),
        ("response.completed", None, None)]
    assert events[3]["part"] == {"type": "reasoning_text", "text": ""}
    assert events[6]["text"] == "hmm ok"
    assert events[15]["item"] == {"type": "function_call", "id": events[15]["item"]["id"], "call_id": "call_a",
                                  "name": "f", "arguments": "", "status": "in_progress"}
    assert events[18]["arguments"] == "{\"x\":1}" and events[18]["name"] == "f"
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][3]["call_id"] == "call_b" and final["output"][3]["arguments"] == "{}"


def test_reasoning_as_the_summary_when_asked():
    """reasoning.summary set: the reasoning is the item's summary (summary_text), streamed with the summary events
    the SDK's schema names, not as reasoning_text content."""
    chunks = [chunk({"role": "assistant", "reasoning": "hmm"}), chunk({"reasoning": " ok"}), chunk({"content": "Hi"}),
              chunk(finish="stop"), chunk(usage=USAGE)]
    ex = exchange(reasoning={"effort": "low", "summary": "auto"})
    assert ex.asks_reasoning
    events = list(FRONT.stream(iter(chunks), ex))
    assert [(e["type"], e.get("output_index"), e.get("summary_index")) for e in events[2:9]] == [
        ("response.output_item.added", 0, None), ("response.reasoning_summary_part.added", 0, 0),
        ("response.reasoning_summary_text.delta", 0, 0), ("response.reasoning_summary_text.delta", 0, 0),
        ("response.reasoning_summary_text.done", 0, 0), ("response.reasoning_summary_part.done", 0, 0),
        ("response.output_item.done", 0, None)]
    assert events[2]["item"] == {"type": "reasoning", "id": events[2]["item"]["id"], "summary": [],
                                 "status": "in_progress"}
    assert events[3]["part"] == {"type": "summary_text", "text": ""} and events[6]["text"] == "hmm ok"
    assert events[7]["part"] == {"type": "summary_text", "text": "hmm ok"} and "status" not in events[7]
    done = {"type": "reasoning", "id": events[2]["item"]["id"], "summary": [{"type": "summary_text", "text": "hmm ok"}],
            "status": "completed"}
    final = events[-1]["response"]
    assert events[8]["item"] == done and final["output"][0] == done
    assert final["reasoning"] == {"effort": "low", "summary": "auto"}
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}
    answer = {"role": "assistant", "content": "Hi", "reasoning_content": "hmm ok"}
    whole = FRONT.from_chat({"choices": [{"index": 0, "finish_reason": "stop", "message": answer}]},
                            exchange(reasoning={"summary": "detailed"}))
    assert whole["output"][0]["summary"] == [{"type": "summary_text", "text": "hmm ok"}]
    assert "content" not in whole["output"][0] and whole["reasoning"]["summary"] == "detailed"
    assert not exchange(reasoning={"effort": "high"}).asks_reasoning


@pytest.mark.parametrize("reasoning, param", [({"summary": "short"}, "reasoning.summary"),
                                              ({"summary": 1}, "reasoning.summary"),
                                              ({"generate_summary": "long"}, "reasoning.generate_summary")])
def test_bad_reasoning_summary(reasoning, param):
    with pytest.raises(ProxyError) as info:
        exchange(reasoning=reasoning)
    assert info.value.status == 400 and info.value.param == param


def test_reasoning_hidden_when_not_wanted():
    ex = exchange()
    ex.thinking = False
    events = list(FRONT.stream(iter([chunk({"reasoning_content": "secret"}), chunk({"content": "hi"}),
                                      chunk(finish="stop")]), ex))
    assert "secret" not in str(events)


def test_length_stream_ends_incomplete_and_empty_stream_has_a_message():
    events = list(FRONT.stream(iter([chunk(finish="length")]), exchange()))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"  # the item cut short, as OpenAI marks it
    whole = FRONT.from_chat({"choices": [{"index": 0, "finish_reason": "length",
                                          "message": {"role": "assistant", "content": "cut"}}]}, exchange())
    assert whole["output"][0]["status"] == "incomplete"
    cut_call = FRONT.from_chat({"choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "x", "tool_calls": [{"id": "c", "type": "function",
                                                             "function": {"name": "f", "arguments": '{"a":'}}]}}]},
        exchange())
    assert [item["status"] for item in cut_call["output"]] == ["completed", "incomplete"]
    done = list(FRONT.stream(iter([chunk({"content": "x"}), chunk(finish="stop")]), exchange()))
    assert [e["item"]["status"] for e in done if e["type"] == "response.output_item.done"] == ["completed"]


def test_an_error_mid_stream_ends_with_response_failed():
    def chunks():
        yield chunk({"content": "par"})
        raise ProxyError(502, "The upstream server closed the stream.", code="upstream_stream_incomplete")

    ex = exchange()
    events = list(FRONT.stream(chunks(), ex))
    types = [e["type"] for e in events]
    assert types[-5:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "error", "response.failed"]
    assert events[-2]["code"] == "upstream_stream_incomplete" and "closed" in events[-2]["message"]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-3]["item"]["status"] == "incomplete" and events[-1]["response"]["output"][0]["status"] == "incomplete"
    # the response object says server_error (a code the API lists), the error event the precise one
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert ex.error is not None and ex.error.status == 502
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_events_encode_as_named_sse():
    data = FRONT.encode_event({"type": "response.created", "sequence_number": 0})
    assert data == b'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n'


def test_error_shape_is_openai_with_request_id():
    body = FRONT.error_body(400, {"message": "m", "type": "invalid_request_error", "param": "input", "code": None},
                            "rid")
    assert body == {"error": {"message": "m", "type": "invalid_request_error", "param": "input", "code": None,
                              "request_id": "rid"}}


def test_exchange_keeps_the_request():
    chat, ex = FRONT.to_chat({"model": "m", "input": "x", "stream": True})
    assert isinstance(ex, Exchange) and ex.stream and ex.model == "m" and ex.request["input"] == "x"


# ------------------------------------------------------------------ Codex's tools over a chat backend

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


def test_custom_and_namespaced_calls_come_back_as_their_items():
    _, ex = FRONT.to_chat({"model": "m", "input": "x", "tools": CODEX_TOOLS})
    completion = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "apply_patch",
                                                              "arguments": '{"input": "*** Begin Patch"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "mcp__docs__search", "arguments": "{}"}},
            {"id": "call_3", "type": "function", "function": {"name": "shell", "arguments": '{"a":1}'}}]}}]}
    output = FRONT.from_chat(completion, ex)["output"]
    assert [i["type"] for i in output] == ["custom_tool_call", "function_call", "function_call"]
    assert output[0]["input"] == "*** Begin Patch" and output[0]["name"] == "apply_patch"
    assert output[0]["call_id"] == "call_1" and output[0]["id"].startswith("ctc_")
    assert output[1]["name"] == "search" and output[1]["namespace"] == "mcp__docs"
    assert output[2]["name"] == "shell" and "namespace" not in output[2]


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


def test_an_event_repeating_a_long_text_is_written_in_slices_with_the_same_bytes() -> None:
    from argoproxy.fronts import long_strings
    text = "é\"\n" * (long_strings.SLICE // 2) + "tail"
    event = {"type": "response.output_text.done", "text": text, "part": {"text": text}, "small": "x"}
    pieces = list(FRONT.encode_pieces(event))
    assert b"".join(pieces) == FRONT.encode_event(event)
    assert max(len(p) for p in pieces) < 3 * long_strings.SLICE  # never the whole text in one piece
    # a client's string that spells a marker's shape is just text
    tricky = {"type": "x", "text": "\x00cot-proxy-long-0\x00", "long": "a" * (long_strings.SLICE + 1)}
    assert b"".join(FRONT.encode_pieces(tricky)) == FRONT.encode_event(tricky)


def test_output_past_the_kept_budget_ends_the_stream_as_incomplete() -> None:
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    ex.keep = 10
    events = list(FRONT.stream(iter([chunk({"content": "abcdef"}), chunk({"content": "ghijkl"}),
                                     chunk({"content": "never read"})]), ex))
    final = events[-1]
    assert final["type"] == "response.incomplete" and final["response"]["incomplete_details"] == {
        "reason": "max_output_tokens"}
    assert final["response"]["output"][0]["content"][0]["text"] == "abcdef"  # exactly what the deltas sent
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["abcdef"]
    assert ex.cut


def test_tool_arguments_past_the_kept_budget_fail_the_stream_naming_the_setting() -> None:
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    ex.keep = 10
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": "'}}
    more = {"index": 0, "function": {"arguments": "x" * 20}}
    events = list(FRONT.stream(iter([chunk({"tool_calls": [call]}), chunk({"tool_calls": [more]})]), ex))
    assert events[-1]["type"] == "response.failed" and "MAX_SSE_EVENT_BYTES" in events[-2]["message"]
    assert events[-1]["response"]["output"] == []  # the cut call is not repeated in part


def test_an_encoder_that_does_not_write_json_strings_gets_the_event_whole() -> None:
    from argoproxy.fronts import long_strings
    from argoproxy.fronts.front import Front

    class Plain(Front):
        def encode_event(self, event):
            return str(sorted(event.items())).encode()  # no JSON: the markers are not where the slices go

    event = {"type": "x", "text": "b" * (long_strings.SLICE + 5)}
    assert list(Plain().encode_pieces(event)) == [Plain().encode_event(event)]


def test_interleaved_parallel_calls_come_out_one_whole_item_each():
    events = list(FRONT.stream(iter(interleaved_tool_calls()), exchange()))
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [(d["name"], d["call_id"], d["arguments"]) for d in done] == [("f0", "call_0", '{"a": 1}'),
                                                                         ("f1", "call_1", '{"b": 2}')]
    streamed: dict[int, str] = {}
    for e in events:
        if e["type"] == "response.function_call_arguments.delta":
            streamed[e["output_index"]] = streamed.get(e["output_index"], "") + e["delta"]
        if e["type"] == "response.function_call_arguments.done":
            assert streamed[e["output_index"]] == e["arguments"]
    assert streamed == {0: '{"a": 1}', 1: '{"b": 2}'}
    assert [o["arguments"] for o in events[-1]["response"]["output"]] == ['{"a": 1}', '{"b": 2}']
    added = [i for i, e in enumerate(events) if e["type"] == "response.output_item.added"]
    closed = [i for i, e in enumerate(events) if e["type"] == "response.output_item.done"]
    assert added[1] > closed[0]  # one item at a time


def test_kept_pieces_are_joined_as_they_grow_and_count_only_their_characters() -> None:
    """The text a Responses stream repeats in its closing events is kept joined every COMPACT pieces (a string
    per tiny delta cost 25 times its text), and MAX_SSE_EVENT_BYTES counts its characters only: one-token
    deltas are not cut at a ninth of the limit."""
    pieces = Pieces()
    for i in range(COMPACT * 3 + 5):
        pieces.append("ab")
    assert len(pieces) == 3 + 5 and "".join(pieces) == "ab" * (COMPACT * 3 + 5)
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    ex.keep = 4 * 20_000
    events = list(FRONT.stream(iter([chunk({"content": "abc "}) for _ in range(20_000)]), ex))
    assert events[-1]["type"] == "response.completed" and not ex.cut
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "abc " * 20_000


def test_fragments_of_a_call_that_waits_are_joined_as_they_grow() -> None:
    """An interleaved call waits whole behind the open one: its fragments are joined as they come (two-byte
    fragments up to ARGS_LIMIT were 4 million strings, 250 MB)."""
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    state = ResponseStream(ex)
    state.tool_call(0, {"index": 0, "id": "c0", "function": {"name": "f", "arguments": "{"}})
    for i in range(COMPACT * 4):
        state.tool_call(1, {"index": 1, "function": {"arguments": "ab"}})
    pieces = state.waiting[1][2]
    assert len(pieces) <= COMPACT and "".join(pieces) == "ab" * COMPACT * 4


def test_late_fragments_of_a_finished_call_reach_the_final_response_whole() -> None:
    """A call closed by what came next (text) gets more fragments: the final response has its whole arguments,
    joined once at the end (joined per fragment before: quadratic in a hostile upstream's fragments)."""
    ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
    first = {"index": 0, "id": "c0", "type": "function", "function": {"name": "f", "arguments": '{"a": "'}}
    late = [chunk({"tool_calls": [{"index": 0, "function": {"arguments": "x"}}]}) for _ in range(20_000)]
    events = list(FRONT.stream(iter([chunk({"tool_calls": [first]}), chunk({"content": "and text"}), *late,
                                     chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"}'}}]}),
                                     chunk(finish="tool_calls")]), ex))
    call = next(item for item in events[-1]["response"]["output"] if item["type"] == "function_call")
    assert call["arguments"] == '{"a": "' + "x" * 20_000 + '"}'


def test_a_call_without_arguments_has_an_empty_object_as_its_arguments():
    """Some servers send a call to a tool without parameters with no arguments at all: the item carries "{}",
    as OpenAI writes it and the other doors give ({}), never "" (which Codex cannot parse)."""
    events = list(FRONT.stream(iter([chunk({"tool_calls": [{"index": 0, "id": "c0", "type": "function",
                                                            "function": {"name": "now"}}]}),
                                     chunk(finish="tool_calls")]), exchange()))
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [e["arguments"] for e in done] == ["{}"]
    assert events[-1]["response"]["output"][0]["arguments"] == "{}"
    whole = chat_to_response({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "now", "arguments": ""}}]}}]}, exchange())
    assert whole["output"][0]["arguments"] == "{}"
    custom = exchange(tools=[{"type": "custom", "name": "apply_patch"}])
    whole = chat_to_response({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "apply_patch", "arguments": ""}}]}}]}, custom)
    assert (whole["output"][0]["type"], whole["output"][0]["input"]) == ("custom_tool_call", "")  # not "{}"


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


LOGPROB = {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.1,
                                                                                   "bytes": [72, 105]}]}


def test_token_logprobs_are_asked_for_and_come_back_whole_or_with_each_delta():
    chat, ex = FRONT.to_chat({"model": "m", "input": "x", "top_logprobs": 1})
    assert chat["top_logprobs"] == 1 and chat["logprobs"] is True  # chat servers refuse top_logprobs alone
    chat, _ = FRONT.to_chat({"model": "m", "input": "x", "include": ["message.output_text.logprobs"]})
    assert chat["logprobs"] is True
    assert "logprobs" not in FRONT.to_chat({"model": "m", "input": "x"})[0]
    ex.chat = {"logprobs": True}
    completion = {**BASE, "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": "Hi"}, "logprobs": {"content": [LOGPROB]}}]}
    assert chat_to_response(completion, ex)["output"][0]["content"][0]["logprobs"] == [LOGPROB]
    streamed = {**chunk({"content": "Hi"}), "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None,
                                                         "logprobs": {"content": [LOGPROB]}}]}
    events = list(FRONT.stream(iter([streamed, chunk(finish="stop")]), ex))
    assert [e["logprobs"] for e in events if e["type"] == "response.output_text.delta"] == [[LOGPROB]]


def test_events_the_stream_writes_itself_are_the_bytes_the_encoder_writes(monkeypatch) -> None:
    """Its events going straight to the encoder, a stream writes them itself (as bytes; those made at one moment
    joined): the bytes encode_event writes for each event, whatever the text (quotes, newlines, non-ASCII, a lone
    surrogate)."""
    import argoproxy.fronts.responses as responses
    monkeypatch.setattr(responses, "output_item_id", lambda prefix, resp_id: prefix + "0" * 32)
    monkeypatch.setattr(responses.time, "time", lambda: 1_800_000_000.0)
    texts = ["plain", 'quo"te\\', "line\nbreak\t", "é ✓ 𝄞", "\ud800 lone", "</script>"]
    chunks = [chunk({"content": t}) for t in texts] + [chunk(finish="stop"), chunk(usage=USAGE)]

    def run(wire: bool) -> list:
        ex = FRONT.to_chat({"model": "m", "input": "hi", "stream": True})[1]
        ex.encoded_events, ex.created = wire, 1_800_000_000
        ex.state = {"id": "resp_" + "1" * 24, "store": True}
        return list(FRONT.stream(iter(chunks), ex))

    plain, wired = run(False), run(True)
    assert not any(isinstance(e, bytes) for e in plain) and all(isinstance(e, bytes) for e in wired)
    assert b"".join(wired) == b"".join(FRONT.encode_event(e) for e in plain)
    assert len(wired) < len(plain)  # the events made at one moment (the opening ones, the closing ones) as one piece


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


# ------------------------------------------------------------------ the other hosted and built-in tools' fields

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


def test_an_input_item_of_an_empty_type_is_named_as_it_came():
    with pytest.raises(ProxyError) as info:
        request_to_chat({"model": "m", "input": [{"type": "", "content": "x"}]})
    assert "of type ''" in info.value.message and info.value.param == "input[0].type"
