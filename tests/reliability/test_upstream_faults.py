"""Upstream faults through the running app: each fault's exact client-visible answer, the retries the fake
counts, and the proxy serving other requests while a fault is in progress (issue 7, parts 1 and 2)."""

from __future__ import annotations

import concurrent.futures
import email.utils
import json
import socket
import threading
import time
from typing import Callable

import anthropic
import openai
import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.fakes.local_questions import answered_a_question
from tests.polling import poll
from tests.proxy_process import free_port, running_proxy
from tests.reliability.support import assert_error, chat, quick_ok, sse_events, workers

pytestmark = pytest.mark.timeout(60)

READ_TIMEOUT = 1.0
PAUSE = 4.0  # an upstream stall, well beyond READ_TIMEOUT


@pytest.fixture(scope="module")
def env():
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, TIMEOUT=str(READ_TIMEOUT), CONNECT_TIMEOUT="0.5",
                           MAX_RETRIES="2") as p:
            quick_ok(p, timeout=10)  # the first request pays for the worker's first upstream connection
            yield fake, p


@pytest.fixture
def up(env):
    fake, p = env
    fake.reset()
    return fake, p


def post(p, body, **kw):
    return requests.post(p.base_url + "/chat/completions", json=body, timeout=kw.pop("timeout", 20), **kw)


# ------------------------------------------------------------------ no connection at all
def test_connection_refused_retried_then_502_fast():
    port = free_port()
    with running_proxy(TARGET_BASE_URL=f"http://127.0.0.1:{port}/v1/", MAX_RETRIES="2") as p:
        start = time.monotonic()
        err = assert_error(post(p, chat()), 502, "upstream_connection_refused")
        assert f"127.0.0.1:{port}" in err["message"] and err["type"] == "upstream_error"
        assert time.monotonic() - start < 2.0  # two retries with capped backoff (0.25 s, 0.5 s at most)
        r = post(p, chat(stream=True))  # a stream that never started is an HTTP error, not an SSE event
        assert_error(r, 502, "upstream_connection_refused")


def test_dns_failure_is_502_naming_the_host():
    with running_proxy(TARGET_BASE_URL="http://no-such-upstream.invalid/v1/", MAX_RETRIES="0") as p:
        start = time.monotonic()
        err = assert_error(post(p, chat()), 502, "upstream_dns_error")
        assert "no-such-upstream.invalid" in err["message"]
        assert time.monotonic() - start < 10


def test_connect_timeout_is_504_within_the_budget():
    # A listener whose accept queue is full drops every SYN: a connect timeout on loopback, deterministic
    # (a non-routable address such as 10.255.255.1 is answered by the sandbox's transparent proxy here).
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    try:
        with running_proxy(TARGET_BASE_URL=f"http://127.0.0.1:{port}/v1/", CONNECT_TIMEOUT="0.5", MAX_RETRIES="1") as p:
            start = time.monotonic()
            r = post(p, chat())
            took = time.monotonic() - start
            if r.status_code == 504:
                err = assert_error(r, 504, "upstream_connect_timeout")
                assert "0.5s" in err["message"] and err["type"] == "timeout_error"
                assert 0.9 < took < 3.0  # two attempts of 0.5 s plus at most 0.25 s of backoff
            else:  # a kernel that refuses instead of dropping
                assert_error(r, 502)
                assert took < 3.0
    finally:
        filler.close()
        srv.close()


# ------------------------------------------------------------------ slow or stalled upstream
def test_read_timeout_before_first_byte_is_504_and_not_retried(up):
    fake, p = up
    fake.add(Reply(chat_completion("late"), delay=3), Reply(chat_completion("late"), delay=3))
    start = time.monotonic()
    err = assert_error(post(p, chat(stream=True)), 504, "upstream_timeout")
    assert f"{READ_TIMEOUT:g}s" in err["message"] and err["type"] == "timeout_error"
    assert time.monotonic() - start < READ_TIMEOUT + 1.0
    assert len(fake.received) == 1  # the request may have reached the model: never retried


def test_headers_then_silence_is_504_before_any_event(up):
    fake, p = up
    fake.add(Stream(chat_chunks(["never"]), first_delay=3))
    assert_error(post(p, chat(stream=True)), 504, "upstream_timeout")


def test_stall_mid_stream_ends_with_an_sse_error_while_others_are_served(up):
    fake, p = up
    fake.add(Stream(chat_chunks(["a", "b", "c", "d"]), pause_at={3: PAUSE}))
    result = {}

    def slow_client():
        start = time.monotonic()
        r = post(p, chat(stream=True))
        result.update(r=r, took=time.monotonic() - start)

    t = threading.Thread(target=slow_client)
    t.start()
    assert poll(lambda: fake.received)  # the stream starts, then stalls upstream
    quick_ok(p)
    assert "r" not in result  # answered while the stall still held the stream: it holds no worker hostage
    t.join(10)
    r = result["r"]
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert [e["choices"][0]["delta"].get("content") for e in events[:3]] == ["", "a", "b"]
    assert events[-1]["error"]["code"] == "upstream_timeout" and "stalled" in events[-1]["error"]["message"]
    assert "[DONE]" not in events  # a broken stream is never dressed up as a finished one
    assert result["took"] < PAUSE  # ended by the stall deadline (READ_TIMEOUT), not by the upstream resuming
    assert [r.path for r in fake.received].count("/v1/chat/completions") == 1  # never retried once the client has bytes


