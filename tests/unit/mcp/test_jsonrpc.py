"""One JSON-RPC message per POST, read strictly: what is not one gets the specification's error."""

import json

import pytest

from argoproxy.mcp import jsonrpc


def refused(body: bytes, limit: int = 1000) -> jsonrpc.RpcError:
    with pytest.raises(jsonrpc.RpcError) as caught:
        jsonrpc.parse(body, limit)
    return caught.value


def test_a_request_a_notification_and_a_response_are_read():
    request = jsonrpc.parse(b'{"jsonrpc":"2.0","id":7,"method":"tools/list"}', 1000)
    assert request.is_request and request.id == 7 and request.method == "tools/list" and request.params == {}
    note = jsonrpc.parse(b'{"jsonrpc":"2.0","method":"notifications/initialized"}', 1000)
    assert note.is_notification
    response = jsonrpc.parse(b'{"jsonrpc":"2.0","id":"a","result":{}}', 1000)
    assert not response.is_request and not response.is_notification


def test_not_json_is_a_parse_error():
    err = refused(b"{not json")
    assert (err.code, err.status, err.id) == (jsonrpc.PARSE_ERROR, 400, None)
    assert err.answer() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": err.message}}


def test_a_batch_is_refused():
    err = refused(json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]).encode())
    assert err.code == jsonrpc.INVALID_REQUEST and "batch" in err.message


@pytest.mark.parametrize("message", [
    {"id": 1, "method": "ping"},  # no jsonrpc member
    {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    {"jsonrpc": "2.0", "id": None, "method": "ping"},  # null ids are not MCP's
    {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
    {"jsonrpc": "2.0", "id": True, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1, "method": 3},
    {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]},
    {"jsonrpc": "2.0", "id": 1},  # neither result nor error
    {"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}},
    "ping", 3,
])
def test_what_is_no_message_is_an_invalid_request(message):
    err = refused(json.dumps(message).encode())
    assert (err.code, err.status) == (jsonrpc.INVALID_REQUEST, 400)


def test_an_invalid_request_keeps_the_id_it_could_read():
    assert refused(b'{"jsonrpc":"2.0","id":4,"method":""}').id == 4


def test_an_oversized_message_is_refused_before_it_is_read():
    err = refused(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * 2000 + b'"}}', 1000)
    assert (err.code, err.status) == (jsonrpc.INVALID_REQUEST, 413)


@pytest.mark.parametrize("levels", [128, 129, 1200])
def test_a_message_nested_past_the_proxys_bound_is_refused_by_it(levels):
    """The bound of the proxy's other routes (128 levels, the message's own braces counted): a deeper message never
    reaches a server, and one too deep for the parser itself gets the same answer, not "not JSON"."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"a":' + b"[" * (levels - 2) + b"]" * (levels - 2) + b"}}"
    if levels <= 128:
        assert jsonrpc.parse(body, 10**7).method == "tools/call"
        return
    with pytest.raises(jsonrpc.RpcError) as refused:
        jsonrpc.parse(body, 10**7)
    assert refused.value.status == 400 and refused.value.answer()["error"] == {
        "code": jsonrpc.PARSE_ERROR, "message": "Parse error: the message is nested more than 128 levels deep."}
