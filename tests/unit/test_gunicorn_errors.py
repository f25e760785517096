"""argoproxy.serve.gunicorn_errors: the error pages Gunicorn writes itself become error JSON in the shape of the
door the request was for, for every worker class (all of them answer through Worker.handle_error ->
gunicorn.util.write_error), the door found from the target Gunicorn's parser had read (fastpath/server_reach.py)."""

from __future__ import annotations

import inspect
import json

import gunicorn
import pytest
from gunicorn import util
from gunicorn.workers import base, base_async, ggevent, gthread, sync

from argoproxy.serve import gunicorn_errors

VERIFIED_GUNICORN = "27.0.1"  # the version whose handle_error this was checked against


def test_every_worker_class_answers_through_write_error():
    assert gunicorn.__version__ == VERIFIED_GUNICORN, "re-check Worker.handle_error, then update VERIFIED_GUNICORN"
    assert "util.write_error(" in inspect.getsource(base.Worker.handle_error)
    for worker in (sync.SyncWorker, gthread.ThreadWorker, base_async.AsyncWorker, ggevent.GeventWorker):
        assert worker.handle_error is base.Worker.handle_error, worker


def test_install_replaces_the_html_page():
    gunicorn_errors.install()
    assert gunicorn_errors.installed() and util.write_error.answer is gunicorn_errors.answer


def test_error_response_is_openai_json_and_closes():
    raw = gunicorn_errors.error_response(431, "Request Header Fields Too Large", "Number of headers (120) > 100")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ") and b"Connection: close" in head
    assert b"Content-Type: application/json" in head and f"Content-Length: {len(body)}".encode() in head
    err = json.loads(body)["error"]
    assert err["code"] == "headers_too_large" and err["type"] == "invalid_request_error" and "120" in err["message"]
    assert f"X-Request-ID: {err['request_id']}\r\n".encode() in head and len(err["request_id"]) == 32
    err = json.loads(gunicorn_errors.error_response(501, "Not Implemented", "zstd").partition(b"\r\n\r\n")[2])["error"]
    assert err["code"] == "unsupported_transfer_encoding"
    err = json.loads(gunicorn_errors.error_response(500, "Internal Server Error", "").partition(b"\r\n\r\n")[2])["error"]
    assert err["type"] == "server_error" and err["code"] == "internal_error"
    long = gunicorn_errors.error_response(400, "Bad Request", "\u2028x" * 1000)
    assert len(long) < 600  # the client's bytes are quoted only briefly


def test_a_quoted_header_line_never_echoes_a_credential():
    """Gunicorn's Python parser quotes a header line with no colon; the answer keeps its name, not its secret, even
    where the cut falls inside it."""
    for line in ["Authorization Bearer sk-secretvalue12345"] + [
            "x" * n + " Bearer sk-secretvalue12345" for n in range(150, 180)]:  # the cut at every place in it
        raw = gunicorn_errors.error_response(400, "Bad Request", f"Invalid HTTP Header: '{line}'")
        message = json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["message"]
        assert "sk-s" not in message and "sk-secretvalue" not in message, message
    assert "'Authorization [redacted]'" in json.loads(gunicorn_errors.error_response(
        400, "Bad Request", "Invalid HTTP Header: 'Authorization Bearer sk-secretvalue12345'").partition(
        b"\r\n\r\n")[2])["error"]["message"]


