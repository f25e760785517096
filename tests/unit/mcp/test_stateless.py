"""Revision 2026-07-28's pure parts (argoproxy/mcp/stateless.py): a header's base64 form read back, an answer
shaped as the revision requires (and its HTTP status), the envelope taken out before a 2025-11-25 server sees
the request, and a tool call's SSE stream with its answer shaped and its end passed on."""

from __future__ import annotations

import base64
import json

from argoproxy.mcp.notices import request_level
from argoproxy.mcp.stateless import header_value, reshaped_events, shaped, stripped

ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": {"name": "c"},
            "io.modelcontextprotocol/logLevel": "info"}


def test_a_header_value_is_read_plain_or_from_its_base64_form():
    assert header_value("git__status") == "git__status"
    assert header_value("=?base64?" + base64.b64encode("héllo wörld".encode()).decode() + "?=") == "héllo wörld"
    assert header_value("=?base64?not base64!?=") is None
    assert header_value("=?base64?aGk=?=") == "hi" and header_value("=?base64?aGl=?=") is None  # not canonical
    assert header_value(None) is None


def test_a_result_says_it_is_complete_and_a_listing_may_be_cached_by_this_key_alone():
    body, status = shaped({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}, "tools/list")
    assert status == 200 and body["result"] == {"tools": [], "resultType": "complete", "ttlMs": 0,
                                                "cacheScope": "private"}
    body, _ = shaped({"jsonrpc": "2.0", "id": 1, "result": {"content": []}}, "tools/call")
    assert body["result"] == {"content": [], "resultType": "complete"}


def test_errors_get_the_revisions_status_and_the_retired_code_is_renamed():
    def status(code):
        return shaped({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "m"}}, "tools/call")

    assert status(-32601)[1] == 404 and status(-32602)[1] == 400 and status(-32029)[1] == 200
    renamed, code = status(-32002)
    assert (renamed["error"]["code"], code) == (-32602, 400)


def test_the_envelope_is_taken_out_and_the_progress_token_stays():
    """The log level stays for the supervisor, which takes it out before the server sees the request."""
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "x", "_meta": {**ENVELOPE, "progressToken": "t"}}}
    level = {"io.modelcontextprotocol/logLevel": "info"}
    assert stripped(message)["params"] == {"name": "x", "_meta": {**level, "progressToken": "t"}}
    assert request_level(stripped(message)) == ({**message, "params": {"name": "x", "_meta": {"progressToken": "t"}}},
                                                "info")
    assert request_level(stripped({**message, "params": {"name": "x", "_meta": ENVELOPE}})) == \
        ({**message, "params": {"name": "x"}}, "info")
    assert request_level({"id": 1, "method": "m"}) == ({"id": 1, "method": "m"}, None)
    assert message["params"]["_meta"]["io.modelcontextprotocol/clientInfo"] == {"name": "c"}  # not changed


def test_a_streamed_calls_answer_is_shaped_and_its_end_passed_on():
    closed = []

    def events():
        try:
            yield b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n'
            yield b'event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{"content":[]}}\n\n'
        finally:
            closed.append(True)

    abandoned = []
    sent = list(reshaped_events(events(), "tools/call", lambda: abandoned.append("whole")))
    assert sent[0].endswith(b'"params":{}}\n\n')
    assert json.loads(sent[1][len(b"event: message\ndata: "):])["result"]["resultType"] == "complete"
    left = reshaped_events(events(), "tools/call", lambda: abandoned.append("left"))
    next(left)
    left.close()  # the client left after the first event: its call is cancelled
    assert closed == [True, True] and abandoned == ["left"]