def test_slow_drip_whole_answer_is_bounded(up):
    fake, p = up
    fake.add(Reply(chat_completion("x" * 200), drip=0.3))  # a byte every 0.3 s never trips a per-read timeout
    start = time.monotonic()
    err = assert_error(post(p, chat()), 504, "upstream_timeout")
    assert time.monotonic() - start < READ_TIMEOUT * 2 + 1.0, err  # the drip would take a minute
    quick_ok(p)


def test_slow_drip_stream_is_bounded(up):
    fake, p = up
    fake.add(Stream(chat_chunks(["y" * 50]), drip=0.2))  # events trickle in far slower than the read timeout
    start = time.monotonic()
    r = post(p, chat(stream=True))
    took = time.monotonic() - start
    if r.status_code == 200:
        assert sse_events(r.text)[-1]["error"]["code"] == "upstream_timeout"
    else:
        assert_error(r, 504, "upstream_timeout")
    assert took < READ_TIMEOUT * 2 + 1.5


# ------------------------------------------------------------------ broken or strange answers
def test_stream_cut_without_done_upstream_streams_client_does_not(up):
    fake, p = up
    # The client asks for a whole answer; the upstream is made to stream (UPSTREAM_MODE=stream) and breaks off.
    with running_proxy(TARGET_BASE_URL=fake.base_url, UPSTREAM_MODE="stream", MAX_RETRIES="2") as p2:
        fake.add(Stream(chat_chunks(["partial", "more"]), cut_after=2))
        fake.received.clear()
        err = assert_error(post(p2, chat()), 502)
        assert err["code"] in ("upstream_disconnected", "upstream_stream_incomplete")
        assert len(fake.received) == 1


DOORS = {"chat": ("/v1/chat/completions", {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}),
         "responses": ("/v1/responses", {"model": "m", "stream": True, "input": "x"}),
         "messages": ("/v1/messages", {"model": "m", "stream": True, "max_tokens": 9,
                                       "messages": [{"role": "user", "content": "x"}]}),
         "google": ("/v1beta/models/m:streamGenerateContent?alt=sse", {"contents": [{"parts": [{"text": "x"}]}]})}


@pytest.mark.parametrize("door", DOORS)
def test_a_stream_broken_off_is_said_the_same_way_on_every_door(up, door):
    """A stream broken off mid-way is said the same way on every door, sanitized as an upstream's words are
    (a provider's decoder may quote what the upstream sent): the chat door named the private host where the
    front doors said `[internal host]`."""
    fake, p = up
    path, body = DOORS[door]
    fake.add(Stream(chat_chunks(["partial", "more", "and more"]), cut_after=2))
    r = requests.post(p.url + path, json=body, timeout=20)
    assert r.status_code == 200 and "The upstream server [internal host] broke off the response." in r.text, r.text


def test_a_usage_count_past_any_answer_is_refused_by_the_doors_and_not_counted(up):
    """An upstream's usage of 10^400 tokens: the metrics observer's float conversion failed on every request
    (a traceback each), and the front doors gave the 401-digit count to their clients."""
    fake, p = up
    huge = {"prompt_tokens": 10 ** 400, "completion_tokens": 1, "total_tokens": 10 ** 400}
    fake.add(Reply({**chat_completion("hi"), "usage": huge}))
    assert post(p, chat()).status_code == 200  # relayed as it came on the chat door
    fake.add(Reply({**chat_completion("hi"), "usage": huge}))
    r = requests.post(p.url + "/v1/messages", timeout=20, json={"model": "m", "max_tokens": 9,
                                                                "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 502 and "usage.prompt_tokens" in r.json()["error"]["message"]
    assert "observer failed" not in p.read_log()  # observers run before an answer leaves: logged by now


MANY = [[]] * 250_000  # 250,000 arrays in 750 KB: about 25 times that as Python objects


@pytest.mark.parametrize("door", ["responses", "messages", "google"])
def test_an_answer_made_of_many_small_containers_is_refused_not_read(up, door):
    """Requests were bounded to 200,000 arrays and objects, upstream answers were not: a 60 MB answer of them
    took 1.5 GB of the worker on the front doors, whole, as a stream event or as a tool call's arguments (the
    Messages and Google doors parse those; Responses carries them as the string they are)."""
    fake, p = up
    path, body = DOORS[door]
    whole = {**body, "stream": False}
    if door == "google":
        path = path.replace(":streamGenerateContent?alt=sse", ":generateContent")
    fake.add(Reply({**chat_completion("hi"), "padding": MANY}))
    r = requests.post(p.url + path, json=whole, timeout=30)
    assert r.status_code == 502 and "arrays and objects" in r.text, r.text[:300]
    event = {**chat_chunks(["hi"])[0], "padding": MANY}
    fake.add(Stream([event, *chat_chunks(["x"])]))
    r = requests.post(p.url + path.replace(":generateContent", ":streamGenerateContent?alt=sse"), json=body,
                      timeout=30)
    assert "arrays and objects" in r.text, r.text[:300]
    if door != "responses":
        call = {**chat_completion(""), "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {
                "name": "f", "arguments": json.dumps(MANY)}}]}}]}
        fake.add(Reply(call))
        r = requests.post(p.url + path, json=whole, timeout=30)
        assert r.status_code == 502 and "arrays and objects" in r.text, r.text[:300]