def test_every_chunked_body_is_read_through_parse_chunk_size_and_sizes_over_2_64_are_refused():
    """argoproxy.fastpath.server_reach.limit_chunk_sizes wraps ChunkedReader.parse_chunk_size: both request parsers build
    a ChunkedReader for a chunked body, and its parser reads every chunk size through that method."""
    from gunicorn.http import body, errors, message
    from gunicorn.http.unreader import IterUnreader

    from argoproxy.fastpath.server_reach import MAX_CHUNK_SIZE, limit_chunk_sizes

    assert gunicorn.__version__ == VERIFIED_GUNICORN, "re-check ChunkedReader, then update VERIFIED_GUNICORN"
    assert inspect.getsource(body.ChunkedReader.parse_chunked).count("self.parse_chunk_size(") == 2
    assert inspect.getsource(message).count("ChunkedReader(") == 1  # the one chunked reader, both parsers
    limit_chunk_sizes()
    limit_chunk_sizes()  # idempotent: wrapped once

    def read(data: bytes, size: int = 100) -> bytes:
        return body.ChunkedReader(None, IterUnreader([data])).read(size)

    assert read(b"2\r\n{}\r\n0\r\n\r\n") == b"{}"
    assert read(b"%x\r\n" % MAX_CHUNK_SIZE + b"{}", 2) == b"{}"  # the largest size is still a size
    for size in (b"10000000000000000", b"00010000000000000000", b"f" * 40):
        with pytest.raises(errors.InvalidChunkSize):
            read(size + b"\r\n{}\r\n0\r\n\r\n")


# ------------------------------------------------------------------ the refused request's door
TARGET = "/v1/messages?beta=true"
HEAD = f"POST {TARGET} HTTP/1.1\r\nHost: localhost\r\n".encode()
REFUSED = {
    "request line too long": f"POST {TARGET}&q={'a' * 9000} HTTP/1.1\r\n\r\n".encode(),
    "header too large": HEAD + b"tracestate: " + b"a=b," * 2250 + b"\r\n\r\n",
    "too many headers": HEAD + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n",
    "bad header name": HEAD + b"Bad Name: x\r\n\r\n",
    "folded header": HEAD + b"X-A: a\r\n b\r\n\r\n",
    "negative length": HEAD + b"Content-Length: -5\r\n\r\n",
    "length and chunked": HEAD + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
    "unknown coding": HEAD + b"Transfer-Encoding: zstd, chunked\r\n\r\n",
    "empty line first": b"\r\n" + HEAD + b"X-Big: " + b"y" * 9000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("parser", ["python", "fast"])
@pytest.mark.parametrize("name", list(REFUSED))
def test_the_target_of_every_refused_head_is_found_with_either_parser(parser, name):
    """fastpath.server_reach.parsed_target reads Gunicorn's frames (private_names.py: Request.parse): whatever
    the parser refuses, and wherever, the target the client sent is found in the error's traceback."""
    from gunicorn.config import Config
    from gunicorn.http.errors import ParseException
    from gunicorn.http.message import Request
    from gunicorn.http.unreader import IterUnreader

    from argoproxy.fastpath.server_reach import parsed_target

    assert gunicorn.__version__ == VERIFIED_GUNICORN, "re-check Request.parse's locals, then update VERIFIED_GUNICORN"
    cfg = Config()
    cfg.set("http_parser", parser)
    if parser == "fast" and name == "folded header":
        pytest.skip("gunicorn_h1c takes it (edge/client_input.py refuses it)")
    data = REFUSED[name]
    chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)]  # read as a socket gives it, in pieces
    with pytest.raises(ParseException) as refused:
        Request(cfg, IterUnreader(chunks), ("127.0.0.1", 1))
    target = parsed_target(refused.value)
    assert target is not None and target.startswith(TARGET), (target or "")[:80]


def test_a_traceback_without_gunicorns_request_has_no_target():
    from argoproxy.fastpath.server_reach import parsed_target
    try:
        raise ValueError("not a parse error")
    except ValueError as exc:
        assert parsed_target(exc) is None


def test_an_error_for_a_door_comes_in_its_shape_with_its_id_header():
    from argoproxy.fronts import front_named
    raw = gunicorn_errors.error_response(431, "Request Header Fields Too Large",
                                         "Error parsing headers: 'Header size (9014) exceeds limit (8190)'",
                                         front_named("messages"))
    head, _, body = raw.partition(b"\r\n\r\n")
    obj = json.loads(body)
    assert obj["type"] == "error" and obj["error"]["type"] == "invalid_request_error", obj
    assert obj["error"]["message"] == ("The request headers are too many or too large: Header size (9014) exceeds "
                                       "limit (8190).")
    assert f"request-id: {obj['request_id']}\r\n".encode() in head and b"X-Request-ID: " in head
