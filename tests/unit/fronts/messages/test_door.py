"""The Messages door's events, errors and headers (argoproxy/fronts/messages/door.py)."""

from __future__ import annotations

from tests.unit.fronts.messages.test_request import FRONT


def test_encoding_error_shape_and_key():
    assert FRONT.encode_event({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert FRONT.error_body(429, {"message": "slow down"}, "rid") == {
        "type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}, "request_id": "rid"}
    assert FRONT.error_body(503, {"message": "x"}, "r")["error"]["type"] == "overloaded_error"
    headers = {"X-Api-Key": "sk-1", "Anthropic-Version": "2023-06-01", "Anthropic-Beta": "a,b", "Accept": "x"}
    assert FRONT.client_key(headers) == "sk-1"
    assert FRONT.upstream_headers(headers) == {"Accept": "x", "Authorization": "Bearer sk-1"}
