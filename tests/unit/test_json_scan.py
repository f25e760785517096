"""edge/json_scan.py and a long body's checks (issue 38, item 10): the counts outside strings are exact on
every JSON text; a long body is read exactly as a short one is (same value, same refusals); and the checks cost
no Python code per value, so no body a client writes makes them slow (figures: bench/hostile_bodies.py)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest
from hypothesis import example, given, settings, strategies as st

from argoproxy.edge import request_body
from argoproxy.edge.json_scan import scan, string_count
from argoproxy.edge.msgspec_body import members_and_depth
from argoproxy.errors import ProxyError
from tests.unit.test_msgspec_body import json_reading, json_texts, same

PAD = b" " * request_body.SCAN_FROM  # white space after the value: the same JSON, read by the long path


def walk(value: Any) -> tuple[int, int, int]:
    """Containers, keys and deepest nesting of a parsed value, the slow and obvious way."""
    if isinstance(value, dict):
        inner = [walk(v) for v in value.values()]
        return 1 + sum(i[0] for i in inner), len(value) + sum(i[1] for i in inner), 1 + max((i[2] for i in inner), default=0)
    if isinstance(value, list):
        inner = [walk(v) for v in value]
        return 1 + sum(i[0] for i in inner), sum(i[1] for i in inner), 1 + max((i[2] for i in inner), default=0)
    return 0, 0, 0


def strings_in(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(strings_in(v) for v in value.values())
    if isinstance(value, list):
        return sum(strings_in(v) for v in value)
    return 1 if isinstance(value, str) else 0


def reading(raw: bytes) -> Any:
    try:
        return request_body.parse_object(raw, must_be_object=False)
    except ProxyError as err:
        return (err.status, err.code)


@settings(max_examples=300, deadline=None)
@given(text=json_texts())
@example(text='{"a": "\\\\\\"[{", "b": ["\\\\", {"c:": ":"}]}')
@example(text='["\\"", "\\\\", "\\\\\\\\\\"", "[{,:"]')
def test_counts_outside_strings_are_exact(text: str) -> None:
    raw = text.encode()
    value = json_reading(raw)
    if isinstance(value, Exception):
        return
    containers, keys, depth = walk(value)
    counts = scan(raw)
    assert (counts.containers, counts.colons, counts.strings) == (containers, keys, strings_in(value))
    assert string_count(raw) == counts.strings
    assert members_and_depth(value, containers) == (keys, depth) == members_and_depth(value, 10**9)


@settings(max_examples=300, deadline=None)
@given(text=json_texts(), cut=st.integers(0, 200), insert=st.sampled_from([b"", b",", b":", b'"', b"\\", b"}", b"[",
                                                                          b"\xff", b"\xed\xa0\x80", b"\x00"]))
@example(text='{"a:":1,"a\\u003a":2}', cut=0, insert=b"")
@example(text='[{"k":1},{"k":1,"k":2}]', cut=0, insert=b"")
def test_a_long_body_is_read_as_a_short_one(text: str, cut: int, insert: bytes) -> None:
    """The long path (counted first, checked after msgspec by counting keys against colons) takes the same
    bodies, with the same values, and refuses the same ones with the same code, as the short path."""
    raw = text.encode()
    at = cut % (len(raw) + 1)
    raw = raw[:at] + insert + raw[at:]
    if raw[:1] in request_body._NOT_UTF8_STARTS or raw[1:2] == b"\x00":
        return  # read as UTF-16 or 32 by the json module, where the padding is text: the door re-encodes these first
    short, long = reading(raw), reading(raw + PAD)
    if isinstance(short, tuple):
        assert long == short, raw
    else:
        assert same(long, short), raw


def test_a_repeated_key_deep_in_a_long_body_is_named():
    raw = b'{"model": "m", "x": [' + b"1," * 100_000 + b'{"a": {"k": 1, "k": 2}}]}'
    with pytest.raises(ProxyError) as err:
        request_body.parse_object(raw)
    assert err.value.code == "duplicate_key" and err.value.param == "k"


@pytest.mark.parametrize("depth, refused", [(128, False), (129, True)])
def test_nesting_is_checked_on_a_long_body(depth, refused):
    raw = b'{"x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b', "pad": "' + b"a" * request_body.SCAN_FROM + b'"}'
    if refused:
        with pytest.raises(ProxyError, match="nested more than 128"):
            request_body.parse_object(raw)
    else:
        assert request_body.parse_object(raw)["x"] == [] if depth == 2 else True


# The worst bodies a client can write for each step: strings holding brackets (the counting skipped them with
# a regular expression, 47 ms/MB), numbers with an object last (no list search skipped), keys.
HOSTILE = {
    "strings": lambda n: b'{"model":"m","x":[' + b",".join([b'"["'] * n) + b"]}",
    "escaped quotes": lambda n: b'{"model":"m","x":[' + b",".join([b'"\\""'] * n) + b"]}",
    "numbers": lambda n: b'{"model":"m","x":[' + b",".join([b"1"] * n) + b",{}]}",
    "keys": lambda n: b"{" + b",".join(b'"k%d":":"' % i for i in range(n)) + b"}",
}


def python_lines(step) -> int:
    """How many lines of Python code run in `step` (tracing every frame, the proxy's code included)."""
    lines = 0

    def tracer(frame, event, arg):
        nonlocal lines
        if event == "line":
            lines += 1
        return tracer

    sys.settrace(tracer)
    try:
        step()
    finally:
        sys.settrace(None)
    return lines


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_the_checks_run_no_python_code_per_value(kind):
    """Load-proof: the lines of Python run for a body of 400,000 values are those run for 40,000 (give or take
    a window's and a level's), so the cost per value is C's. The regular expression and the walks before ran a
    Python loop per value or per string (2.5 s for a 31 MB body)."""
    small, large = HOSTILE[kind](40_000), HOSTILE[kind](400_000)
    assert len(small) >= request_body.SCAN_FROM
    assert python_lines(lambda: request_body.parse_object(large)) < python_lines(
        lambda: request_body.parse_object(small)) + 200


def test_a_31_mb_body_of_8_million_strings_is_refused_in_bounded_cpu():
    """The issue's body: 2.5 s of a worker's CPU in the repeated-key and container counting before, then a
    0.4 s parse no other request could interrupt. Now refused by its count of values: about 35 ms (bound: 0.5 s,
    CPU time of this process, which other processes' load changes little)."""
    raw = HOSTILE["strings"](8_000_000)
    assert len(raw) > 31_000_000
    start = time.process_time()
    with pytest.raises(ProxyError) as err:
        request_body.parse_object(raw)
    assert time.process_time() - start < 0.5
    assert err.value.status == 400 and f"{request_body.MAX_VALUES:,} values" in err.value.message


def test_a_body_at_the_budget_of_values_is_served():
    raw = HOSTILE["strings"](request_body.MAX_VALUES - 10)
    assert len(request_body.parse_object(raw)["x"]) == request_body.MAX_VALUES - 10
    with pytest.raises(ProxyError, match="values"):
        request_body.parse_object(HOSTILE["strings"](request_body.MAX_VALUES))
