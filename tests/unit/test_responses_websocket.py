"""The Responses WebSocket's logic in-process: the session through the real door (build_proxy over the fake
upstream object), and the connection's loop over a scripted stand-in for its frames (limits, the busy error,
close codes). The wire (Gunicorn, the socket, the official SDK) is tests/integration/test_responses_websocket.py."""

from __future__ import annotations

import json

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.responses.websocket import connection
from argoproxy.fronts.responses.websocket.connection import ConnectionLimits, serve
from argoproxy.fronts.responses.websocket.session import Closing, Session, sse_data


def session_of(door, headers=None, check_key=lambda: None):
    return Session(door.handle, headers or {"Host": "127.0.0.1:5000", "Upgrade": "websocket"}, check_key)


def events(session, event: dict) -> list[dict]:
    return [json.loads(text) for text in session.respond(json.dumps(event)) if text]


def sent_messages(up, index: int = -1) -> list[dict]:
    return json.loads(up.sent[index].body)["messages"]


def test_a_response_create_is_the_http_stream_and_its_events_come_out_whole(make):
    door, up, calls = make()
    out = events(session_of(door), {"type": "response.create", "model": "gpt-4o", "input": "hi", "store": False})
    types = [e["type"] for e in out]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "".join(e["delta"] for e in out if e["type"] == "response.output_text.delta") == "Hello"
    assert json.loads(up.sent[0].body)["stream"] is True and sent_messages(up)[-1]["content"] == "hi"
    assert len(calls) == 1 and calls[0].start.client.front == "responses"  # one observed call per response, as over HTTP


def test_previous_response_id_with_store_false_continues_from_the_connection(make):
    door, up, _ = make()
    session = session_of(door)
    first = events(session, {"type": "response.create", "model": "gpt-4o", "input": "one", "store": False})[-1]
    second = events(session, {"type": "response.create", "model": "gpt-4o", "input": "two", "store": False,
                              "previous_response_id": first["response"]["id"]})[-1]
    assert second["type"] == "response.completed"
    assert [(m["role"], m["content"]) for m in sent_messages(up)] == [
        ("user", "one"), ("assistant", "Hello"), ("user", "two")]
    assert "previous_response_id" not in json.loads(up.sent[-1].body)


def test_a_stored_response_is_continued_by_the_store(make):
    door, up, _ = make()
    session = session_of(door)
    first = events(session, {"type": "response.create", "model": "gpt-4o", "input": "one"})[-1]["response"]
    assert first["store"] is True and session.cached.stored
    second = events(session, {"type": "response.create", "model": "gpt-4o", "input": "two",
                              "previous_response_id": first["id"]})[-1]["response"]
    assert second["previous_response_id"] == first["id"]  # the store's chain, as over HTTP
    assert [m["content"] for m in sent_messages(up)] == ["one", "Hello", "two"]


def test_an_id_not_on_the_connection_goes_to_the_door(make):
    door, up, _ = make()
    out = events(session_of(door), {"type": "response.create", "model": "gpt-4o", "input": "x", "store": False,
                                    "previous_response_id": "resp_elsewhere"})
    assert [e["type"] for e in out] == ["error"] and out[0]["status"] == 400 and up.sent == []
    assert out[0]["error"]["code"] == "previous_response_not_found"


def test_a_warm_up_generates_nothing_and_its_id_is_continued(make):
    door, up, _ = make()
    checked = []
    session = session_of(door, check_key=lambda: checked.append(1))
    warm = events(session, {"type": "response.create", "model": "gpt-4o", "generate": False, "store": False,
                            "input": [{"role": "user", "content": "context"}]})
    assert [e["type"] for e in warm] == ["response.created", "response.completed"] and up.sent == [] and checked
    assert warm[-1]["response"]["output"] == []
    events(session, {"type": "response.create", "model": "gpt-4o", "input": "go", "store": False,
                     "previous_response_id": warm[-1]["response"]["id"]})
    assert "context" in sent_messages(up)[0]["content"] and sent_messages(up)[-1]["content"].endswith("go")


def test_a_warm_up_with_a_refused_key_closes_with_1008(make):
    door, _, _ = make()

    def refuse():
        raise ProxyError(401, "Invalid API key.", type="invalid_request_error", code="invalid_api_key")
    session = session_of(door, check_key=refuse)
    replies = session.respond(json.dumps({"type": "response.create", "model": "m", "generate": False}))
    assert json.loads(next(replies))["status"] == 401
    with pytest.raises(Closing) as closing:
        next(replies)
    assert closing.value.code == 1008


def test_a_key_the_door_refuses_is_an_error_event_then_1008(make):
    door, up, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="k1")
    session = session_of(door, {"Authorization": "Bearer not-a-key"})
    replies = session.respond(json.dumps({"type": "response.create", "model": "gpt-4o", "input": "x"}))
    error = json.loads(next(replies))
    assert error["type"] == "error" and error["status"] == 401 and error["error"]["code"] == "invalid_api_key"
    with pytest.raises(Closing) as closing:
        next(replies)
    assert closing.value.code == 1008 and up.sent == []


@pytest.mark.parametrize("message, code", [
    ("{not json", "invalid_json"), ("[1]", "invalid_event"), ('{"type": "session.update"}', "unknown_event_type"),
    ('{"type": "response.create", "model": "m", "input": "x", "background": true}', "unsupported_parameter"),
])
def test_bad_client_events_are_error_events_and_the_connection_stays(make, message, code):
    door, up, _ = make()
    out = [json.loads(t) for t in session_of(door).respond(message)]
    assert [(e["type"], e["error"]["code"]) for e in out] == [("error", code)] and up.sent == []


