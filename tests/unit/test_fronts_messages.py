"""The Messages front door's translations, without HTTP: requests to chat, answers and streams back."""

from __future__ import annotations

import json

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.front import ARGS_LIMIT, PIECE_COST
from argoproxy.fronts.messages import MessagesFront, request_to_chat, thinking_block
from tests.fakes.fake_upstream import interleaved_tool_calls

FRONT = MessagesFront()
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
USAGE = {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26, "prompt_tokens_details": {"cached_tokens": 4}}


def chunk(delta=None, finish=None, **extra):
    return {**BASE, "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, **extra}]}


def usage_chunk():
    return {**BASE, "choices": [], "usage": USAGE}


def exchange(**request):
    return FRONT.to_chat({"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
                          **request})[1]


# ------------------------------------------------------------------ requests

CLAUDE_CODE_BODY = {
    "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
    "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cch=abc"},
               {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call ls", "signature": "sig=="},
            {"type": "text", "text": "Running ls."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a.txt"}]},
            {"type": "text", "text": "and now?"}]},
    ],
    "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {}},
               "cache_control": {"type": "ephemeral"}}],
    "tool_choice": {"type": "auto"},
    "metadata": {"user_id": "user_abc_account_1_session_2"},
    "thinking": {"type": "enabled", "budget_tokens": 4000},
    "context_management": {"edits": []}, "output_config": {"effort": "high"},
    "temperature": 1, "top_k": 5, "stop_sequences": ["STOP"],
}


def test_claude_code_request_shape():
    chat = request_to_chat(CLAUDE_CODE_BODY)
    assert chat["messages"] == [
        {"role": "system", "content": "x-anthropic-billing-header: cc_version=2.1; cch=abc\n\nYou are Claude Code."},
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": "Running ls.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\": \"ls\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"},
        {"role": "user", "content": "and now?"},
    ]
    assert chat["tools"] == [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object",
                                                                                             "properties": {}},
                                                               "description": "run"}}]
    assert chat["tool_choice"] == "auto" and chat["user"] == "user_abc_account_1_session_2"
    assert chat["max_tokens"] == 32000 and chat["stop"] == ["STOP"] and chat["top_k"] == 5
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert "cache_control" not in json.dumps(chat) and "context_management" not in chat and "thinking" not in chat


def test_images_documents_and_tool_result_images():
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "abc"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
    ]}, {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": [
            {"type": "text", "text": "partial"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "BBBB"}}]}]}]})
    assert chat["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "Notes\n\nabc"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "document.pdf"}}]
    assert chat["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [  # not null: llama.cpp
        {"id": "t1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}]}
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "Error: partial"}
    assert chat["messages"][3] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,BBBB"}}]}


@pytest.mark.parametrize("choice, expected, parallel", [
    ({"type": "auto"}, "auto", None), ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
    ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, None),
    ({"type": "none"}, "none", None)])
def test_tool_choice(choice, expected, parallel):
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                            "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice})
    assert chat["tool_choice"] == expected and chat.get("parallel_tool_calls") == parallel


@pytest.mark.parametrize("body, param", [
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages.0.content.0.type"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "custom", "name": "t"}]}, "tools.0.input_schema"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "x"}}]}]},
     "messages.0.content.0.source.media_type"),
])
def test_bad_requests_name_the_location(body, param):
    with pytest.raises(ProxyError) as info:
        request_to_chat(body)
    assert info.value.status == 400 and info.value.param == param and info.value.message.startswith(param)


def test_count_tokens_needs_no_max_tokens():
    chat, _ = FRONT.to_chat({"model": "m", "messages": [{"role": "user", "content": "x"}]}, count_only=True)
    assert "max_tokens" not in chat


# ------------------------------------------------------------------ whole answers

def completion(message, finish="stop", **choice):
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "up", "usage": USAGE,
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", **message}, **choice}]}


