"""SSE keepalive through the running app: comment lines while a streamed answer waits on a slow upstream,
under every worker class; nothing changes for a fast upstream; a client that leaves during the wait frees
the upstream."""

from __future__ import annotations

import json
import time

import psutil
import pytest
import requests

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.polling import poll
from tests.proxy_process import running_proxy

MSG = [{"role": "user", "content": "hi"}]
CHAT = {"model": "m", "messages": MSG, "stream": True}


def raw_stream(p, body=CHAT) -> tuple[requests.Response, bytes]:
    r = requests.post(p.base_url + "/chat/completions", json=body, stream=True, timeout=30)
    return r, r.raw.read()


@pytest.fixture(scope="module", params=["gevent", "gthread", "sync"])
def kept(request):
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, SSE_KEEPALIVE="0.3",
                                           WORKER_CLASS=request.param, WORKERS="2") as p:
        yield up, p


def test_silence_before_and_during_a_stream_gets_comments_the_sdk_ignores(kept):
    up, p = kept
    up.add(Stream(chat_chunks(["Hel", "lo"]), first_delay=1.0, pause_at={2: 1.0}))
    r, body = raw_stream(p)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = body.split(b"\n\n")
    assert events[0] == b": keepalive"  # before the upstream answered at all
    first_data = next(i for i, e in enumerate(events) if e.startswith(b"data:"))
    assert b": keepalive" in events[first_data:]  # and during the pause mid-stream
    assert body.endswith(b"data: [DONE]\n\n")
    up.add(Stream(chat_chunks(["Hel", "lo"]), first_delay=1.0, pause_at={2: 1.0}))
    client = openai_sdk(p)
    chunks = list(client.chat.completions.create(model="m", messages=MSG, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"


def test_a_fast_upstream_streams_exactly_as_without_keepalive(kept):
    up, p = kept
    events = chat_chunks(["a", "b", "c"])
    up.add(Stream(events))
    r, body = raw_stream(p)
    expected = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" if isinstance(e, dict) else b"data: [DONE]\n\n"
                        for e in events)
    assert body == expected
    up.add(Reply({"error": {"message": "nope", "type": "invalid_request_error"}}, status=400))
    r = requests.post(p.base_url + "/chat/completions", json=CHAT)
    assert r.status_code == 400 and r.json()["error"]["message"] == "nope"  # still an HTTP error


def test_a_slow_error_becomes_an_sse_error_event(kept):
    up, p = kept
    up.add(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=400, delay=1.0))
    r, body = raw_stream(p)
    assert r.status_code == 200 and body.startswith(b": keepalive\n\n")
    error = json.loads(body.split(b"data: ", 1)[1])
    assert error["error"]["message"] == "overloaded" and error["error"]["request_id"] == r.headers["X-Request-ID"]


def test_a_slow_error_is_journaled_and_counted_as_the_error_it_is(tmp_path):
    """A stream committed with keepalives that then fails before any answer ends in an error event; the call is
    recorded like any error answer (it left no journal line, no metrics and no request line)."""
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, SSE_KEEPALIVE="0.3",
                                           LOG_DIR=str(tmp_path)) as p:
        up.add(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=400, delay=1.0))
        r, body = raw_stream(p)
        assert r.status_code == 200 and b"overloaded" in body
        journal = tmp_path / "client_interaction.jsonl"
        assert poll(lambda: journal.exists() and journal.read_text().strip())
        line = json.loads(journal.read_text().splitlines()[-1])
        assert line["status"] == 400 and "overloaded" in json.dumps(line), line
        metrics = requests.get(p.url + "/metrics", timeout=10).text
        assert any(m.startswith("cot_proxy_requests_total") and 'status="400"' in m for m in metrics.splitlines())


def test_pseudo_stream_waits_with_keepalives():
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, SSE_KEEPALIVE="0.3",
                                           UPSTREAM_MODE="non_stream") as p:
        up.add(Reply(chat_completion("whole answer"), delay=1.0))
        r, body = raw_stream(p)
        assert body.startswith(b": keepalive\n\n") and b"whole answer" in body and body.endswith(b"[DONE]\n\n")


