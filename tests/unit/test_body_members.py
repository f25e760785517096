"""edge/body_members.py in-process: a long body's top-level members kept as the client wrote them, and the body
encoded again with only the changed ones re-serialised (issue 22, big bodies)."""

from __future__ import annotations

import json

import pytest

from argoproxy.edge import request_body
from argoproxy.edge.body_members import MEMBERS_FROM, Members, encode_members
from argoproxy.errors import ProxyError
from msgspec import structs

from argoproxy.pipeline.call import Planned

LONG = "x" * MEMBERS_FROM


@pytest.mark.parametrize("text", [
    '{}',
    '{ }',
    '{"model":"m","messages":[{"role":"user","content":"hi"}]}',
    '{ "model" : "m" ,\n "n" : 1.5e3 , "deep": {"a": [1, {"b": null}]}, "t": true }\t\n',
    '{"model":"é","messages":[{"role":"user","content":"caf\\u00e9 ☕ \\ud83d\\ude00"}],"user":"ü"}',
    '{"a":"\\"}\\\\","b":"{[\\"]}"}',  # quotes, braces and backslashes inside strings
])
def test_each_member_is_its_value_as_written(text):
    raw = text.encode()
    body = json.loads(raw)
    pieces = Members(raw, tuple(body)).pieces()
    assert list(pieces) == list(body)
    for key, piece in pieces.items():
        assert bytes(piece) in raw and json.loads(bytes(piece)) == body[key]


def test_a_long_body_is_refused_with_the_same_words_as_a_short_one():
    for raw in (b'{"m":"' + LONG.encode() + b'","a":1,"a":2}', b'{"m":"' + LONG.encode() + b'","a":[1,}',
                b'{"m":"' + LONG.encode() + b'","a":NaN}', b'{"m":"' + LONG.encode() + b'\xff"}',
                b'{"m":"' + LONG.encode() + b'","a":{"b":1,"b":2}}'):
        with pytest.raises(ProxyError) as long_err:
            request_body.parse_with_members(raw)
        with pytest.raises(ProxyError) as short_err:
            request_body.parse_with_members(raw.replace(LONG.encode(), b"x"))
        assert long_err.value.code == short_err.value.code
        assert long_err.value.message.split(":")[0] == short_err.value.message.split(":")[0]


def test_only_long_objects_get_members():
    assert request_body.parse_with_members(b'{"a":1}')[1] is None
    assert request_body.parse_with_members(json.dumps([LONG]).encode(), must_be_object=False)[1] is None
    body, members = request_body.parse_with_members(json.dumps({"model": "m", "input": LONG}).encode())
    assert members is not None and body["input"] == LONG


def test_untouched_members_go_as_the_client_wrote_them():
    raw = ('{"model": "argo:gpt-4o",  "messages": [{"role": "user", "content": "caf\\u00e9 é ' + LONG + '"}],'
           ' "user": "mallory", "timeout": 5}').encode()
    body, members = request_body.parse_with_members(raw)
    body["model"], body["user"], body["stream_options"] = "gpt4o", "alice", {"include_usage": True}
    del body["timeout"]
    out = encode_members(members, body, ("model", "user", "stream_options", "timeout"))
    assert json.loads(out) == body
    assert b'"messages":[{"role": "user", "content": "caf\\u00e9 \xc3\xa9 ' in out  # its spelling kept
    assert list(json.loads(out)) == ["model", "messages", "user", "stream_options"]


def test_the_plan_sends_raw_bytes_spliced_members_or_a_whole_new_body():
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": LONG}]}, indent=1).encode()
    body, members = request_body.parse_with_members(raw)
    planned = Planned(body, raw, members)
    assert planned.body_bytes() is raw and not planned.changed
    body["user"] = "u"
    planned = structs.replace(planned, touched=frozenset({"user"}))
    sent = planned.body_bytes()
    as_written = bytes(members.pieces()["messages"])
    assert planned.changed and json.loads(sent) == body and as_written in sent and b"\n  " in as_written
    body["messages"][0]["content"] = "changed inside"
    planned = structs.replace(planned, rewritten=True)
    assert json.loads(planned.body_bytes()) == body


@pytest.mark.parametrize("text", [
    '{"input": "LONG"}',
    '{ "input" : "LONG" }\n',
    '{"model":"m","input":"LONG"}',
    '{ "model" : "m" ,\n "t": [1, {"b": "}"}], "input": "LONG" }\t\n',
    '{"a":"\\"}\\\\","input":"{[\\"]}LONG"}',  # quotes, braces and backslashes inside strings
])
def test_members_only_added_after_the_written_ones_follow_the_client_bytes(text):
    """No member the client wrote changed, moved or went: its text as it came (a 5 MB context is not walked
    again), the new members after it."""
    raw = text.replace("LONG", LONG).encode()
    body, members = request_body.parse_with_members(raw)
    assert members is not None
    body["user"], body["stream_options"] = "u\u00e9", {"include_usage": True}
    out = encode_members(members, body, ["user", "stream_options"])
    assert json.loads(out) == body and list(json.loads(out)) == list(body)
    assert out.startswith(raw[:raw.rindex(b"}")])


def test_a_written_member_changed_moved_or_gone_is_spliced_instead():
    raw = json.dumps({"model": "m", "input": LONG, "user": "x"}, indent=1).encode()
    for change in ("changed", "moved", "gone"):
        body, members = request_body.parse_with_members(raw)
        if change == "changed":
            body["user"] = "y"
        elif change == "moved":
            body["model"] = body.pop("model")
        else:
            del body["user"]
        body["extra"] = 1
        out = encode_members(members, body, ["user", "model", "extra"])
        assert json.loads(out) == body and list(json.loads(out)) == list(body), change
        assert not out.startswith(raw[:raw.rindex(b"}")]), change


def test_every_member_removed_leaves_an_empty_object():
    raw = json.dumps({"timeout": LONG}).encode()
    body, members = request_body.parse_with_members(raw)
    body.clear()
    assert encode_members(members, body, ["timeout"]) == b"{}"


def test_a_long_utf16_body_is_read_as_a_short_one_is():
    raw = json.dumps({"model": "m", "input": "é" * MEMBERS_FROM}, ensure_ascii=False).encode("utf-16-le")
    body, members = request_body.parse_with_members(raw)
    assert body["input"] == "é" * MEMBERS_FROM and members is None


def test_a_long_body_with_surrogate_bytes_is_encoded_again_with_escapes():
    raw = b'{"model":"m","input":"' + LONG.encode() + b'\xed\xa0\x80"}'
    body, members = request_body.parse_with_members(raw)
    assert members is None and body["input"].endswith("\ud800")
    body["user"] = "u"
    Planned(body, raw, members, frozenset({"user"})).body_bytes().decode("utf-8")  # valid UTF-8: the surrogate goes as an escape
