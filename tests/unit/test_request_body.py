"""argoproxy.edge.request_body in-process: the container budget that keeps a body's parse under a second of CPU."""

from __future__ import annotations

import json
import time

import pytest

from argoproxy.errors import ProxyError
from argoproxy.edge import byte_counts, request_body
from argoproxy.edge.request_body import MAX_CONTAINERS, containers, parse_object


@pytest.mark.parametrize("text,count", [
    ('{"a": [1, {"b": []}]}', 4),
    ('{"a": "{[", "b": "\\"[{\\\\", "c": [{}]}', 3),  # braces in strings, escaped quotes and backslashes
    ('"{[{["', 0),
    ('[]', 1),
])
def test_containers_are_counted_outside_strings(text, count):
    raw = text.encode()
    assert containers(raw, 0) == count  # strings stripped
    assert containers(raw, 10**9) == raw.count(b"{") + raw.count(b"[")  # under the bound: the plain count


def test_a_body_of_a_million_tiny_objects_is_refused_before_it_is_parsed():
    raw = b'{"model": "m", "messages": [' + b",".join([b"{}"] * 1_000_000) + b"]}"
    start = time.process_time()
    with pytest.raises(ProxyError) as info:
        parse_object(raw)
    assert time.process_time() - start < 0.5  # counting, not parsing (which took seconds)
    assert info.value.status == 400 and f"{MAX_CONTAINERS:,}" in info.value.message


def test_braces_inside_text_do_not_count():
    code = "int f(int a[]) { return a[0]; }\n" * 200_000  # 1.2 million braces, in one string
    body = parse_object(json.dumps({"model": "m", "messages": [{"role": "user", "content": code}]}).encode())
    assert body["messages"][0]["content"] == code


def test_a_body_at_the_budget_is_served():
    raw = b'{"model": "m", "x": [' + b",".join([b"[]"] * (MAX_CONTAINERS - 2)) + b"]}"
    assert len(parse_object(raw)["x"]) == MAX_CONTAINERS - 2
    with pytest.raises(ProxyError):
        parse_object(raw.replace(b"[[]", b"[[],[]", 1))


@pytest.mark.parametrize("raw", [
    b"",
    b'{"a":[1,{"b":"{["}]}',
    b'{"model":"m","messages":[{"role":"user","content":"' + b"x" * (5 << 20) + b'"}]}',  # sparse: jumps
    b"[" + b"{}," * 400_000 + b"{}]",  # dense and long: falls back to counting
    b'"' + b"{" * 300_000 + b'"',  # brackets inside a string count too (containers() removes them)
])
def test_brackets_counts_every_opening_bracket_however_the_body_is_laid_out(raw):
    assert request_body.brackets(raw) == raw.count(b"{") + raw.count(b"[")


def test_a_long_body_with_too_many_containers_is_still_refused():
    raw = b'{"a":[' + b"[]," * (request_body.MAX_CONTAINERS + 1) + b"[]]}"
    assert len(raw) > byte_counts.FIND_FROM
    with pytest.raises(ProxyError) as err:
        request_body.parse_object(raw)
    assert "arrays and objects" in err.value.message


@pytest.mark.parametrize("tail", [b'"\\' * 30_000, b'"x\\' * 20_000])
def test_strings_left_open_cost_one_pass(tail):
    # Over the budget, the strings are skipped by a regular expression. A string that never closes made its match
    # fail after scanning to the end, and the search began again at the next quote: quadratic (`"\` repeated
    # 16,000 times took 2.7 s; a megabyte of it, hours of a worker's CPU, under gevent every other stream too).
    raw = b'{"a":' + b"[" * (MAX_CONTAINERS + 1) + tail
    start = time.process_time()
    with pytest.raises(ProxyError) as info:
        parse_object(raw)
    assert time.process_time() - start < 0.5
    assert info.value.status == 400


@pytest.mark.parametrize("text,count", [
    ('[["\\', 2), ('[["{[', 2), ('["a\\"", [', 2), ('["\\\\", [', 2), ('[ "\\\n{", {', 2),
])
def test_a_string_left_open_runs_to_the_end(text, count):
    assert containers(text.encode(), 0) == count


def test_a_body_too_deep_for_the_parser_gets_the_depth_answer_however_deep_the_stack_stands():
    """json.loads stops at the interpreter's recursion limit, which counts the frames under it too: a body some
    900 levels deep parsed under a deeper stack (another way of starting the server) raised RecursionError, and
    the client was told something other than the depth limit every other too-deep body is told."""
    raw = ('{"a":' * 900 + "1" + "}" * 900).encode()

    def under(frames: int) -> str:
        if frames:
            return under(frames - 1)
        with pytest.raises(ProxyError) as refused:
            parse_object(raw)
        return str(refused.value)

    for frames in (0, 60):
        assert f"more than {request_body.MAX_DEPTH} levels" in under(frames)
