"""Hostile input never gets a 5xx of the proxy's own (issue 12, item 5), through the running app under every
Gunicorn worker class: odd message shapes are 400s naming `param`, lone surrogates go on escaped (and the
upstream's 400 comes back), malformed framing and obs-folded headers are 400s, Gunicorn's own 400/414/431/501
answers are error JSON in the shape of the door the request was for, and a client that stops sending its body
gets a 408 and a closed connection (CLIENT_TIMEOUT, item 6)."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.polling import poll
from tests.proxy_process import running_proxy
from tests.reliability.support import assert_error, quick_ok, worker_pids

pytestmark = pytest.mark.timeout(90)

CLIENT_TIMEOUT = 1.0
# sync, gthread, gevent (one worker), and the balanced gevent worker (two workers)
WORKER_SETUPS = [("sync", "1"), ("gthread", "1"), ("gevent", "1"), ("gevent", "2")]


@pytest.fixture(scope="module", params=WORKER_SETUPS, ids=lambda s: f"{s[0]}x{s[1]}")
def env(request):
    worker_class, workers = request.param
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, WORKER_CLASS=worker_class, WORKERS=workers,
                           CLIENT_TIMEOUT=str(CLIENT_TIMEOUT), LLM_PARAMS="model=*,top_k=3") as p:
            quick_ok(p, timeout=10)
            pids = worker_pids(p)
            yield fake, p
            assert worker_pids(p) == pids  # no worker died
        log = p.stop()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


def exchange(p, data: bytes, timeout: float = 5.0, pause_after: int | None = None) -> tuple[bytes, float]:
    """Send raw bytes (pausing after `pause_after` of them), read until the server closes; (answer, seconds)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", p.port), timeout=timeout) as s:
        if pause_after is None:
            s.sendall(data)
        else:
            s.sendall(data[:pause_after])
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise AssertionError(f"no close within {timeout}s; got {out[:300]!r}") from None
            if not chunk:
                return out, time.monotonic() - start
            out += chunk


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def assert_json_error(answer: bytes, status: int | tuple[int, ...]) -> dict:
    got, headers, body = parse(answer)
    assert got in ((status,) if isinstance(status, int) else status), answer[:400]
    assert headers["content-type"].startswith("application/json"), answer[:400]
    length = int(headers.get("content-length", len(body)))
    err = json.loads(body[:length])["error"]
    assert set(err) >= {"message", "type", "param", "code"} and err["message"], err
    return err


def chat_head(extra: str = "", length: int | None = None, path: str = "/v1/chat/completions") -> bytes:
    size = "" if length is None else f"Content-Length: {length}\r\n"
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n{size}"
            f"{extra}\r\n").encode()


BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