def test_off_sends_no_comments():
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, SSE_KEEPALIVE="0") as p:
        up.add(Stream(chat_chunks(["x"]), first_delay=0.8))
        _, body = raw_stream(p)
        assert b"keepalive" not in body and body.endswith(b"[DONE]\n\n")


def upstream_connections(p, port: int) -> int:
    """Established connections from the proxy's processes to the upstream's port."""
    procs = [psutil.Process(p.proc.pid), *psutil.Process(p.proc.pid).children(recursive=True)]
    return sum(1 for proc in procs for c in proc.net_connections("tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_a_client_leaving_during_the_wait_frees_the_upstream(worker_class):
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, SSE_KEEPALIVE="0.2",
                                           WORKER_CLASS=worker_class) as p:
        up.add(Stream(chat_chunks(["a", "b"]), pause_at={1: 30}))
        r = requests.post(p.base_url + "/chat/completions", json=CHAT, stream=True, timeout=30)
        assert r.raw.read(10)  # the first event arrived; the upstream now pauses for 30 s
        assert upstream_connections(p, up.port) == 1
        r.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and upstream_connections(p, up.port):
            time.sleep(0.05)
        assert upstream_connections(p, up.port) == 0  # cut within a keepalive or two, not after 30 s


def test_front_doors_wait_with_keepalives_and_fail_in_their_own_events():
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, SSE_KEEPALIVE="0.3") as p:
        up.add(Stream(chat_chunks(["Hel", "lo"]), first_delay=1.0))
        messages = anthropic_sdk(p)
        with messages.messages.stream(model="m", max_tokens=50, messages=MSG) as stream:
            assert "".join(stream.text_stream) == "Hello"
        up.add(Stream(chat_chunks(["Hel", "lo"]), first_delay=1.0))
        responses = openai_sdk(p)
        events = list(responses.responses.create(model="m", input="hi", stream=True))
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello"
        up.add(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=400, delay=1.0))
        r = requests.post(p.url + "/v1/messages", stream=True, timeout=30,
                          json={"model": "m", "max_tokens": 10, "messages": MSG, "stream": True})
        body = r.raw.read()
        assert body.startswith(b": keepalive\n\n") and r.headers["request-id"] == r.headers["X-Request-ID"]
        error = [block for block in body.split(b"\n\n") if block.startswith(b"event: error")]
        assert len(error) == 1 and json.loads(error[0].split(b"data: ", 1)[1])["error"]["message"] == "overloaded"


def test_under_gevent_a_waiting_stream_costs_no_os_thread():
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, SSE_KEEPALIVE="0.2",
                                           WORKER_CLASS="gevent", WORKERS="1") as p:
        requests.get(p.url + "/health")  # answered by the worker, so it exists now (the port opens before the fork)
        # one stream first: its usage estimate loads the token counter in gevent's pool (a thread, once)
        up.queue.append(Stream(chat_chunks(["warm"])))  # no usage: the proxy estimates it
        assert requests.post(p.base_url + "/chat/completions", json=CHAT, timeout=30).status_code == 200
        worker = psutil.Process(p.proc.pid).children()[0]
        before = worker.num_threads()
        up.queue.extend(Stream(chat_chunks(["x"]), first_delay=2) for _ in range(20))
        responses = [requests.post(p.base_url + "/chat/completions", json=CHAT, stream=True, timeout=30)
                     for _ in range(20)]  # headers and the first keepalive arrive after 0.2 s
        assert all(r.raw.read(len(b": keepalive\n\n")) == b": keepalive\n\n" for r in responses)
        assert worker.num_threads() <= before + 1  # 20 streams waiting, no thread each (gevent's pool may add one)
        for r in responses:
            assert r.raw.read().endswith(b"data: [DONE]\n\n")