def test_whole_answer_with_thinking_and_tool_use():
    ex = exchange(thinking={"type": "enabled", "budget_tokens": 2000})
    obj = FRONT.from_chat(completion({"content": "Sure.", "reasoning_content": "plan",
                                      "tool_calls": [{"id": "call_1", "type": "function",
                                                      "function": {"name": "f", "arguments": "{\"a\": [1]}"}}]},
                                     "tool_calls"), ex)
    assert obj["type"] == "message" and obj["role"] == "assistant" and obj["model"] == "claude-x"
    assert obj["content"] == [thinking_block("plan"), {"type": "text", "text": "Sure.", "citations": None},
                              {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1]},
                               "caller": {"type": "direct"}}]
    assert obj["stop_reason"] == "tool_use" and obj["stop_sequence"] is None
    assert obj["stop_details"] is None and obj["container"] is None
    # the upstream's usage left the reasoning tokens out: counted from the reasoning's text
    assert obj["usage"] == {"input_tokens": 16, "output_tokens": 6, "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 4, "output_tokens_details": {"thinking_tokens": 1},
                            "server_tool_use": None, "service_tier": "standard",
                            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                            "inference_geo": None}


def test_thinking_stripped_unless_asked():
    obj = FRONT.from_chat(completion({"content": "ok", "reasoning_content": "plan"}), exchange())
    assert obj["content"] == [{"type": "text", "text": "ok", "citations": None}] and obj["stop_reason"] == "end_turn"


@pytest.mark.parametrize("finish, extra, reason, sequence", [
    ("length", {}, "max_tokens", None), ("stop", {"stop_reason": "STOP"}, "stop_sequence", "STOP"),
    ("stop", {"stop_reason": 128001}, "end_turn", None), ("content_filter", {}, "refusal", None)])
def test_stop_reasons(finish, extra, reason, sequence):
    obj = FRONT.from_chat(completion({"content": "x"}, finish, **extra), exchange(stop_sequences=["STOP"]))
    assert (obj["stop_reason"], obj["stop_sequence"]) == (reason, sequence)


# ------------------------------------------------------------------ streams

def test_stream_sequence_with_thinking_text_and_tool_use():
    ex = exchange(thinking={"type": "adaptive"})
    ex.input_tokens = 42
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"reasoning_content": "let"}),
              chunk({"reasoning_content": " me"}), chunk({"content": "Hi"}), chunk({"content": "!"}),
              chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
              chunk(finish="tool_calls"), usage_chunk()]
    events = list(FRONT.stream(iter(chunks), ex))
    assert [(e["type"], e.get("index"), (e.get("delta") or e.get("content_block") or {}).get("type"))
            for e in events] == [
        ("message_start", None, None), ("ping", None, None),
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"), ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None), ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"), ("content_block_stop", 2, None),
        ("message_delta", None, None), ("message_stop", None, None)]
    start = events[0]["message"]
    assert (start["usage"]["input_tokens"], start["usage"]["output_tokens"]) == (42, 0) and start["stop_reason"] is None
    assert start["content"] == [] and start["model"] == "claude-x"
    assert events[2]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[11]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {},
                                           "caller": {"type": "direct"}}
    assert "".join(e["delta"]["partial_json"] for e in events[12:14]) == "{\"a\":1}"
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None, "stop_details": None,
                                   "container": None}
    assert events[-2]["usage"]["output_tokens"] == 6 and events[-2]["usage"]["input_tokens"] == 16
    signed = thinking_block("let me")  # the signature is the whole answer's, though the text came in pieces
    assert events[5]["delta"] == {"type": "signature_delta", "signature": signed["signature"]}
    assert signed["signature"] and signed["signature"] != thinking_block("let me!")["signature"]
    assert ex.output["content"] == [signed, {"type": "text", "text": "Hi!", "citations": None},
                                    {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1},
                                     "caller": {"type": "direct"}}]


