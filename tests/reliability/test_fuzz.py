"""Hypothesis-generated request bodies and raw HTTP through the running app: the proxy never answers a 5xx of
its own making (the fake upstream always answers 200) and its worker never dies (issue 7, part 3). Text
includes lone surrogates, and raw requests vary their framing: request lines, header folding and control
bytes, Content-Length against the bytes sent, chunk sizes, extensions and terminators (issue 12, item 5)."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.proxy_process import running_proxy
from tests.reliability.support import quick_ok, worker_pids

pytestmark = pytest.mark.timeout(90)


class SteadyFake(FakeOpenAI):
    """Answers every request with a well-formed answer, whatever the body (so any 5xx is the proxy's)."""

    def default_answer(self, method, path, body):
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = {}
        wants_stream = isinstance(req, dict) and req.get("stream") is True
        if path.endswith("/models"):
            return super().default_answer(method, path, b"")
        if path.endswith("/embeddings"):
            return Reply({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
                          "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        if path.endswith("/completions") and not path.endswith("chat/completions"):
            obj = {"id": "c", "object": "text_completion", "created": 1, "model": "m",
                   "choices": [{"index": 0, "text": "<think>x</think>ok", "finish_reason": "stop", "logprobs": None}]}
            if wants_stream:
                return Stream([{**obj, "choices": [{**obj["choices"][0]}]}, "[DONE]"])
            return Reply(obj)
        if wants_stream:
            return Stream(chat_chunks(["<th", "ink>a</think>", "b"], usage=True))
        return Reply(chat_completion("<think>a</think>b"))


@pytest.fixture(scope="module")
def env():
    with SteadyFake() as fake:
        # DEBUG on: every request's log line is written too (model names with lone surrogates included).
        with running_proxy(TARGET_BASE_URL=fake.base_url, MAX_BODY_BYTES="200000", CLIENT_TIMEOUT="0.5", DEBUG="true",
                           LLM_PARAMS="model=fast,temperature=0.1,append_to_last_user_message=!;model=*,top_k=3") as p:
            quick_ok(p, timeout=10)
            pids = worker_pids(p)
            yield fake, p, pids
            assert worker_pids(p) == pids
    log = p.stop()
    assert "Traceback" not in log and "unexpected error" not in log and "Logging error" not in log, log[-3000:]


# Text as JSON allows it: any code point, lone surrogates ("\ud800") included.
texts = st.text(st.characters(blacklist_categories=()), max_size=30)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                    st.floats(allow_nan=False, allow_infinity=False), texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
contents = st.one_of(st.text(max_size=40), st.lists(st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "input_audio", "x"]),
                           "text": st.text(max_size=20)}),
    st.fixed_dictionaries({"type": st.just("image_url"),
                           "image_url": st.fixed_dictionaries({"url": st.sampled_from(
                               ["data:image/png;base64,AAAA", "ftp://x/y.png", "http://127.0.0.1:1/a.png", ""])})}),
    json_values), max_size=3), json_values)
messages = st.lists(st.one_of(st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "robot", ""]),
                       json_values),
     "content": contents}, optional={"name": st.text(max_size=10), "tool_calls": json_values,
                                     "tool_call_id": json_values}), json_values), max_size=4)
known = {
    "model": st.one_of(st.sampled_from(["m", "fast", "DeepSeek-R1", "", " "]), json_values),
    "messages": st.one_of(messages, json_values),
    "prompt": json_values, "input": json_values,
    "stream": st.one_of(st.booleans(), json_values),
    "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": st.booleans()}), json_values),
    "temperature": st.one_of(st.floats(allow_nan=False, allow_infinity=False), json_values),
    "top_p": json_values, "n": st.one_of(st.integers(-3, 3), json_values),
    "max_tokens": st.one_of(st.integers(-5, 10 ** 20), json_values), "stop": json_values,
    "tools": json_values, "tool_choice": json_values, "response_format": json_values, "user": json_values,
    "logit_bias": json_values, "seed": json_values, "timeout": json_values,
}
bodies = st.one_of(
    st.fixed_dictionaries({}, optional=known).flatmap(
        lambda d: st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(lambda extra: {**extra, **d})),
    json_values,
)
ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/chat/completions"]


def check(r: requests.Response) -> None:
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400:
        err = r.json()["error"]
        assert err["message"] and err["type"] and err["code"] != "internal_error", err
    if r.headers.get("Content-Type", "").startswith("text/event-stream"):
        assert "internal_error" not in r.text and "server_error" not in r.text, r.text[-500:]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=bodies, route=st.sampled_from(ROUTES))