def test_stream_finished_but_no_done_is_completed_for_the_client(up):
    fake, p = up
    fake.add(Stream(chat_chunks(["all", " there"])[:-1]))  # finish_reason arrived, then a clean close
    events = sse_events(post(p, chat(stream=True)).text)
    assert events[-1] == "[DONE]" and "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == "all there"


@pytest.mark.parametrize("body", [b'{"id":"chatcmpl-1","object":"chat.completion","choi', b"not json at all", b""])
def test_truncated_or_non_json_body_with_json_type_is_502(up, body):
    fake, p = up
    fake.add(Reply(body, headers={"Content-Type": "application/json"}))
    err = assert_error(post(p, chat()), 502, "upstream_bad_response")
    assert "JSON" in err["message"]


def _answering_once(reply: bytes) -> socket.socket:
    """A listening socket whose first connection gets `reply` to its request, then is closed."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        while answered_a_question(conn):  # start-up's questions first, each on its own connection
            conn.close()
            conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(reply)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_truncated_body_shorter_than_its_content_length_is_502(up):
    fake, p = up

    # A server that promises 500 bytes, sends 20, and closes.
    srv = _answering_once(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                          b'{"id":"chatcmpl-1",')
    with running_proxy(TARGET_BASE_URL=f"http://127.0.0.1:{srv.getsockname()[1]}/v1/", MAX_RETRIES="0") as p2:
        err = assert_error(post(p2, chat()), 502)
        assert err["code"] in ("upstream_disconnected", "upstream_bad_response")
    srv.close()


def test_html_error_page_becomes_openai_error_json(up):
    fake, p = up
    page = b"<html><body><h1>500 Internal Server Error</h1><p>nginx</p></body></html>"
    fake.add(Reply(page, status=500, headers={"Content-Type": "text/html"}))
    err = assert_error(post(p, chat()), 500, "upstream_500")
    assert "<html" not in err["message"] and "500" in err["message"]
    fake.add(Reply(b"<html>maintenance</html>", status=200, headers={"Content-Type": "text/html"}))
    assert_error(post(p, chat()), 502, "upstream_bad_response")


def test_200_with_an_openai_error_object_is_an_error(up):
    fake, p = up
    fake.add(Reply({"error": {"message": "model overloaded", "type": "server_error", "code": "overloaded"}}))
    err = assert_error(post(p, chat()), 502)
    assert "model overloaded" in err["message"]
    # In a stream the error event reaches the client as an error event (the SDK raises on it).
    fake.add(Stream([{"error": {"message": "model overloaded", "type": "server_error"}}, "[DONE]"]))
    r = post(p, chat(stream=True))
    events = sse_events(r.text) if r.status_code == 200 else [r.json()]
    assert any(isinstance(e, dict) and "model overloaded" in e.get("error", {}).get("message", "") for e in events)


# ------------------------------------------------------------------ retries
@pytest.mark.parametrize("status", [503])
def test_retry_after_within_budget_is_retried(up, status):
    fake, p = up
    fake.add(Reply({"error": {"message": "busy", "type": "rate_limit_error"}}, status=status, headers={"Retry-After": "1"}))
    start = time.monotonic()
    r = post(p, chat())
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    assert len(fake.received) == 2 and time.monotonic() - start >= 0.95


def test_retry_after_as_http_date(up):
    fake, p = up
    when = email.utils.formatdate(time.time() + 1, usegmt=True)
    fake.add(Reply(b"busy", status=503, headers={"Retry-After": when, "Content-Type": "text/plain"}))
    assert post(p, chat()).status_code == 200 and len(fake.received) == 2


def test_retries_are_capped_and_the_last_answer_reaches_the_client(up):
    fake, p = up
    busy = Reply({"error": {"message": "try later", "type": "server_error"}}, status=503, headers={"Retry-After": "0"})
    fake.add(busy, busy, busy, busy)
    err = assert_error(post(p, chat()), 503)
    assert err["message"] == "try later"
    assert len(fake.received) == 3  # the first try and max_retries=2 retries


def test_502_504_without_retry_after_are_retried_with_backoff(up):
    fake, p = up
    fake.add(Reply(b"bad gateway", status=502, headers={"Content-Type": "text/plain"}),
             Reply(b"gateway timeout", status=504, headers={"Content-Type": "text/plain"}))
    start = time.monotonic()
    assert post(p, chat()).status_code == 200
    assert len(fake.received) == 3 and time.monotonic() - start < 1.5  # jittered backoff, 0.25 s then 0.5 s at most


def test_non_retryable_statuses_go_straight_to_the_client(up):
    fake, p = up
    for status in (400, 401, 404, 500):
        fake.received.clear()
        fake.add(Reply({"error": {"message": f"no {status}", "type": "x"}}, status=status))
        assert post(p, chat()).status_code == status
        assert len(fake.received) == 1


def test_a_429_is_never_asked_again_even_with_a_short_retry_after(up):
    """A 4xx, 429 included, goes to the client as it came (its SDK waits the Retry-After out itself)."""
    fake, p = up
    fake.add(Reply({"error": {"message": "busy", "type": "rate_limit_error"}}, status=429,
                   headers={"Retry-After": "1", "x-should-retry": "true"}))
    r = post(p, chat())
    assert r.status_code == 429 and r.headers["Retry-After"] == "1" and len(fake.received) == 1


def test_429_without_retry_after_is_not_waited_for(up):
    fake, p = up
    fake.add(Reply({"error": {"message": "quota", "type": "insufficient_quota"}}, status=429))
    assert_error(post(p, chat()), 429)
    assert len(fake.received) == 1


def test_a_429s_retry_after_reaches_the_client_as_the_seconds_it_means(up):
    """Relayed as it came when short; a 5,000-digit one as the hour it is read as (routing reads the same
    header), and one that means nothing not at all."""
    fake, p = up
    for sent, relayed in (("120", "120"), ("9" * 5000, "3600"), ("soon" * 40, None)):
        fake.add(Reply({"error": {"message": "quota", "type": "insufficient_quota"}}, status=429,
                       headers={"Retry-After": sent}))
        r = post(p, chat())
        assert r.status_code == 429 and r.headers.get("Retry-After") == relayed, (sent[:20], r.headers)


def test_retries_spent_tell_the_sdks_not_to_multiply_them(up):
    """The proxy retried a 503 twice: its answer says `x-should-retry: false`, which the openai and anthropic SDKs
    obey before any rule of status, so one SDK call (their default max_retries=2) is 3 upstream calls, not 9."""
    fake, p = up
    busy = Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=503, headers={"Retry-After": "0"})
    fake.add(*[busy] * 9)
    sdk = openai.OpenAI(base_url=p.base_url, api_key="sk-client", max_retries=2, timeout=30)
    with pytest.raises(openai.InternalServerError) as failed:
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert len(fake.received) == 3
    fake.received.clear()
    fake.add(*[busy] * 9)
    messages = anthropic.Anthropic(base_url=p.url, api_key="sk-client", max_retries=2, timeout=30).messages
    with pytest.raises(anthropic.APIStatusError):
        messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert len(fake.received) == 3
    fake.queue.clear()


def test_an_answer_not_retried_leaves_the_clients_retries_alone(up):
    fake, p = up
    fake.add(Reply({"error": {"message": "boom", "type": "server_error"}}, status=500))
    r = post(p, chat())
    assert r.status_code == 500 and "x-should-retry" not in r.headers and len(fake.received) == 1


@pytest.mark.parametrize("should, status, tries", [("false", 503, 1), ("true", 500, 3), ("true", 429, 1), ("true", 409, 1)])
def test_the_upstreams_x_should_retry_decides(up, should, status, tries):
    fake, p = up
    answer = Reply({"error": {"message": "no", "type": "x"}}, status=status, headers={"x-should-retry": should})
    fake.add(answer, answer, answer)
    r = post(p, chat())
    assert r.status_code == status and len(fake.received) == tries
    assert r.headers["x-should-retry"] == ("false" if tries > 1 else should)  # retried: not again
    fake.queue.clear()


RATE_HEADERS = {"Retry-After": "7", "retry-after-ms": "7000", "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "7s", "anthropic-ratelimit-requests-remaining": "0",
                "x-request-id": "req_upstream", "Set-Cookie": "session=upstream", "Server": "upstream/1.0"}


@pytest.mark.parametrize("route", ["chat", "messages", "responses"])
def test_an_errors_rate_limit_headers_reach_the_client(up, route):
    """What clients read to back off comes with the error (the SDKs read retry-after-ms first); what describes
    the upstream's own answer does not."""
    fake, p = up
    fake.add(Reply({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=429,
                   headers={**RATE_HEADERS, "Retry-After": "60", "retry-after-ms": "60000"}))
    path, body = {"chat": ("/v1/chat/completions", chat()),
                  "messages": ("/v1/messages", {"model": "m", "max_tokens": 8,
                                                "messages": [{"role": "user", "content": "hi"}]}),
                  "responses": ("/v1/responses", {"model": "m", "input": "hi"})}[route]
    r = requests.post(p.url + path, json=body, timeout=30)
    assert r.status_code == 429, r.text
    for name in ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
                 "anthropic-ratelimit-requests-remaining"):
        assert r.headers[name] == RATE_HEADERS[name], name
    assert r.headers["Retry-After"] == "60" and r.headers["retry-after-ms"] == "60000"
    assert "Set-Cookie" not in r.headers and r.headers.get("x-request-id") != "req_upstream"
    assert r.headers["X-Upstream-Request-ID"] == "req_upstream"
    assert "upstream" not in r.headers.get("Server", "")