# ------------------------------------------------------------------ framing Gunicorn refuses itself
GUNICORN_ERRORS = {
    "obs-fold": (chat_head("X-Folded: a\r\n  b\r\n", len(BODY)) + BODY, 400),
    "garbage request line": (b"\x00\x01\x02 / HTTP/1.1\r\n\r\n", 400),
    "bad method": (b"G@T / HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    "bad header name": (chat_head("Bad Name: x\r\n", len(BODY)) + BODY, 400),
    "nul in header": (chat_head("X-A: a\x00b\r\n", len(BODY)) + BODY, 400),
    "negative length": (chat_head("Content-Length: -5\r\n"), 400),
    "length and chunked": (chat_head(f"Content-Length: {len(BODY)}\r\nTransfer-Encoding: chunked\r\n") + BODY, 400),
    "request line too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
    "too many headers": (b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n",
                         431),
    "header too large": (b"GET /health HTTP/1.1\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n", 431),
    "transfer coding without chunked": (chat_head("Transfer-Encoding: gzip\r\n") + BODY, 400),
    # 501 from the Python parser, 400 from the C parser (gunicorn_h1c): JSON either way
    "unknown transfer coding": (chat_head("Transfer-Encoding: zstd, chunked\r\n") + BODY, (400, 501)),
}


@pytest.mark.parametrize("name", list(GUNICORN_ERRORS))
def test_errors_gunicorn_answers_itself_are_openai_json(env, name):
    fake, p = env
    data, status = GUNICORN_ERRORS[name]
    answer, _ = exchange(p, data)
    err = assert_json_error(answer, status)
    assert err["code"] and "<html" not in answer.decode("latin-1")
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert err["request_id"] and f"x-request-id: {err['request_id']}" in head  # every error names its request


# ------------------------------------------------------------------ the head's limits, in the door's shape
def head(path: str, extra: bytes = b"", query: str = "") -> bytes:
    """A POST with `extra` header lines after four of its own (Host, Content-Type, Content-Length, Connection)."""
    return (f"POST {path}{query} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: 2\r\nConnection: close\r\n").encode() + extra + b"\r\n{}"


# Gunicorn's limits, as the proxy sets them (gunicorn_app.py): a header line of 8,190 bytes with its CRLF, 100
# headers, a request line of 4,094 bytes without it. One past each is refused; TRACESTATE: a real header's name.
TRACESTATE = b"tracestate: "
HEAD_REFUSALS = {
    "header field over 8190 bytes": (lambda path: head(path, TRACESTATE + b"a" * (8190 - 2 - len(TRACESTATE) + 1)
                                                       + b"\r\n"), 431, "headers_too_large"),
    "more than 100 headers": (lambda path: head(path, b"".join(b"X-%d: y\r\n" % i for i in range(97))),
                              431, "headers_too_large"),
    "request line over 4094 bytes": (lambda path: head(path, query="?q=" + "a" * (4094 - len(f"POST {path}?q= HTTP/1.1")
                                                                              + 1)), 414, "uri_too_long"),
    "invalid header name": (lambda path: head(path, b"Bad Name: x\r\n"), 400, "invalid_http_request"),
    # Gunicorn's C parser takes it as a header with no name, and the app refuses it (edge/client_input.py)
    "folded header": (lambda path: head(path, b"X-Folded: a\r\n  b\r\n"), 400, "invalid_http_request"),
}
DOOR_PATHS = {"/v1/chat/completions": "openai", "/v1/embeddings": "openai", "/v1/responses": "openai",
              "/v1/messages": "anthropic", "/messages": "anthropic"}  # a base URL without /v1: the same door


@pytest.mark.parametrize("path", list(DOOR_PATHS))
@pytest.mark.parametrize("name", list(HEAD_REFUSALS))
def test_a_head_over_the_limits_is_refused_in_the_doors_shape(env, name, path):
    """431 for a header too large or too many of them, 414 for a request line too long, 400 for an invalid or folded
    header:
    Gunicorn refuses them before the app runs, and the answer is the error of the API the client called
    (Anthropic's on /v1/messages: a tracestate header over the limit was an OpenAI error there)."""
    fake, p = env
    make, status, code = HEAD_REFUSALS[name]
    answer, _ = exchange(p, make(path))
    got, headers, body = parse(answer)
    assert got == status and headers["connection"] == "close", answer[:300]
    assert headers["content-type"] == "application/json", answer[:300]
    obj = json.loads(body[:int(headers["content-length"])])
    if DOOR_PATHS[path] == "anthropic":
        assert obj["type"] == "error" and set(obj["error"]) == {"type", "message"}, obj
        assert obj["error"]["type"] == "invalid_request_error" and headers["request-id"] == obj["request_id"], obj
        message = obj["error"]["message"]
    else:
        err = assert_json_error(answer, status)
        assert err["code"] == code and err["type"] == "invalid_request_error", err
        assert headers["x-request-id"] == err["request_id"]
        message = err["message"]
    assert message and "Traceback" not in message and "<html" not in answer.decode("latin-1"), message


@pytest.mark.parametrize("name", [n for n in HEAD_REFUSALS if HEAD_REFUSALS[n][1] != 400])
def test_a_head_at_the_limits_is_served(env, name):
    """One byte (or header) fewer than each refusal above reaches the app: the limits are where the docs say."""
    fake, p = env
    make, _, _ = HEAD_REFUSALS[name]
    data = make("/v1/chat/completions")
    if name == "more than 100 headers":
        data = data.replace(b"X-96: y\r\n", b"")
    elif name.startswith("header field"):
        data = data.replace(b"a\r\n", b"\r\n", 1)
    else:
        data = data.replace(b"a HTTP/1.1", b" HTTP/1.1")
    answer, _ = exchange(p, data)
    err = assert_json_error(answer, 400)  # the app's answer to the body `{}`, which lacks what chat needs
    assert err["param"] in ("model", "messages"), err


# ------------------------------------------------------------------ framing found while the body is read
@pytest.mark.parametrize("chunks,status", [
    (b"zz\r\n{}\r\n0\r\n\r\n", 400), (b"2;\x01bad\r\n{}\r\n0\r\n\r\n", 400), (b"2\r\n{}XX0\r\n\r\n", 400),
    (b"-2\r\n{}\r\n0\r\n\r\n", 400),
    # a size no 64-bit parser can hold (2^64 and more, leading zeros or not) is a 400 at once, not a body left
    # open until CLIENT_TIMEOUT (a front proxy that wraps it around would frame the body differently)
    (b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n", 400), (b"00010000000000000000\r\n{}\r\n0\r\n\r\n", 400)],
    ids=["invalid size", "bad extension", "missing terminator", "negative size", "huge size", "2^64"])
def test_malformed_chunked_bodies_are_4xx_json(env, chunks, status):
    fake, p = env
    answer, _ = exchange(p, chat_head("Transfer-Encoding: chunked\r\n") + chunks)
    err = assert_json_error(answer, status)
    assert "internal" not in err["code"]
    if status == 400:
        assert err["code"] in ("invalid_request_framing", "invalid_http_request"), err


# ------------------------------------------------------------------ odd JSON and odd text
ODD_MESSAGES = {
    "role list": ([{"role": []}], "messages[0].role"),
    "role object": ([{"role": {"a": 1}, "content": "x"}], "messages[0].role"),
    "role number": ([{"role": 3, "content": "x"}], "messages[0].role"),
    "name list": ([{"role": "user", "content": "x", "name": ["a"]}], "messages[0].name"),
    "tool_calls string": ([{"role": "assistant", "tool_calls": "x"}], "messages[0].tool_calls"),
    "tool_call not object": ([{"role": "assistant", "tool_calls": [1]}], "messages[0].tool_calls[0]"),
    "function not object": ([{"role": "assistant", "tool_calls": [{"function": []}]}],
                            "messages[0].tool_calls[0].function"),
    "arguments object": ([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}],
                         "messages[0].tool_calls[0].function.arguments"),
    "tool_call_id number": ([{"role": "tool", "content": "x", "tool_call_id": 5}], "messages[0].tool_call_id"),
    "text part number": ([{"role": "user", "content": [{"type": "text", "text": 5}]}], "messages[0].content[0].text"),
    "image_url number": ([{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}],
                         "messages[0].content[0].image_url"),
    "part without type": ([{"role": "user", "content": [{"text": "x"}]}], "messages[0].content[0]"),
    "message list": ([["user", "hi"]], "messages[0]"),
}


@pytest.mark.parametrize("name", list(ODD_MESSAGES))
def test_every_odd_message_shape_is_400_naming_param(env, name):
    fake, p = env
    messages, param = ODD_MESSAGES[name]
    r = requests.post(p.base_url + "/chat/completions", json={"model": "m", "messages": messages}, timeout=10)
    assert assert_error(r, 400)["param"] == param


@pytest.mark.parametrize("field,value", [("tools", {"a": 1}), ("tools", [1]), ("tool_choice", 3), ("user", ["u"]),
                                         ("response_format", "json"), ("seed", "1"), ("logit_bias", [])])
def test_odd_top_level_fields_are_400_naming_param(env, field, value):
    fake, p = env
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], field: value}
    r = requests.post(p.base_url + "/chat/completions", json=body, timeout=10)
    assert assert_error(r, 400)["param"].startswith(field)


