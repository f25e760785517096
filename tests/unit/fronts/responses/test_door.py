"""The Responses door's events, errors and exchange (argoproxy/fronts/responses/door.py)."""

from __future__ import annotations

from argoproxy.fronts.front import Exchange
from tests.unit.fronts.responses.test_request import FRONT


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