# ------------------------------------------------------------------ enormous answers
def _worker_rss(p) -> int:
    return max(w.memory_info().rss for w in workers(p))


def test_fifty_megabyte_stream_passes_without_growing_the_worker(up):
    fake, p = up
    piece = "z" * 65000
    quick_ok(p)  # before queueing: it goes upstream too
    fake.add(Stream(chat_chunks([piece] * 800)))  # ~52 MB of SSE
    before = _worker_rss(p)
    peak = before
    received = 0
    with requests.post(p.base_url + "/chat/completions", json=chat(stream=True), stream=True, timeout=30) as r:
        assert r.status_code == 200
        for i, block in enumerate(r.iter_content(1 << 20)):
            received += len(block)
            if i % 8 == 0:
                peak = max(peak, _worker_rss(p))
        tail = block
    assert received > 50_000_000 and tail.endswith(b"data: [DONE]\n\n")
    assert peak - before < 20 * 1024 * 1024, (before, peak)


def test_fifty_megabyte_download_passes_through(up):
    fake, p = up
    quick_ok(p)  # before queueing: it goes upstream too
    fake.add(Reply(b"\x01" * 50_000_000, headers={"Content-Type": "application/octet-stream"}))
    before = _worker_rss(p)
    peak, received = before, 0
    with requests.get(p.base_url + "/files/big/content", stream=True, timeout=30) as r:
        assert r.status_code == 200
        for i, block in enumerate(r.iter_content(1 << 20)):
            received += len(block)
            if i % 8 == 0:
                peak = max(peak, _worker_rss(p))
    assert received == 50_000_000
    assert peak - before < 20 * 1024 * 1024, (before, peak)


