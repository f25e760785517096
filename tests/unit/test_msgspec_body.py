"""edge/msgspec_body.py: msgspec's reading of a request body is taken only where it is the json module's.

Differential: JSON texts written every which way (escapes for any character, colons in keys and values, keys
given twice at any depth, white space, numbers of every form), and texts broken at random. Wherever msgspec's
reading is taken, the json module (with the proxy's own hooks) reads the same value, of the same types, and
does not refuse the text; a key given twice is never taken."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings, strategies as st

from argoproxy.edge import request_body
from argoproxy.edge.msgspec_body import UNREAD, read_body
from argoproxy.errors import ProxyError

KEYS = st.sampled_from(["a", "b", "a:", ":", "model", "é", "k:v:w", ""])
TEXTS = st.text(alphabet=st.sampled_from(list("ab: \"\\/é\n\t☕") + ["\U0001f600", "\x7f"]), max_size=8)
NUMBERS = st.sampled_from(["0", "-0", "1", "-1", "1.5", "-0.0", "1e16", "1E-5", "2.5e+3", "123456789012345678901234567890",
                           "1e400", "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "0x10", "+1"])


def write_string(draw: Any, text: str) -> str:
    """`text` as a JSON string, each character plain or as a \\u escape (colons included)."""
    out = []
    for char in text:
        escape = draw(st.integers(0, 3)) == 0
        if char in '"\\' or ord(char) < 0x20 or (escape and ord(char) < 0x10000):
            out.append("\\u%04x" % ord(char) if draw(st.booleans()) or char not in '"\\' else "\\" + char)
        elif escape:  # beyond the BMP: a surrogate pair
            code = ord(char) - 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@st.composite
def json_texts(draw: Any, depth: int = 0) -> str:
    kind = draw(st.sampled_from(["object", "object", "array", "string", "number", "literal"] if depth < 3
                                else ["string", "number", "literal"]))
    space = draw(st.sampled_from(["", " ", "\n", "\t ", "\r\n"]))
    if kind == "object":
        keys = draw(st.lists(KEYS, max_size=4))
        members = [space + write_string(draw, key) + space + ":" + space + draw(json_texts(depth + 1))
                   for key in keys]
        return "{" + ",".join(members) + space + "}"
    if kind == "array":
        return "[" + ",".join(space + draw(json_texts(depth + 1)) for _ in range(draw(st.integers(0, 3)))) + "]"
    if kind == "string":
        return write_string(draw, draw(TEXTS))
    if kind == "number":
        return draw(NUMBERS)
    return draw(st.sampled_from(["true", "false", "null"]))


def same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down (so 1 is not 1.0, and -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is float:
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


def json_reading(raw: bytes) -> Any:
    """What the json module with the proxy's hooks reads, or the error it raises."""
    try:
        return json.loads(raw, parse_constant=request_body._no_constant, parse_float=request_body._finite_float,
                          object_pairs_hook=request_body._unique_keys)
    except (ValueError, RecursionError) as err:
        return err


def check(raw: bytes) -> None:
    taken = read_body(raw)
    if taken is UNREAD:
        return
    reference = json_reading(raw)
    assert not isinstance(reference, Exception), f"msgspec took what json refuses: {reference!r}"
    assert same(taken, reference)


@settings(max_examples=400, deadline=None)
@given(text=json_texts())
@example(text='{"a:":1,"a\\u003a":2}')
@example(text='{"a\\u003A":1,"a:":{"b":[1,{"a\\u003a":2}]}}')
@example(text='{"x":{"k":1,"k":2},"s":"a:b"}')
@example(text='[{"k":1},{"k":1,"k":2}]')
def test_msgspec_is_taken_only_where_it_reads_as_json_does(text: str) -> None:
    check(text.encode())


@settings(max_examples=300, deadline=None)
@given(text=json_texts(), cut=st.integers(0, 200), insert=st.sampled_from([b"", b",", b":", b'"', b"\\", b"}", b"\xff",
                                                                          b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf"]))
def test_broken_texts_are_never_taken_unless_json_reads_them_alike(text: str, cut: int, insert: bytes) -> None:
    raw = text.encode()
    at = cut % (len(raw) + 1)
    check(raw[:at] + insert + raw[at:])


@pytest.mark.parametrize("raw", [
    b'{"a":1,"a":2}', b'{"a":{"b":1,"b":2}}', b'{"m":"x:y","a":[{"k":1,"k":1}]}', b'{"a:":1,"a\\u003a":2}',
    b'{"\\u0061":1,"a":2}', b'{"k":"' + b"x" * 300_000 + b'","k":"y"}',
])
def test_a_key_given_twice_is_refused_in_the_proxys_words(raw: bytes) -> None:
    assert read_body(raw) is UNREAD
    with pytest.raises(ProxyError) as err:
        request_body.parse_object(raw)
    assert err.value.code == "duplicate_key"


def test_a_long_body_is_taken_and_read_as_json_reads_it() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "a: b\n" * 100_000}], "n": 1.0}
    raw = json.dumps(body).encode()
    assert same(read_body(raw), body)
    escaped = raw.replace(b"a: b", b"a\\u003a b", 1)  # one colon written as an escape: the count cannot tell
    assert read_body(escaped) is UNREAD and same(request_body.parse_object(escaped), body)  # json decides
    literal = json.dumps({**body, "note": "\\u003a"}).encode()  # the text of an escape, not one: json decides too
    assert read_body(literal) is UNREAD and request_body.parse_object(literal)["note"] == "\\u003a"


@pytest.mark.parametrize("text", [
    '{"k:v": "x:y", "list": ["a:b", {"c:": 1, "d": ":"}], "e": "caf\\u00e9 \\n \\" \\\\"}',
    '{"model": "m", "messages": [{"role": "user", "content": "http://x: a\\tb"}], "n": 1.5e3, "big": 123456789012345678901}',
    '[{"a": 1}, "x:", [[]]]', '":"', '12', 'null',
])
def test_bodies_without_a_repeated_key_are_taken(text: str) -> None:
    raw = text.encode()
    assert same(read_body(raw), json.loads(raw))
