"""argoproxy/jsonfast.py: msgspec does the work, and every answer is the standard library's.

Decoding: whatever msgspec reads must equal json.loads of the same text, and whatever json.loads reads must be
read (through the fallback). Encoding: the bytes mean what json.dumps's mean, key order included, and are the
same bytes wherever no float is involved (floats may be written `1e16` instead of `1e+16`).
"""

from __future__ import annotations

import json
import math

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from argoproxy import jsonfast

# Text with what JSON and UTF-8 make awkward: escapes, quotes, controls, non-ASCII, line separators, surrogates.
awkward_text = st.text(st.characters(codec=None, blacklist_categories=()), max_size=40) | st.sampled_from(
    ["", "\"", "\\", "\u2028", "\x00", "</script>", "\ud800", "a\udfffb", "é中😀"])
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10 ** 40), max_value=10 ** 40)
           | st.floats(allow_nan=False, allow_infinity=False) | awkward_text)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(awkward_text, inner, max_size=5), max_leaves=30)


def std(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def same(a, b) -> bool:
    """Equal, with types (1 is not 1.0 or True) and key order."""
    if isinstance(a, float) and isinstance(b, float) and not math.isfinite(a):  # jsonfast.NonFinite is a float
        return math.isnan(b) if math.isnan(a) else a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@settings(max_examples=400, deadline=None)
@given(values)
def test_decoding_gives_what_json_gives(value):
    text = std(value)
    for data in (text, text.encode("utf-8", "surrogatepass"), json.dumps(value)):
        try:
            expected = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            with pytest.raises(ValueError):
                jsonfast.loads(data)
            continue
        assert same(jsonfast.loads(data), expected), data


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_decoding_any_bytes_gives_what_json_gives(data):
    try:
        expected = json.loads(data)
    except ValueError:
        with pytest.raises(ValueError):
            jsonfast.loads(data)
        return
    assert same(jsonfast.loads(data), expected)


@pytest.mark.parametrize("data", [
    b'{"a":NaN,"b":-Infinity}', b'"\\ud800"', b'"\\udfff x \\ud83d\\ude00"', b'123456789012345678901234567890',
    b'-98765432109876543210987654321.5e-3', b'1e400', b'\xef\xbb\xbf{"a":1}', b'{"a":1,"b":2,"a":3}',
    '{"a":"\ud800"}', b'[' * 3000 + b']' * 3000, "[1]".encode("utf-16"), b'[-0.0, 0.1, 5e-324, 1.7976931348623157e308]',
])
def test_the_edges_where_msgspec_and_json_part(data):
    try:
        expected = json.loads(data)
    except RecursionError:
        with pytest.raises(ValueError, match="too deeply"):
            jsonfast.loads(data)
        return
    assert same(jsonfast.loads(data), expected)


@pytest.mark.parametrize("data", [b"", b"[1,]", b"01", b'"\x01"', b"[]x", b'"\xff"', b"{'a':1}", b"nan", b"[1e999999]x"])
def test_what_json_refuses_is_refused(data):
    with pytest.raises(ValueError):
        json.loads(data)
    with pytest.raises(ValueError):
        jsonfast.loads(data)


@settings(max_examples=400, deadline=None)
@given(values)
def test_encoding_means_what_json_means(value):
    data = jsonfast.dumps(value)
    assert isinstance(data, bytes)
    assert same(json.loads(data), value)
    if "\\ud" not in json.dumps(value) or data.isascii():  # text with lone surrogates goes out \u-escaped
        if not _has_float(value):
            assert data == std(value).encode("utf-8", "surrogatepass") or data == json.dumps(
                value, separators=(",", ":")).encode()


def _has_float(value) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def test_lone_surrogates_are_encoded_as_escapes_and_big_integers_exactly():
    assert jsonfast.dumps({"t": "a\ud800b"}) == b'{"t":"a\\ud800b"}'
    assert jsonfast.dumps({"n": 10 ** 30, "m": -(10 ** 25)}) == b'{"n":1000000000000000000000000000000,"m":-10000000000000000000000000}'
    assert jsonfast.dumps(["é", "\u2028", "\x1f"]) == std(["é", "\u2028", "\x1f"]).encode()


def test_deep_nesting_is_encoded_as_json_encodes_it():
    nested: list = []
    inner = nested
    for _ in range(600):
        inner.append([])
        inner = inner[0]
    assert jsonfast.dumps(nested) == std(nested).encode()


def test_msgspec_does_the_work():
    """The fast reader and writer are really used (a mistake in the import would pass every test above)."""
    assert jsonfast._fast_encoder.encode({"a": [1]}) == b'{"a":[1]}'
    calls = []

    class Counting:
        def decode(self, data):
            calls.append(data)
            return msgspec.json.decode(data)

    original = jsonfast._decoder
    jsonfast._decoder = Counting()
    try:
        assert jsonfast.loads(b'{"a":1}') == {"a": 1}
    finally:
        jsonfast._decoder = original
    assert calls == [b'{"a":1}']


@pytest.mark.parametrize("data", [b'{"a":NaN,"b":-Infinity,"c":Infinity}', b'[1e400,-1e999,0.5]',
                                  '{"logprob":-Infinity,"t":"\ud800"}', b'\xef\xbb\xbf[NaN]'])
def test_non_finite_numbers_are_written_again_as_json_wrote_them(data):
    """msgspec writes NaN and the infinities as null; what json read as NaN or -Infinity must go on as json
    writes it (an upstream's `-Infinity` logprob went on as null once the proxy had parsed its event)."""
    value = jsonfast.loads(data)
    assert jsonfast.dumps(value) == json.dumps(json.loads(data), separators=(",", ":")).encode()
    assert same(json.loads(jsonfast.dumps(value)), json.loads(data))


def test_a_think_filtered_event_keeps_its_infinite_logprob():
    from argoproxy.pipeline.filters import think_items
    from argoproxy.pipeline.think import ThinkConfig
    from argoproxy.upstream import sse
    event = (b'data: {"choices":[{"index":0,"delta":{"content":"<think>a</think>b"},'
             b'"logprobs":{"content":[{"token":"b","logprob":-Infinity}]}}]}\n\n')
    out = [item if isinstance(item, bytes) else sse.encode(item) for item in think_items([event], ThinkConfig())]
    assert b'"logprob":-Infinity' in b"".join(out)
