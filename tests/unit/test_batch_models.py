"""argoproxy.pipeline.batch_models in-process: which routes carry batch work, how a batch file is split and read, and
every spelling a lenient server would take as a line's model."""

from __future__ import annotations

import time

import pytest

from argoproxy.pipeline.batch_models import MAX_CONTAINERS, MAX_LINES, BatchModels, _lines, batch_kind
from argoproxy.edge.request_models import check_named
from argoproxy.errors import ProxyError
from argoproxy.serve.build import door_batches

BATCHES = BatchModels(1 << 20, 10.0)


class CHECK:
    """The batch reader with the guard's check of each name against an allow-list."""

    @staticmethod
    def check_lines(lines, where):
        BATCHES.check_lines(lines, where, lambda model: check_named(("gpt-4o*", "claude-*"), model))


def test_batch_routes_with_and_without_v1():
    assert [batch_kind("POST", p) for p in ("v1/files", "files", "V1/Batches")] == ["upload", "upload", "batch"]
    # a door's own batch route is the door's (Front.batch_routes), not OpenAI's: known only when it is declared
    assert batch_kind("POST", "v1/messages/batches") is None and not BATCHES.lists_requests("POST", "v1/messages/batches")
    declared = BatchModels(1 << 20, 10.0, door_batches())
    assert [declared.lists_requests("POST", p) for p in ("v1/messages/batches", "Messages/Batches", "v1/batches")] \
        == [True, True, True]
    assert not declared.lists_requests("GET", "v1/messages/batches")
    assert not declared.lists_requests("POST", "v1/messages/batches/abc/cancel")
    # Azure OpenAI's spellings carry batch work too (issue 37)
    assert [batch_kind("POST", p) for p in ("openai/files", "openai/batches", "openai/v1/batches", "OpenAI/Files")] \
        == ["upload", "batch", "batch", "upload"]
    assert batch_kind("GET", "v1/files") is None and batch_kind("POST", "v1/files/abc") is None


def test_lines_are_split_wherever_the_chunks_end_and_capped():
    data = b'{"a": 1}\n\n' + b"x" * 5000 + b"\nlast"
    for size in (1, 7, 4096, len(data)):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        assert list(_lines(chunks, 1 << 20)) == data.split(b"\n")
    with pytest.raises(ProxyError) as info:
        list(_lines([b"x" * 600, b"y" * 600], 1000))
    assert info.value.status == 400 and info.value.code == "batch_input_too_large"


def test_a_long_line_in_small_chunks_takes_linear_time():
    chunks = [b"a" * 1024] * 8192 + [b"\n"]  # an 8 MB line in 1 KB reads: joined once, not per chunk
    start = time.process_time()
    assert len(next(_lines(chunks, 1 << 30))) == 8 << 20
    assert time.process_time() - start < 1.0


@pytest.mark.parametrize("line,status,code", [
    (b'{"body": {"model": "evil"}}', 403, "model_not_allowed"),
    (b'{"body": {"model": "gpt-4o", "model": "evil"}}', 400, "duplicate_key"),  # first-wins servers read one
    (b'{"body": {"model": "gpt-4o", "Model": "evil"}}', 403, "model_not_allowed"),  # Go reads `Model`
    (b'{"body": {"model": "gpt-4o"}, "Body": {"model": "evil"}}', 403, "model_not_allowed"),
    (b'{"body": {"mod\\u0065l": "evil"}}', 403, "model_not_allowed"),
    (b'{"body": {"model": "gpt-4o"}, "body": {"model": "evil"}}', 400, "duplicate_key"),
    (b'{"body": {"model": "gpt-4o", "mod\\u0065l": "evil"}}', 400, "duplicate_key"),
    (b'{"body": {"MODEL": "gpt-4o", "model": "evil"}}', 403, "model_not_allowed"),
    (b'{"body": {"messages": []}}', 400, "invalid_value"),  # no model: the upstream's default is on no list
    (b'{"body": {"model": ["gpt-4o"]}}', 400, "invalid_value"),
    (b'{"body": "x"}', 400, "invalid_value"),
    (b'{"body": {"model": "gpt-4o"}', 400, "invalid_json"),
    (b'[{"body": {"model": "gpt-4o"}}]', 400, "invalid_json"),
])
def test_every_spelling_of_a_lines_model_is_checked(line, status, code):
    with pytest.raises(ProxyError) as info:
        CHECK.check_lines([b'{"body": {"model": "gpt-4o-mini"}}', line], "file")
    assert (info.value.status, info.value.code) == (status, code), info.value.message
    assert info.value.message.startswith("Line 2 of the batch file: ")


def test_allowed_lines_pass():
    CHECK.check_lines([b'{"body": {"model": "gpt-4o"}}', b"", b'  {"body": {"model": "claude-x"}}  '], "file")


def test_a_batch_holds_at_most_fifty_thousand_requests():
    line = b'{"body": {"model": "gpt-4o"}}'
    CHECK.check_lines([line] * MAX_LINES + [b""], "file")
    with pytest.raises(ProxyError) as info:
        CHECK.check_lines([line] * (MAX_LINES + 1), "file")
    assert (info.value.status, info.value.code) == (400, "batch_too_large")
    assert info.value.message.startswith(f"Line {MAX_LINES + 1:,}".replace(",", ""))


@pytest.mark.parametrize("escaped", [b"", b'"\\u0041", '])  # plain and strict parsing both count
def test_a_file_dense_with_arrays_is_refused_before_it_is_parsed(escaped):
    dense = b'{"body": {"model": "gpt-4o", "x": [' + escaped + b",".join([b"[]"] * 2000) + b"]}}"
    start = time.process_time()
    with pytest.raises(ProxyError) as info:
        CHECK.check_lines([dense] * (MAX_CONTAINERS // 2000 + 1), "file")
    assert time.process_time() - start < 3.0  # about 0.4 s quiet; CPU time still swells on a loaded machine
    assert (info.value.status, info.value.code) == (400, "batch_too_large")
    braces_in_text = b'{"body": {"model": "gpt-4o", "x": "' + b"{[" * 20_000 + b'"}}'
    CHECK.check_lines([braces_in_text] * 60, "file")  # 2.4 million braces, all inside strings: 3 containers a line


def test_a_file_of_blank_lines_is_refused_within_its_line_bound():
    """Blank lines were skipped before they were counted: 32 MB of newlines cost a worker 8.5 s of CPU."""
    from argoproxy.pipeline.batch_models import MAX_TRAILING_BLANKS
    seen = []

    def blank_lines():
        for _ in range(10 * MAX_LINES):
            seen.append(1)
            yield b""
    with pytest.raises(ProxyError) as info:
        CHECK.check_lines(blank_lines(), "file")
    assert info.value.code == "batch_too_large" and len(seen) == MAX_LINES + MAX_TRAILING_BLANKS + 1