def test_blocks_pair_and_indexes_are_dense():
    chunks = [chunk({"content": "a"}),
              chunk({"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "f", "arguments": "{}"}},
                                    {"index": 1, "id": "c1", "function": {"name": "g", "arguments": "{}"}}]}),
              chunk(finish="tool_calls")]
    events = list(FRONT.stream(iter(chunks), exchange()))
    starts = [e["index"] for e in events if e["type"] == "content_block_start"]
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert starts == stops == [0, 1, 2]
    opened = None
    for e in events:  # every delta belongs to the one open block
        if e["type"] == "content_block_start":
            assert opened is None
            opened = e["index"]
        elif e["type"] == "content_block_delta":
            assert e["index"] == opened
        elif e["type"] == "content_block_stop":
            assert e["index"] == opened
            opened = None


def test_reasoning_stripped_in_stream_without_thinking_and_empty_answer_has_a_block():
    events = list(FRONT.stream(iter([chunk({"reasoning_content": "secret"}), chunk(finish="stop")]), exchange()))
    assert "secret" not in json.dumps(events)
    assert [e["type"] for e in events] == ["message_start", "ping", "content_block_start", "content_block_stop",
                                           "message_delta", "message_stop"]


def test_error_mid_stream_is_an_error_event():
    def chunks():
        yield chunk({"content": "x"})
        raise ProxyError(504, "The upstream server did not answer in time.")

    ex = exchange()
    events = list(FRONT.stream(chunks(), ex))
    assert events[-1] == {"type": "error", "error": {"type": "timeout_error",
                                                     "message": "The upstream server did not answer in time."},
                          "request_id": None}
    assert ex.error.status == 504


def test_encoding_error_shape_and_key():
    assert FRONT.encode_event({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert FRONT.error_body(429, {"message": "slow down"}, "rid") == {
        "type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}, "request_id": "rid"}
    assert FRONT.error_body(503, {"message": "x"}, "r")["error"]["type"] == "overloaded_error"
    headers = {"X-Api-Key": "sk-1", "Anthropic-Version": "2023-06-01", "Anthropic-Beta": "a,b", "Accept": "x"}
    assert FRONT.client_key(headers) == "sk-1"
    assert FRONT.upstream_headers(headers) == {"Accept": "x", "Authorization": "Bearer sk-1"}


def test_server_tools_are_dropped_and_named():
    """Server and Anthropic-defined tools have no chat form: left out (the door logs them); with no client
    tool left, tool_choice goes too."""
    dropped: dict[str, None] = {}
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                                      {"name": "Read", "input_schema": {"type": "object"}},
                                      {"type": "bash_20250124", "name": "bash"}],
                            "tool_choice": {"type": "auto"}}, dropped=dropped)
    assert [t["function"]["name"] for t in chat["tools"]] == ["Read"] and chat["tool_choice"] == "auto"
    assert list(dropped) == ["web_search_20250305", "bash_20250124"]
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
                            "tool_choice": {"type": "any"}})
    assert "tools" not in chat and "tool_choice" not in chat
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                            "tools": [{"type": "web_search_20250305", "name": "web_search"},
                                      {"name": "Read", "input_schema": {"type": "object"}}],
                            "tool_choice": {"type": "tool", "name": "web_search"}})
    assert chat["tool_choice"] == "auto"  # forcing a tool that was left out: the model chooses