def test_generated_json_bodies_never_get_a_proxy_5xx(env, body, route):
    fake, p, pids = env
    # Both spellings of a lone surrogate: escaped (valid JSON text) and as raw bytes (invalid UTF-8).
    for data in (json.dumps(body).encode(), json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")):
        r = requests.post(p.url + route, data=data, headers={"Content-Type": "application/json"}, timeout=15)
        check(r)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(raw=st.one_of(st.binary(max_size=300),
                     st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                     st.builds(lambda b, cut: b[:cut], st.just(json.dumps(
                         {"model": "m", "messages": [{"role": "user", "content": "héllo \u0000 wörld"}]}).encode()),
                         st.integers(0, 80))),
       route=st.sampled_from(ROUTES))
def test_generated_raw_bytes_never_get_a_proxy_5xx(env, raw, route):
    fake, p, pids = env
    r = requests.post(p.url + route, data=raw, headers={"Content-Type": "application/json"}, timeout=15)
    check(r)


def test_worker_is_the_same_after_fuzzing(env):
    fake, p, pids = env
    assert worker_pids(p) == pids
    quick_ok(p)


# ------------------------------------------------------------------ raw HTTP framing
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
header_names = st.one_of(st.sampled_from(["X-A", "Content-Type", "Accept", "Transfer-Encoding", "Content-Length",
                                          "Expect", "Host"]),
                         st.text(st.characters(min_codepoint=0, max_codepoint=255), min_size=0, max_size=8))
header_values = st.one_of(st.sampled_from(["chunked", "gzip, chunked", "identity", "100-continue", "0", "-1", "2",
                                           "application/json"]),
                          st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=12))
headers = st.lists(st.tuples(header_names, header_values, st.sampled_from(["", "\r\n ", "\r\n\t", "\n"])),
                   max_size=4)
chunk_sizes = st.one_of(st.integers(0, 300).map(lambda n: f"{n:x}"), st.sampled_from(["zz", "-1", " 5", "5 ", "ffffffffffffffffff",
                                                                                     "5;x=1", "5;\x01", ""]))
chunked_bodies = st.lists(st.tuples(chunk_sizes, st.binary(max_size=40), st.sampled_from(["\r\n", "\n", "", "XX"])),
                          max_size=3).map(
    lambda chunks: b"".join(size.encode("latin-1") + b"\r\n" + data + end.encode() for size, data, end in chunks)
    + b"0\r\n\r\n")
request_lines = st.one_of(
    st.sampled_from(["POST /v1/chat/completions HTTP/1.1", "POST /v1/chat/completions HTTP/1.0",
                     "GET /v1/models HTTP/1.1", "POST /v1/files HTTP/1.1", "POST /v1/chat/completions HTTP/2.0",
                     "POST  /v1/chat/completions HTTP/1.1", "POST /v1/chat/completions", "post /v1/models HTTP/1.1"]),
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40))
framings = st.sampled_from(["length", "short length", "long length", "chunked", "none"])


def raw_http(line: str, extra: list, framing: str, chunked: bytes) -> bytes:
    head = [line, "Host: localhost", "Content-Type: application/json"]
    head += [f"{name}:{' ' if value else ''}{value}{fold}" for name, value, fold in extra]
    body = BODY
    if framing == "length":
        head.append(f"Content-Length: {len(BODY)}")
    elif framing == "short length":
        head.append(f"Content-Length: {len(BODY) - 5}")
    elif framing == "long length":
        head.append(f"Content-Length: {len(BODY) + 5}")  # the client never sends the rest: CLIENT_TIMEOUT
    elif framing == "chunked":
        head.append("Transfer-Encoding: chunked")
        body = chunked
    else:
        body = b""
    head.append("Connection: close")
    return "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body


def answers(p, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return out
            if not chunk:
                return out
            out += chunk


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(line=request_lines, extra=headers, framing=framings, chunked=chunked_bodies)
def test_generated_raw_http_never_gets_a_proxy_5xx_or_an_html_page(env, line, extra, framing, chunked):
    fake, p, pids = env
    out = answers(p, raw_http(line, extra, framing, chunked))
    if not out:
        return  # not HTTP at all: closing the connection is an answer
    status_line, _, rest = out.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1."), out[:200]
    status = int(status_line.split(b" ")[1])
    assert status < 500 or status == 501, out[:600]  # 501: a Transfer-Encoding Gunicorn does not implement
    head, _, body = rest.partition(b"\r\n\r\n")
    if status >= 400:
        assert b"application/json" in head.lower() and b"<html" not in body.lower(), out[:600]
        assert json.loads(body[:int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])])["error"]
