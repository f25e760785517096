"""The relay of a server's requests to its call's client (argoproxy/mcp/client_requests.py): what is relayed and
under which id, what is refused and told to the server, whose response reaches it (once); and the same through a
stdio server built with the official SDK (tests/fakes/asking_mcp_server.py), at 2025-11-25 and in 2026-07-28's
rounds."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.client_requests import ID_PREFIX, ClientRequests, Rounds, declared
from argoproxy.mcp.stdio_server import Pending, StdioServer

ASKING = str(Path(__file__).resolve().parents[2] / "fakes" / "asking_mcp_server.py")
SAMPLE = {"jsonrpc": "2.0", "id": 5, "method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 1}}
RESULT = {"role": "assistant", "model": "m", "content": {"type": "text", "text": "hi"}}


def relay():
    written: list[dict] = []
    return ClientRequests("s", lambda m: written.append(m) or True), written


def test_declared_keeps_the_capabilities_a_client_may_be_asked_by():
    assert declared({"sampling": {}, "roots": {"listChanged": True}, "experimental": {}}) == ["roots", "sampling"]
    assert declared(None) == [] and declared(["sampling"]) == []


def test_a_request_goes_to_its_call_under_an_unguessable_id_and_one_response_reaches_the_server():
    requests, written = relay()
    call = Pending(1, session="s1", asks=frozenset({"sampling"}))
    requests.received(SAMPLE, call, "")
    kind, asked = call.events.get_nowait()
    assert kind == "ask" and asked["id"].startswith(ID_PREFIX) and len(asked["id"]) > len(ID_PREFIX) + 30
    assert asked["method"] == "sampling/createMessage" and written == []
    assert not requests.answered("s2", {"id": asked["id"], "result": RESULT})  # another session's
    assert not requests.answered("s1", {"id": ID_PREFIX + "guessed", "result": RESULT})
    assert not requests.answered("", {"id": asked["id"], "result": RESULT})
    assert written == []
    assert requests.answered("s1", {"jsonrpc": "2.0", "id": asked["id"], "result": RESULT, "extra": 1})
    assert written == [{"jsonrpc": "2.0", "id": 5, "result": RESULT}]  # under the server's own id, nothing else
    assert not requests.answered("s1", {"id": asked["id"], "result": RESULT})  # answered already
    assert len(written) == 1 and call.asked == set()


def test_an_error_from_the_client_reaches_the_server_as_an_error():
    requests, written = relay()
    call = Pending(1, session="s1", asks=frozenset({"sampling"}))
    requests.received(SAMPLE, call, "")
    token = call.events.get_nowait()[1]["id"]
    assert requests.answered("s1", {"id": token, "error": {"code": -1, "message": "User rejected", "x": 2}})
    assert written == [jsonrpc.error(5, -1, "User rejected")]


def test_what_is_not_relayed_is_refused_to_the_server_at_once():
    requests, written = relay()
    requests.received({"id": "p", "method": "ping"}, None, "")
    requests.received(SAMPLE, None, "several calls are in flight")
    requests.received(SAMPLE, Pending(1, session="s", asks=frozenset({"roots"})), "")
    requests.received({"id": 6, "method": "tools/call"}, Pending(1, session="s", asks=frozenset({"sampling"})), "")
    assert written[0] == jsonrpc.result("p", {})
    assert [(m["id"], m["error"]["code"]) for m in written[1:]] == [(5, -32601), (5, -32601), (6, -32601)]
    assert "several calls are in flight" in written[1]["error"]["message"]
    assert "did not declare the sampling capability" in written[2]["error"]["message"]


def test_a_call_that_ends_tells_the_server_its_requests_get_no_answer():
    requests, written = relay()
    call = Pending(1, session="s1", asks=frozenset({"sampling"}))
    requests.received(SAMPLE, call, "")
    requests.received({**SAMPLE, "id": 9}, call, "")
    tokens = [call.events.get_nowait()[1]["id"] for _ in range(2)]
    requests.ended(call)
    assert sorted((m["id"], m["error"]["code"]) for m in written) == [(5, -32003), (9, -32003)]
    assert not any(requests.answered("s1", {"id": t, "result": RESULT}) for t in tokens)  # late


@pytest.fixture(scope="module")
def asking(tmp_path_factory):
    server = StdioServer(McpServer("asking", sys.executable, (ASKING,)), str(tmp_path_factory.mktemp("home")),
                         environ={"PATH": os.environ["PATH"]})
    server.start()
    assert server.ready.wait(30), server.last_error
    yield server
    server.stop()


def tool(name, **arguments):
    return {"jsonrpc": "2.0", "id": "c", "method": "tools/call", "params": {"name": name, "arguments": arguments}}


def test_a_stdio_servers_request_reaches_the_one_call_in_flight(asking):
    asked: list[dict] = []
    got = threading.Event()

    def on_ask(message):
        asked.append(message)
        got.set()

    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(asking.call(
        tool("sample", prompt="p"), 20, session="s1", asks=frozenset({"sampling"}), on_ask=on_ask)))
    thread.start()
    assert got.wait(20)
    assert asking.client_requests.answered("s1", {"id": asked[0]["id"], "result": RESULT})
    thread.join(20)
    assert answer["id"] == "c" and answer["result"]["content"][0]["text"] == "sampled: hi"


def test_rounds_ask_for_input_then_answer_the_next_request(asking):
    rounds = Rounds()
    first = rounds.first(asking.call, asking.answered, tool("sample", prompt="r"), 20, "stateless:1",
                         {"asks": ["sampling"], "owner": "key:a", "name": "/sample"}, None)
    result = first["result"]
    assert first["id"] == "c" and result["resultType"] == "input_required"
    (token, asked), = result["inputRequests"].items()
    assert asked["method"] == "sampling/createMessage" and "id" not in asked
    state = result["requestState"]
    assert rounds.resume(state, "key:b", "/sample", {token: RESULT}, "n", None) is None  # another key's
    assert rounds.resume(state, "key:a", "/confirm", {token: RESULT}, "n", None) is None  # another tool
    done = rounds.resume(state, "key:a", "/sample", {token: RESULT}, "n", None)
    assert done is not None and done["id"] == "n" and done["result"]["content"][0]["text"] == "sampled: hi"
    assert rounds.resume(state, "key:a", "/sample", {token: RESULT}, "n", None) is None  # good once