def test_a_long_streamed_answer_is_translated_in_linear_time():
    # `text += piece` on the block copied the answer so far per chunk: 100,000 chunks took 13 s.
    import time
    from argoproxy.fronts import front_named
    from argoproxy.fronts.front import Exchange
    chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"reasoning_content": "r" * 20} if i < 50_000 else
                            {"content": "a" * 20}, "finish_reason": None}]} for i in range(100_000)]
    ex = Exchange(model="m", stream=True, request={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    started = time.process_time()  # CPU, not wall time: the machine may be busy with other work
    events = list(front_named("messages").stream(iter(chunks), ex))
    assert time.process_time() - started < 3.0
    assert [b["type"] for b in ex.output["content"]] == ["thinking", "text"]
    assert ex.output["content"][1]["text"] == "a" * 1_000_000 and len(ex.output["content"][0]["thinking"]) == 1_000_000
    assert sum(1 for e in events if e["type"] == "content_block_delta") == 100_001  # and one signature_delta


def test_text_and_arguments_past_the_kept_budget_only_pass_through():
    """No Messages event repeats what was streamed: past ex.keep (what a journal records whole) nothing more
    is kept, and every delta still goes out."""
    ex = exchange()
    ex.keep = 5 + PIECE_COST  # each kept piece counts PIECE_COST more than its characters
    call = {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a":'}}
    chunks = [chunk({"role": "assistant", "content": "abc"}), chunk({"content": "defgh"}),
              chunk({"tool_calls": [call]}), chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
              chunk(finish="tool_calls")]
    events = list(FRONT.stream(iter(chunks), ex))
    deltas = [e["delta"].get("text") or e["delta"].get("partial_json") for e in events
              if e["type"] == "content_block_delta"]
    assert deltas == ["abc", "defgh", '{"a":', "1}"]
    assert ex.output["content"][0]["text"] == "abc"  # the budget ran out at "defgh"
    assert events[-1]["type"] == "message_stop"


def test_interleaved_parallel_calls_come_out_one_whole_block_each():
    ex = exchange()
    events = list(FRONT.stream(iter([chunk({"content": "Let me look."})] + interleaved_tool_calls()), ex))
    starts = [(e["index"], e["content_block"]) for e in events if e["type"] == "content_block_start"]
    assert [(i, b["type"], b.get("name")) for i, b in starts] == [(0, "text", None), (1, "tool_use", "f0"),
                                                                  (2, "tool_use", "f1")]
    args: dict[int, str] = {}
    open_block = None
    for e in events:  # one block at a time, as the Messages format has it
        if e["type"] == "content_block_start":
            assert open_block is None
            open_block = e["index"]
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_block
            args[e["index"]] = args.get(e["index"], "") + e["delta"].get("partial_json", "")
        elif e["type"] == "content_block_stop":
            open_block = None
    assert json.loads(args[1]) == {"a": 1} and json.loads(args[2]) == {"b": 2}
    assert [b["input"] for b in ex.output["content"][1:]] == [{"a": 1}, {"b": 2}]
    assert ex.output["stop_reason"] == "tool_use"


def test_a_call_that_waits_is_bounded_and_text_after_it_does_not_overtake_it():
    head = [chunk({"tool_calls": [{"index": i, "id": f"c{i}", "function": {"name": f"f{i}", "arguments": ""}}]})
            for i in (0, 1)]
    piece = "x" * (1 << 20)
    huge = [chunk({"tool_calls": [{"index": 1, "function": {"arguments": piece}}]})] * (ARGS_LIMIT // len(piece) + 1)
    ex = exchange()
    events = list(FRONT.stream(iter(head + huge + [chunk(finish="tool_calls")]), ex))
    assert events[-1]["type"] == "error" and "arguments held back exceed" in events[-1]["error"]["message"]
    assert ex.error is not None and ex.error.code == "upstream_answer_too_large"
    after = head + [chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}), chunk({"content": "done"}),
                    chunk(finish="stop")]
    starts = [e["content_block"]["type"] for e in FRONT.stream(iter(after), exchange())
              if e["type"] == "content_block_start"]
    assert starts == ["tool_use", "tool_use", "text"]


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


def _refused_at(body: dict, count_only: bool = False) -> str:
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
    assert _refused_at(_with_tool(tool)) == f"tools.0.{param}"


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
    assert _refused_at(_user(block)) == f"messages.0.content.0.{param}"
    assistant = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": [block]}, {"role": "user", "content": "r"}]}
    assert _refused_at(assistant) == f"messages.1.content.0.{param}"
    assert _refused_at({**_user({"type": "text", "text": "t"}), "system": [block]}) == f"system.0.{param}"
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [block]}
    assert _refused_at(_user(result)) == f"messages.0.content.0.content.0.{param}"
    document = {"type": "document", "source": {"type": "content", "content": [block]}}
    assert _refused_at(_user(document)) == f"messages.0.content.0.source.content.0.{param}"
    assert _refused_at(_user(block), count_only=True) == f"messages.0.content.0.{param}"


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
    assert _refused_at(_user(document)) == f"messages.0.content.0.{param}"


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
    assert _refused_at(body) == param


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
        assert _refused_at(body) == f"messages.0.content.0.{param}"
        return
    assert _refused_at(body) == f"messages.1.content.0.{param}"
    body["messages"][1]["content"] = "a"
    assert _refused_at(body) == f"messages.2.content.0.{param}"


@pytest.mark.parametrize("schema,param", [
    ({"properties": {}}, "input_schema.type"),
    ({"type": "array"}, "input_schema.type"),
    ({"type": "object", "properties": []}, "input_schema.properties"),
    ({"type": "object", "required": "city"}, "input_schema.required"),
])
def test_a_client_tools_input_schema_is_an_object_schema(schema, param):
    body = _with_tool({"name": "get", "input_schema": schema})
    assert _refused_at(body) == f"tools.0.{param}"


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


# ------------------------------------------------------------------ blocks a chat upstream can take, first refused

def test_a_search_result_is_sent_as_its_title_source_and_text():
    """A search result the client found (retrieval) has a chat form: text. It was refused as a block of no chat
    form, in a turn and in a tool result."""
    result = {"type": "search_result", "source": "https://example.com/a", "title": "A page",
              "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
              "citations": {"enabled": True}, "cache_control": {"type": "ephemeral"}}
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [result, {"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "search", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [result]}]}]})
    text = "A page\nhttps://example.com/a\n\nfirst\nsecond"
    assert chat["messages"][0]["content"] == [{"type": "text", "text": text}, {"type": "text", "text": "q"}]
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": text}


@pytest.mark.parametrize("change,param", [
    ({"source": None}, "source"), ({"title": 5}, "title"), ({"content": "x"}, "content"),
    ({"content": [{"type": "image"}]}, "content.0"), ({"citations": {"enabled": "yes"}}, "citations.enabled"),
    ({"citations": None}, "citations"),
    ({"cache_control": {"type": "forever"}}, "cache_control.type")])
def test_a_search_results_fields_are_checked(change, param):
    result = {"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "x"}]}
    result = {k: v for k, v in {**result, **change}.items() if v is not None or k == "citations"}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [result]}]}
    assert _refused_at(body) == f"messages.0.content.0.{param}"


def test_a_tool_reference_in_a_tool_result_is_the_tools_name():
    """A client-side tool search answers with tool_reference blocks; a chat upstream has every tool already."""
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "find_tool", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "tool_reference", "tool_name": "get_weather"},
            {"type": "tool_reference", "tool_name": "get_time", "cache_control": None}]}]}]})
    assert chat["messages"][1] == {"role": "tool", "tool_call_id": "t1", "content": "get_weather\nget_time"}
    for bad in ("", "a b", 5, None):
        body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "tool_reference", "tool_name": bad}]}]}]}
        assert _refused_at(body) == "messages.0.content.0.content.0.tool_name"


def test_a_content_documents_images_are_sent_as_images():
    """A `content` document source holds text and image blocks: the images were refused, a chat upstream with
    vision takes them."""
    chat = request_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "title": "Slides", "source": {"type": "content", "content": [
            {"type": "text", "text": "page one"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/b.png"}}]}},
        {"type": "document", "source": {"type": "content", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/c.png"}}]}}]}]})
    assert chat["messages"][0]["content"] == [
        {"type": "text", "text": "Slides\n\npage one"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/c.png"}}]
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "content", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}}]}}]}]}
    assert _refused_at(body) == "messages.0.content.0.source.content.0.source.media_type"