@pytest.mark.parametrize("worker_class", ["gevent", "gthread", "sync"])
def test_a_forwarded_body_the_upstream_cuts_reaches_the_client_cut(up, worker_class):
    """Bytes relayed as they came have no error event to end with: the client's connection is dropped before the
    body's end (no last chunk), so a download cut upstream is not taken for a whole one; the worker logs one
    warning and no traceback, and serves the next request (every worker class)."""
    fake, _ = up
    with running_proxy(TARGET_BASE_URL=fake.base_url, WORKER_CLASS=worker_class) as p:
        quick_ok(p, timeout=10)
        _a_cut_download(fake, p)


def _a_cut_download(fake, p) -> None:
    fake.add(Stream([b"first part;", b"second part"], cut_after=1,
                    headers={"Content-Type": "application/octet-stream"}))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        with requests.get(p.base_url + "/files/f/content", stream=True, timeout=20) as r:
            assert r.status_code == 200
            b"".join(r.iter_content(None))
    assert poll(lambda: "upstream broke off" in p.read_log())
    assert "Traceback" not in p.read_log()
    quick_ok(p)


def test_a_short_forwarded_body_shorter_than_its_length_is_a_502_not_ours(up):
    """A small forwarded answer is read whole before it is sent on: one cut short of its Content-Length is the
    upstream's fault, a 502 naming it, not a 500 of the proxy's."""
    srv = _answering_once(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}")
    with running_proxy(TARGET_BASE_URL=f"http://127.0.0.1:{srv.getsockname()[1]}/v1/", MAX_RETRIES="0") as p2:
        assert_error(requests.get(p2.base_url + "/files/f", timeout=20), 502, "upstream_disconnected")
    srv.close()


def failures_in_parallel(clients: int, each: int, ask: Callable[[requests.Session, int, int], str | None]) -> list[str]:
    """`clients` clients at once, each on a Session of its own asking `each` times: what `ask(session, client,
    i)` said went wrong."""
    def client(n: int) -> list[str]:
        with requests.Session() as session:
            return [f for f in (ask(session, n, i) for i in range(each)) if f is not None]
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return [f for got in pool.map(client, range(clients)) for f in got]


class RawUpstream:
    """An upstream on a bare socket, one thread per connection (`serve`), for wire faults no HTTP server makes."""

    def __init__(self) -> None:
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.base_url = f"http://127.0.0.1:{self.srv.getsockname()[1]}/v1/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            if not answered_a_question(conn):
                self.serve(conn)

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class HangingUp(RawUpstream):
    """An upstream that answers each connection's first request (kept alive) and reads its second, then closes
    without an answer: a kept-alive connection closed as a request went out on it (an idle timeout, or a server
    that read the request and died on it). `every`: every request on every connection is met so."""

    ANSWER = json.dumps(chat_completion("from a fresh connection")).encode()

    def __init__(self, every: bool = False) -> None:
        self.every = every
        self.requests = self.hung_up = 0
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        for n in range(2):
            if _read_request(conn) is None:
                return
            self.requests += 1
            if n == 1 or self.every:
                self.hung_up += 1
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(self.ANSWER) + self.ANSWER)