def test_a_bad_request_is_the_doors_error_with_its_status(make):
    door, _, _ = make()
    out = events(session_of(door), {"type": "response.create", "input": "no model"})
    assert out[0]["type"] == "error" and out[0]["status"] == 400 and out[0]["error"]["message"]


def test_sse_data_reads_events_split_anywhere_and_marks_keepalives():
    stream = [b'event: a\ndata: {"type":', b'"a"}\n\n: keepalive\n\n', b'data: {"type":"b"}\n', b"\ndata: [DONE]\n\n"]
    assert list(sse_data(stream)) == [b'{"type":"a"}', b"", b'{"type":"b"}']


# ---------------------------------------------------------------- the connection's loop


class Script:
    """Frames that hand the loop scripted client messages and record what it sends and how it closes."""

    def __init__(self, incoming, waiting=()):
        self.incoming, self.pending = list(incoming), list(waiting)
        self.sent, self.closed = [], None

    def read(self, timeout):
        if self.pending and self.sent:  # sent while a response runs
            return [self.pending.pop(0)]
        if not self.incoming:
            raise Closing(1000, "the client closed")
        item = self.incoming.pop(0)
        return [] if item is None else [item]

    def waiting(self):
        return bool(self.pending and self.sent)

    def send_text(self, text):
        self.sent.append(json.loads(text))

    def close(self, code, reason):
        self.closed = (code, reason)


class Clock:
    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


CREATE = json.dumps({"type": "response.create", "model": "gpt-4o", "input": "hi", "store": False})
LIMITS = ConnectionLimits(lifetime=3600, idle=600)


def test_a_response_create_sent_while_one_runs_gets_the_busy_error(make):
    door, up, _ = make()
    frames = Script([CREATE], waiting=[CREATE])
    assert serve(frames, session_of(door), LIMITS, lambda: False) == 1000
    busy = [e for e in frames.sent if e["type"] == "error"]
    assert [e["error"]["code"] for e in busy] == ["conversation_already_has_active_response"]
    assert frames.sent[-1]["type"] == "response.completed" and len(up.sent) == 1


def test_the_lifetime_limit_sends_its_error_then_closes_normally(make):
    door, _, _ = make()
    frames = Script([None] * 10)
    assert serve(frames, session_of(door), ConnectionLimits(lifetime=3, idle=600), lambda: False, Clock(1.0)) == 1000
    assert frames.sent[-1]["error"]["code"] == "websocket_connection_limit_reached"


def test_the_idle_limit_closes_normally_without_an_event(make):
    door, _, _ = make()
    frames = Script([None] * 10)
    assert serve(frames, session_of(door), ConnectionLimits(lifetime=3600, idle=2), lambda: False, Clock(1.0)) == 1000
    assert frames.sent == [] and frames.closed[0] == 1000


def test_the_worker_leaving_closes_with_1001(make):
    door, _, _ = make()
    frames = Script([None] * 10)
    assert serve(frames, session_of(door), LIMITS, lambda: True) == 1001 and frames.closed[0] == 1001


def test_a_failure_closes_with_1011(make, monkeypatch):
    door, _, _ = make()

    def broken(*args):
        raise RuntimeError("a bug")
    monkeypatch.setattr(connection, "answer", broken)
    frames = Script([CREATE])
    assert serve(frames, session_of(door), LIMITS, lambda: False) == 1011 and frames.closed[0] == 1011


# ---------------------------------------------------------------- the frames, over a real socket pair


def frames_pair(max_message=1024):
    """(the server's Frames, the client's WSConnection, the client's socket), the handshake done."""
    import socket

    from wsproto import ConnectionType, WSConnection
    from wsproto.events import Request

    from argoproxy.fronts.responses.websocket.frames import Frames, accept

    server_sock, client_sock = socket.socketpair()
    client = WSConnection(ConnectionType.CLIENT)
    hello = client.send(Request(host="127.0.0.1", target="/v1/responses"))
    head, _, _ = hello.partition(b"\r\n\r\n")
    headers = [tuple(part.strip() for part in line.split(b":", 1)) for line in head.split(b"\r\n")[1:]]
    ws, answer = accept([(k.lower(), v) for k, v in headers], b"/v1/responses")
    client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n" + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in answer) + b"\r\n")
    list(client.events())
    return Frames(ws, server_sock, max_message, 5.0), client, client_sock


def client_events(client, sock):
    client.receive_data(sock.recv(65536))
    return list(client.events())


def test_frames_read_whole_messages_and_answer_pings():
    from wsproto.events import Message, Ping, Pong

    frames, client, sock = frames_pair()
    sock.sendall(client.send(Ping(payload=b"hi")) + client.send(Message(data='{"a":', message_finished=False)))
    assert frames.read(1.0) == []  # half a message: nothing yet, the ping answered
    assert [type(e) for e in client_events(client, sock)] == [Pong]
    sock.sendall(client.send(Message(data="1}")))
    assert frames.read(1.0) == ['{"a":1}']


@pytest.mark.parametrize("send, code", [("too big", 1009), ("bytes", 1003)])
def test_frames_refuse_a_message_too_big_or_binary(send, code):
    from wsproto.events import CloseConnection, Message

    frames, client, sock = frames_pair(max_message=16)
    sock.sendall(client.send(Message(data="x" * 17 if send == "too big" else b"\x00\x01")))
    with pytest.raises(Closing) as closing:
        frames.read(1.0)
    assert closing.value.code == code
    frames.close(closing.value.code, closing.value.reason)
    assert [e.code for e in client_events(client, sock) if isinstance(e, CloseConnection)] == [code]