# Every door's request with a lone surrogate in its text, and what the chat upstream receives of it.
LONE = "a\\ud800b \\udfff"
LONE_BODIES = {
    "/chat/completions": f'{{"model": "m", "messages": [{{"role": "user", "content": "{LONE}"}}]}}',
    "/completions": f'{{"model": "m", "prompt": "{LONE}"}}',
    "/embeddings": f'{{"model": "m", "input": ["{LONE}"]}}',
    "/responses": f'{{"model": "m", "input": "{LONE}"}}',
    "/messages": f'{{"model": "m", "max_tokens": 5, "messages": [{{"role": "user", "content": "{LONE}"}}]}}',
}


@pytest.mark.parametrize("path,stream", [(path, stream) for path in LONE_BODIES for stream in (False, True)
                                         if not (stream and path == "/embeddings")])  # embeddings do not stream
def test_a_lone_surrogate_goes_on_escaped_and_the_upstreams_400_comes_back(env, path, stream):
    """JSON text may hold a lone surrogate ("\\ud800"), which is no Unicode character: OpenAI's API, Anthropic's and
    vLLM answer 400, as the fake does. The proxy passes it on escaped, re-encoding the body (LLM_PARAMS adds
    top_k; a door translates it), and the upstream's 400 reaches the client in the door's shape: no 5xx, no
    traceback (the fixture checks the log)."""
    fake, p = env
    fake.received.clear()
    body = LONE_BODIES[path].replace('"model": "m"', '"model": "m", "stream": true' if stream else '"model": "m"')
    r = requests.post(p.base_url + path, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400, r.text
    if path == "/messages":
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error", r.text
        message = r.json()["error"]["message"]
    else:
        err = assert_error(r, 400)
        assert err["type"] == "invalid_request_error", err
        message = err["message"]
    assert "lone surrogate" in message, message
    sent = fake.received[-1].body
    assert b"\\ud800" in sent and b"\\udfff" in sent and json.loads(sent)["top_k"] == 3, sent


def test_a_lone_surrogate_as_raw_bytes_goes_on_escaped(env):
    """Its UTF-8 spelling (b"\\xed\\xa0\\x80", which is not valid UTF-8 but Python's JSON reader takes) goes on
    escaped too, never as those bytes."""
    fake, p = env
    fake.received.clear()
    raw = LONE_BODIES["/chat/completions"].encode().replace(b"\\ud800", b"\xed\xa0\x80")
    r = requests.post(p.base_url + "/chat/completions", data=raw, headers={"Content-Type": "application/json"},
                      timeout=10)
    assert assert_error(r, 400)["type"] == "invalid_request_error"
    assert b"\\ud800" in fake.received[-1].body and b"\xed" not in fake.received[-1].body


def test_a_lone_surrogate_in_the_model_name_is_quoted_in_the_served_model_header(env):
    """An upstream that takes one (a Go server reads it as U+FFFD) answers; the X-Served-Model header names the
    model (its quoting met the surrogate: a 500)."""
    fake, p = env
    fake.accepts_lone_surrogates = True
    try:
        for path in ("/chat/completions", "/messages"):
            named = LONE_BODIES[path].replace('"model": "m"', '"model": "m\\ud800"')
            r = requests.post(p.base_url + path, data=named.encode(), headers={"Content-Type": "application/json"},
                              timeout=10)
            assert r.status_code == 200 and r.headers["X-Served-Model"] == "m%5Cud800", r.text
    finally:
        fake.accepts_lone_surrogates = False


# ------------------------------------------------------------------ a client that stops sending
def test_half_sent_body_gets_408_and_a_closed_connection(env):
    fake, p = env
    fake.received.clear()
    data = chat_head(length=len(BODY)).replace(b"Connection: close\r\n", b"") + BODY
    answer, took = exchange(p, data, timeout=CLIENT_TIMEOUT + 5, pause_after=len(data) - len(BODY) // 2)
    err = assert_json_error(answer, 408)  # exchange() returned: the server closed the connection
    assert err["code"] == "client_timeout" and "CLIENT_TIMEOUT" in err["message"]
    assert CLIENT_TIMEOUT * 0.8 < took < CLIENT_TIMEOUT + 3, took
    assert not fake.received  # nothing went upstream
    quick_ok(p)


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_client_that_drips_its_body_is_cut_at_client_timeout(env, chunked):
    # One byte every 0.1 s: no socket read ever waits long, yet the body would take minutes to arrive.
    fake, p = env
    fake.received.clear()
    head = chat_head("Transfer-Encoding: chunked\r\n") + b"%x\r\n" % len(BODY) if chunked \
        else chat_head(length=len(BODY))
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", p.port), timeout=0.1) as s:
        s.sendall(head)
        answer = b""
        for byte in BODY:
            if time.monotonic() - start > CLIENT_TIMEOUT + 4:
                break
            try:
                s.sendall(bytes([byte]))
                answer += s.recv(65536)
            except socket.timeout:
                continue
            except OSError:  # the server shut the connection
                break
            if answer:
                break
        took = time.monotonic() - start
        s.settimeout(5)
        while answer and not answer.endswith(b"}") and (more := s.recv(65536)):
            answer += more
    assert took < CLIENT_TIMEOUT + 3, took
    assert_json_error(answer, 408)
    assert not fake.received
    quick_ok(p)


def test_half_sent_chunked_body_gets_408(env):
    fake, p = env
    data = chat_head("Transfer-Encoding: chunked\r\n") + b"%x\r\n%s\r\n" % (len(BODY), BODY)
    answer, took = exchange(p, data + b"0\r\n\r\n", timeout=CLIENT_TIMEOUT + 5, pause_after=len(data))
    assert_json_error(answer, 408)
    assert took < CLIENT_TIMEOUT + 3


# ------------------------------------------------------------------ what the head says of the connection
def test_an_answer_that_ends_its_connection_says_close_and_a_usual_one_keep_alive():
    """A 408 and a 400 for broken chunk framing close the connection after them; their heads said `keep-alive`
    (Gunicorn drops the app's hop-by-hop header), so a client pooled a connection that was about to close.
    FAST_PATH=on: the response class that honours the app's `Connection: close` is the fast path's."""
    keep_alive = lambda extra: chat_head(extra).replace(b"Connection: close\r\n", b"")  # noqa: E731
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, FAST_PATH="on", CLIENT_TIMEOUT=str(CLIENT_TIMEOUT)) as p:
            data = keep_alive(f"Content-Length: {len(BODY)}\r\n") + BODY
            answer, _ = exchange(p, data, timeout=CLIENT_TIMEOUT + 5, pause_after=len(data) - len(BODY) // 2)
            assert_json_error(answer, 408)
            assert parse(answer)[1]["connection"] == "close", answer[:400]

            answer, _ = exchange(p, keep_alive("Transfer-Encoding: chunked\r\n") + b"5\n{\"mod\r\n")
            assert assert_json_error(answer, 400)["code"] == "invalid_request_framing"
            assert parse(answer)[1]["connection"] == "close", answer[:400]

            with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
                s.sendall(keep_alive(f"Content-Length: {len(BODY)}\r\n") + BODY)
                head = s.recv(65536).partition(b"\r\n\r\n")[0].lower()
            assert b" 200 " in head.split(b"\r\n")[0] and b"connection: keep-alive" in head, head
        # COMPATIBLE_MODE answers errors with a 200: the head says close all the same
        with running_proxy(TARGET_BASE_URL=fake.base_url, FAST_PATH="on", COMPATIBLE_MODE="true") as p:
            answer, _ = exchange(p, keep_alive("Transfer-Encoding: chunked\r\n") + b"zz\r\n{}\r\n0\r\n\r\n")
            status, headers, _ = parse(answer)
            assert status == 200 and headers["connection"] == "close", answer[:400]


# ------------------------------------------------------------------ Gunicorn's Python parser quotes a header line
@pytest.fixture(scope="module")
def python_parser():
    """One proxy for every header line below: the cases differ only in the line the client sends. Its whole log is
    read again once it has stopped, so a line a case's request made after that case looked is not missed."""
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, WORKER_CLASS="gthread", WORKERS="1",
                           GUNICORN_CMD_ARGS="--http-parser python") as p:
            yield p
            log = p.stop()
    assert "custom-key" not in log, log[-2000:]


@pytest.mark.parametrize("line", [b"x-api-key custom-key-7f3a9", b"Api-Key custom-key-7f3a9",
                                  b"Proxy-Authorization custom-key-7f3a9", b"Cookie session=custom-key-7f3a9",
                                  b"Authorization\tBearer custom-key-7f3a9"])
def test_a_credential_header_without_its_colon_is_never_echoed_or_logged(python_parser, line):
    """`--http-parser python` quotes a header line with no colon whole, in its answer's detail and its log line: a
    credential header's value was kept there unless it looked like a key (sk-..., Bearer ...). The name stays."""
    p = python_parser
    name = line.split()[0].decode()
    before = len(p.read_log())
    answer, _ = exchange(p, head("/v1/messages", line + b"\r\n"))
    quick_ok(p, timeout=10)
    # this case's log: what the shared proxy wrote since it began, up to its own quoted line (polled: not stopped)
    poll(lambda: f"'{name} [redacted]'" in p.read_log()[before:])
    log = p.read_log()[before:]
    obj = json.loads(parse(answer)[2])
    assert obj["type"] == "error" and f"'{name} [redacted]'" in obj["error"]["message"], obj
    assert b"custom-key" not in answer and "custom-key" not in log and f"'{name} [redacted]'" in log, log[-2000:]