def _read_request(conn: socket.socket) -> bytes | None:
    """The body of the next request on `conn`; None when the client closed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return body


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_a_request_met_by_a_closed_connection_is_sent_again_only_when_it_may_be_sent_twice(fast_path):
    """A kept-alive connection closed before any answer (an idle timeout crossing the request, or a server that
    read the request and died on it): a GET, or a POST with an idempotency key, goes once more on a new
    connection; a POST without one may have been processed (a paid call) and is a 502, sent once. The same in
    both transports."""
    up = HangingUp()
    with running_proxy(TARGET_BASE_URL=up.base_url, MAX_RETRIES="0", FAST_PATH=fast_path) as p:
        assert post(p, chat()).status_code == 200  # the connection's first request: answered, kept alive
        before = up.requests
        err = assert_error(post(p, chat()), 502, "upstream_disconnected")
        assert "closed the connection without answering" in err["message"]
        assert up.requests == before + 1  # read once, not again
        for headers in ({"Idempotency-Key": "k-1"}, {"X-Idempotency-Key": "k-2"}):
            assert post(p, chat(), headers=headers).status_code == 200  # leaves a kept-alive connection pooled
            hung_up = up.hung_up
            r = post(p, chat(), headers=headers)  # on that connection: met by the close, sent again
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "from a fresh connection"
            assert up.hung_up == hung_up + 1
        assert post(p, chat()).status_code == 200  # a kept-alive connection pooled again (a resend's is not)
        hung_up = up.hung_up
        assert requests.get(p.base_url + "/files/f", timeout=20).status_code == 200, "a GET is sent again"
        assert up.hung_up == hung_up + 1
    up.srv.close()


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_keyed_requests_sent_again_under_threads_go_on_connections_of_their_own(fast_path):
    """Under gthread many pooled connections are kept alive at once, and the upstream closes each as its second
    request goes out: a keyed request met by the close must be sent again on a new connection, not on another
    pooled one that the upstream is about to close too (a review saw 2-6 of 50 keyed requests fail so)."""
    up = HangingUp()
    with running_proxy(TARGET_BASE_URL=up.base_url, WORKER_CLASS="gthread", THREADS="16", FAST_PATH=fast_path,
                       MAX_RETRIES="0") as p:
        def ask(session: requests.Session, n: int, i: int) -> str | None:
            r = session.post(p.base_url + "/chat/completions", json=chat(), timeout=30,
                             headers={"Idempotency-Key": f"k-{n}-{i}"})
            return None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
        failures = failures_in_parallel(16, 8, ask)
        assert not failures, failures[:5]
        assert up.hung_up > 0  # the closes did meet requests
    up.srv.close()


class CutHeads(RawUpstream):
    """An upstream that starts a stream's head and closes before ending it (a server that died on the request);
    a whole request gets a whole completion."""

    def __init__(self) -> None:
        self.asked: list[bool] = []  # stream or not, per request
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        body = _read_request(conn)
        if body is None:
            return
        stream = bool(json.loads(body).get("stream"))
        self.asked.append(stream)
        if stream:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(HangingUp.ANSWER) + HangingUp.ANSWER)


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_a_stream_whose_head_was_cut_is_not_asked_again_whole_unless_it_may_be_sent_twice(fast_path):
    """Python's HTTP client reads a head cut by a close as a whole one, and its body, unframed, as empty: a stream
    that ended before its first event, which the proxy asks again whole (llama.cpp's tool streams). Unframed, it
    may be a server that died on the request after running it: a POST is then sent once, as the resend rule says,
    and asked again whole only with an idempotency key."""
    up = CutHeads()
    with running_proxy(TARGET_BASE_URL=up.base_url, FAST_PATH=fast_path, MAX_RETRIES="0") as p:
        err = assert_error(post(p, chat(stream=True)), 502, "upstream_disconnected")
        assert "not sent again" in err["message"]
        assert up.asked == [True]
        r = post(p, chat(stream=True), headers={"Idempotency-Key": "k-1"})
        assert r.status_code == 200 and "from a fresh connection" in r.text
        assert up.asked == [True, True, False]
    up.srv.close()


class FloodingStream(RawUpstream):
    """An upstream whose stream is all there at once: EVENTS chunked events in one send, so the proxy's reads of
    it never wait."""

    EVENTS = 300_000

    def serve(self, conn: socket.socket) -> None:
        if _read_request(conn) is None:
            return
        event = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
        chunk = b"%x\r\n%s\r\n" % (len(event), event)
        try:  # the proxy's health probe asks too, and leaves before the end
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunk * self.EVENTS + b"%x\r\ndata: [DONE]\n\n\r\n0\r\n\r\n" % len(b"data: [DONE]\n\n"))
        except OSError:
            pass


def test_a_stream_whose_reads_and_writes_never_wait_leaves_the_worker_to_others():
    """One gevent worker relaying a stream that is all there (a fast upstream) to a client that reads at once:
    nothing made it give way, so every other request on the worker waited for the whole stream."""
    up = FloodingStream()
    with running_proxy(TARGET_BASE_URL=up.base_url, WORKERS="1", MAX_RETRIES="0") as p:
        assert health_answered_during(p.base_url + "/chat/completions", chat(stream=True), p.url + "/health"), \
            "/health waited for the whole stream"
    up.srv.close()


def health_answered_during(url: str, body: dict, health_url: str, read_size: int = 65536) -> bool:
    """Whether /health on the same worker is answered while a stream to `url` is still being read (by a client
    that reads at once: the proxy's writes never wait)."""
    started, done = threading.Event(), threading.Event()

    def read_stream() -> None:
        with requests.post(url, json=body, stream=True, timeout=120) as r:
            for _ in r.iter_content(read_size):
                started.set()
        done.set()
    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()
    assert started.wait(60)
    health = requests.get(health_url, timeout=120)
    during = not done.is_set()
    reader.join(120)
    assert health.status_code in (200, 503) and done.is_set()
    return during


class DrippedHead(RawUpstream):
    """An answer head sent a byte every 0.2 s: each receive is quick, the head never ends."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = threading.Event()  # the proxy shut the connection (a test sharing it sets a new one)

    def serve(self, conn: socket.socket) -> None:
        closed = self.closed  # the event of the test this connection came in
        if _read_request(conn) is None:
            return
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 2000:
                conn.sendall(bytes([byte]))
                time.sleep(0.2)
        except OSError:
            closed.set()


@pytest.fixture(scope="module")
def dripped_head():
    """One proxy for both cases below: they differ only in what the client asks."""
    up = DrippedHead()
    with running_proxy(TARGET_BASE_URL=up.base_url, TIMEOUT="1", MAX_RETRIES="0", SSE_KEEPALIVE="0.5",
                       FAST_PATH="on") as p:
        yield up, p
    up.srv.close()


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_head_that_never_ends_is_a_timeout_at_the_read_timeout(dripped_head, stream):
    """urllib3's read timeout bounds each receive: a head dripped a byte at a time held the request (and the
    upstream connection) for as long as the upstream liked. It is now cut at TIMEOUT, as a silent upstream is (the
    fast path's connections; FAST_PATH=off keeps urllib3's own rule, docs/decisions.md)."""
    up, p = dripped_head
    up.closed = threading.Event()  # this test's connection's, before it is made
    started = time.monotonic()
    r = post(p, chat(stream=stream))
    took = time.monotonic() - started
    if stream and r.status_code == 200:  # committed with keepalives before the head came: an error event
        assert sse_events(r.text)[-1]["error"]["code"] == "upstream_timeout", r.text
    else:
        assert_error(r, 504, "upstream_timeout")
    assert took < 10, took
    assert up.closed.wait(10)  # and the upstream connection was let go


class NothingFlood(RawUpstream):
    """A stream whose events a front door turns into nothing for its client (empty data lines), all there at
    once after one real delta: the relay gives turns for what it sends, and this sends nothing."""

    EVENTS = 300_000

    def serve(self, conn: socket.socket) -> None:
        if _read_request(conn) is None:
            return
        first = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
        last = (b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},'
                b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (first, b"data:\n\n" * self.EVENTS, last))
                         + b"0\r\n\r\n")
        except OSError:
            pass


@pytest.mark.parametrize("path,body", [
    ("/v1/messages", {"model": "m", "max_tokens": 9, "stream": True, "messages": [{"role": "user", "content": "x"}]}),
    ("/v1/responses", {"model": "m", "stream": True, "input": "x"})])
def test_a_stream_of_events_that_give_the_client_nothing_leaves_the_worker_to_others(path, body):
    """An upstream flooding events a front door turns into nothing (here, empty data lines): the door never
    waited on a socket and sent nothing, so nothing gave way; one such stream held its gevent worker 33 s."""
    up = NothingFlood()
    with running_proxy(TARGET_BASE_URL=up.base_url, WORKERS="1", MAX_RETRIES="0") as p:
        assert health_answered_during(p.url + path, body, p.url + "/health"), "/health waited for the whole stream"
    up.srv.close()


class EmptyStreams(RawUpstream):
    """An upstream that ends a stream for model `empty` with no data and keeps its connection open (so any close
    a client sees is the proxy's own); every other request gets a whole completion, kept alive."""

    def serve(self, conn: socket.socket) -> None:
        while (body := _read_request(conn)) is not None:
            asked = json.loads(body)
            if asked.get("stream") and asked.get("model") == "empty":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
                continue
            answer = json.dumps(chat_completion("whole " + asked.get("model", ""))).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(answer) + answer)


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_a_stream_with_no_data_under_threads_breaks_no_other_request(fast_path):
    """Under a gthread worker, the connection of a stream that ended with no data goes back to the pool as its
    end is read, where another thread can take it at once: the proxy must not close it under that request (a
    review saw one request in ten of the others fail so). Every request, empty stream or not, is answered."""
    up = EmptyStreams()
    with running_proxy(TARGET_BASE_URL=up.base_url, WORKER_CLASS="gthread", THREADS="8", FAST_PATH=fast_path,
                       MAX_RETRIES="0") as p:
        def ask(session: requests.Session, n: int, i: int) -> str | None:
            model, stream = ("empty", True) if (n + i) % 3 == 0 else ("m", i % 2 == 0)
            r = session.post(p.base_url + "/chat/completions", timeout=30, json={
                "model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
            ok = r.status_code == 200 and f"whole {model}" in r.text
            return None if ok else f"{model} stream={stream}: {r.status_code} {r.text[:200]}"
        failures = failures_in_parallel(8, 30, ask)
        assert not failures, failures[:5]
    up.srv.close()


def test_a_new_connection_closed_unanswered_is_not_sent_again():
    """A connection made for this request and closed without an answer may have had the request processed (a
    server that crashed on it, a paid call): a 502 saying so, the request sent once."""
    up = HangingUp(every=True)
    with running_proxy(TARGET_BASE_URL=up.base_url, MAX_RETRIES="0") as p:
        err = assert_error(post(p, chat()), 502, "upstream_disconnected")
        assert "closed the connection without answering" in err["message"]
        assert up.requests == 1
    up.srv.close()


class EarlyHints(RawUpstream):
    """An upstream that sends a 103 Early Hints before each answer (a CDN in front of an API does)."""

    def serve(self, conn: socket.socket) -> None:
        while _read_request(conn) is not None:
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                         b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(HangingUp.ANSWER) + HangingUp.ANSWER)


@pytest.mark.parametrize("fast_path", ["on", "off"])
def test_an_answer_after_early_hints_is_the_answer_or_a_502_never_the_103(fast_path):
    """The fast path reads past interim answers; the stock transport cannot, and says so (a 502 naming the
    103) instead of relaying the 103 as the answer (curl then waited for a body that never came). Either way the
    answer left on that connection is never read as the next request's."""
    up = EarlyHints()
    with running_proxy(TARGET_BASE_URL=up.base_url, FAST_PATH=fast_path, MAX_RETRIES="0") as p:
        for _ in range(3):
            r = post(p, chat())
            if fast_path == "on":
                assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "from a fresh connection"
            else:
                assert "103 Early Hints" in assert_error(r, 502, "upstream_bad_response")["message"]
            r = requests.get(p.base_url + "/files/f", timeout=20)  # forwarded: the same either way
            assert r.status_code == (200 if fast_path == "on" else 502), r.text
    up.srv.close()


@pytest.mark.parametrize("stream", [False, True])
def test_a_redirect_on_an_api_route_is_named_not_followed(up, stream):
    """A base URL one step off (http for https, a missing /v1) gets a 3xx: said as such, with where it points,
    not followed (the key would go there) and not read as an empty answer."""
    fake, p = up
    fake.add(Reply(b"", status=307, headers={"Location": "https://api.example.test/v1/chat/completions"}))
    err = assert_error(post(p, chat(stream=stream)), 502, "upstream_redirect")
    assert "307" in err["message"] and "https://api.example.test/v1/chat/completions" in err["message"]
    fake.add(Reply(b"", status=301, headers={"Location": "https://api.example.test/v1/messages"}))
    r = requests.post(p.url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}]}, timeout=20)
    assert r.status_code == 502 and r.json()["type"] == "error" and "301" in r.json()["error"]["message"], r.text


def test_a_forwarded_body_cut_before_its_first_byte_is_a_502(up):
    """Nothing has gone out when the upstream sends its head and closes (servers send a head with the first body
    bytes): a 502 naming the upstream, not an empty reply."""
    fake, p = up
    quick_ok(p)
    fake.add(Stream([b"never sent"], cut_after=0, headers={"Content-Type": "application/octet-stream"}))
    assert_error(requests.get(p.base_url + "/files/f/content", timeout=20), 502, "upstream_disconnected")
    quick_ok(p)


def test_a_redirected_model_list_says_so(up):
    fake, p = up
    fake.add(Reply(b"", status=302, headers={"Location": "https://api.example.test/v1/models"}))
    err = assert_error(requests.get(p.base_url + "/models", timeout=20), 502, "upstream_redirect")
    assert "302" in err["message"] and "https://api.example.test/v1/models" in err["message"]


def test_worker_survived_every_fault(up):
    fake, p = up
    assert len(workers(p)) == 1
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(s == 200 for s in pool.map(lambda _: post(p, chat()).status_code, range(16)))


@pytest.mark.parametrize("gevent_worker", [True, False])
def test_the_connection_of_a_stream_with_no_data_is_closed_only_under_gevent(tmp_path, monkeypatch, gevent_worker):
    """The stream's connection is back in the pool once its end is read: closed by the proxy where nothing else
    ran since (a gevent worker), left alone where another thread may hold it already; the request asked again
    whole goes on a connection of its own either way."""
    from argoproxy.config.settings import load_settings
    from argoproxy.pipeline import exchange
    from argoproxy.serve.flask_app import create_app
    from argoproxy.upstream.wire import UpstreamResponse

    discarded, fresh = [], []
    monkeypatch.setattr(exchange, "under_gevent", lambda: gevent_worker)
    original_discard, original_response = UpstreamResponse.discard, exchange.DeploymentExchange.response
    monkeypatch.setattr(UpstreamResponse, "discard", lambda self: (discarded.append(self), original_discard(self)))

    def response(self, call, req, *args, **kwargs):
        fresh.append(req.fresh_connection)
        return original_response(self, call, req, *args, **kwargs)
    monkeypatch.setattr(exchange.DeploymentExchange, "response", response)
    up = EmptyStreams()
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, environ={"HOME": str(tmp_path), "TARGET_BASE_URL": up.base_url, "SSE_KEEPALIVE": "0"})
    r = create_app(settings).test_client().post("/v1/chat/completions", json={
        "model": "empty", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and "whole empty" in r.get_data(as_text=True)
    assert len(discarded) == (1 if gevent_worker else 0)
    assert fresh == [False, True]  # the stream on a pooled connection, the second asking on one of its own
    up.srv.close()


def test_llama_servers_context_overflow_is_said_with_openais_code(up):
    """Codex and Aider act on `context_length_exceeded` (Codex: "ran out of room in the model's context window");
    llama.cpp's server says `exceed_context_size_error`, with its HTTP status as an integer code."""
    fake, p = up
    fake.add(Reply({"error": {"code": 400, "message": "request (40123 tokens) exceeds the available context size "
                              "(32768 tokens), try increasing it", "type": "exceed_context_size_error"}}, status=400))
    err = assert_error(post(p, chat()), 400, "context_length_exceeded")
    assert err["type"] == "invalid_request_error" and "exceeds the available context size" in err["message"]
    fake.add(Reply({"error": {"code": 400, "message": "bad", "type": "invalid_request_error"}}, status=400))
    assert assert_error(post(p, chat()), 400)["code"] is None  # not the string "400"
