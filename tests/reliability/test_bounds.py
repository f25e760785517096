"""Bounded resources through the running app (issue 12, item 6): an upstream answer read whole is cut at
MAX_RESPONSE_BYTES with a 502 naming it (the worker's memory stays flat), an endless SSE event ends the stream
with an error event at MAX_SSE_EVENT_BYTES, and a decompression-bomb image is left as its URL."""

from __future__ import annotations

import json

import pytest
import requests

from tests.fakes.fake_argo import CHAT_PATH, FakeArgo
from tests.fakes.fake_images import FakeImageServer
from tests.fakes.fake_openai import FakeOpenAI, Huge, Stream, chat_chunks
from tests.fakes.local_questions import answered_a_question
from tests.integration.test_argo import argo_env
from tests.proxy_process import running_proxy
from tests.reliability.support import assert_error, chat, peak_growth, quick_ok, sse_events, workers

pytestmark = pytest.mark.timeout(120)

MAX_RESPONSE = 8 * 1024 * 1024
MAX_EVENT = 1024 * 1024
MB = 1024 * 1024


def worker_rss(p) -> int:
    """The workers' peak resident memory so far (VmHWM): a body read whole and freed again still shows."""
    total = 0
    for w in workers(p):
        with open(f"/proc/{w.pid}/status") as status:
            total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    return total


@pytest.fixture(scope="module")
def env():
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, MAX_RESPONSE_BYTES=str(MAX_RESPONSE),
                           MAX_SSE_EVENT_BYTES=str(MAX_EVENT), TIMEOUT="20") as p:
            quick_ok(p, timeout=10)
            # a stream without usage: the worker loads the token counter it estimates usage with (~45 MB, once)
            # before any test measures its memory
            fake.add(Stream(chat_chunks(["warm"])))
            assert b"warm" in requests.post(p.base_url + "/chat/completions", json=chat(stream=True), timeout=60).content
            yield fake, p


@pytest.fixture
def up(env):
    fake, p = env
    fake.queue.clear()
    return fake, p


def test_300_megabyte_answer_is_a_502_naming_the_setting_and_memory_stays_flat(up):
    fake, p = up
    before = worker_rss(p)
    fake.add(Huge(300 * MB))
    r = requests.post(p.base_url + "/chat/completions", json=chat(), timeout=60)
    err = assert_error(r, 502, "upstream_response_too_large")
    assert "MAX_RESPONSE_BYTES" in err["message"]
    assert worker_rss(p) - before < 40 * MB, (before, worker_rss(p))
    quick_ok(p)


def test_answer_without_content_length_is_cut_too(up):
    fake, p = up
    before = worker_rss(p)
    fake.add(Stream([b"x" * 65536] * 300, headers={"Content-Type": "application/json"}))  # chunked, ~20 MB
    r = requests.post(p.base_url + "/chat/completions", json=chat(), timeout=60)
    assert "MAX_RESPONSE_BYTES" in assert_error(r, 502)["message"]
    assert worker_rss(p) - before < 40 * MB


def test_model_list_is_bounded(up):
    fake, p = up
    fake.add(Huge(50 * MB))
    r = requests.get(p.base_url + "/models", timeout=60)
    assert "MAX_RESPONSE_BYTES" in assert_error(r, 502)["message"]


def test_an_sse_event_without_its_blank_line_ends_the_stream_with_an_error_event(up):
    fake, p = up
    first = chat_chunks(["hello"])[:2]
    endless = b'data: {"choices": [{"delta": {"content": "' + b"y" * 65536
    fake.add(Stream(first + [endless] * 40))  # 2.5 MB with no blank line: more than MAX_SSE_EVENT_BYTES
    before = worker_rss(p)
    r = requests.post(p.base_url + "/chat/completions", json=chat(stream=True), timeout=30)
    assert r.status_code == 200
    events = sse_events(r.text)
    assert events[1]["choices"][0]["delta"]["content"] == "hello"
    assert events[-1]["error"]["code"] == "upstream_event_too_large"
    assert "MAX_SSE_EVENT_BYTES" in events[-1]["error"]["message"]
    assert worker_rss(p) - before < 40 * MB


@pytest.mark.parametrize("path, body, ending", [
    ("/chat/completions", chat(stream=True), b"upstream_event_too_large"),
    ("/messages", {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "x"}]},
     b"event: error"),
])
def test_one_huge_event_in_one_chunk_ends_the_stream_and_memory_stays_flat(up, path, body, ending):
    """A whole event far over MAX_SSE_EVENT_BYTES in one upstream chunk is refused like one that never ends,
    without the chunk read whole (FAST_PATH=off read each chunk whole: 100 MB took 280 MB of the worker)."""
    fake, p = up
    first = chat_chunks(["hello"])[:2]
    fake.add(Stream(first + [b'data: {"choices": [{"index": 0, "delta": {"content": "' + b"y" * (64 * MB)
                             + b'"}}]}\n\n', b"data: [DONE]\n\n"]))
    before = worker_rss(p)
    r = requests.post(p.base_url + path, json=body, timeout=60)
    assert r.status_code == 200 and ending in r.content and b"yyyy" not in r.content, r.content[-300:]
    assert b"MAX_SSE_EVENT_BYTES" in r.content
    assert worker_rss(p) - before < 40 * MB, (before, worker_rss(p))
    quick_ok(p)


def test_a_compressed_huge_event_in_one_chunk_is_refused_without_the_memory(tmp_path):
    """A 58 KB gzip chunk can hold a 60 MB event: decoded a piece at a time, it is refused like any event over
    MAX_SSE_EVENT_BYTES, and the worker never holds it whole (it took 248 MB on the fast path)."""
    import gzip
    import socket
    import threading
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "' + b"y" * (60 * MB) + b'"}}]}\n\n'
    packed = gzip.compress(event + b"data: [DONE]\n\n")
    # the first call is a small stream without usage: the worker loads the meter's token counter (~45 MB, once)
    # to estimate it, before the memory is measured
    small = gzip.compress(b'data: {"choices": [{"index": 0, "delta": {"content": "warm"}}]}\n\ndata: [DONE]\n\n')
    answers = [small]
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                if answered_a_question(conn):
                    continue
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                answer = answers.pop() if answers else packed
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(answer), answer))

    threading.Thread(target=serve, daemon=True).start()
    try:
        with running_proxy(TARGET_BASE_URL=f"http://127.0.0.1:{srv.getsockname()[1]}/v1/",
                           MAX_SSE_EVENT_BYTES=str(MAX_EVENT)) as p:
            assert b"warm" in requests.post(p.base_url + "/chat/completions", json=chat(stream=True), timeout=60).content
            before = worker_rss(p)
            r = requests.post(p.base_url + "/chat/completions", json=chat(stream=True), timeout=60)
            assert r.status_code in (200, 502) and b"upstream_event_too_large" in r.content, r.content[-300:]
            assert worker_rss(p) - before < 40 * MB, (before, worker_rss(p))
    finally:
        srv.close()


def test_aggregated_stream_is_bounded_in_stream_mode():
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, UPSTREAM_MODE="stream",
                           MAX_RESPONSE_BYTES=str(MAX_RESPONSE)) as p:
            fake.add(Stream(chat_chunks(["z" * 60000] * 200)))  # ~12 MB of events, aggregated into one answer
            r = requests.post(p.base_url + "/chat/completions", json=chat(), timeout=60)
            assert "MAX_RESPONSE_BYTES" in assert_error(r, 502)["message"]
            fake.add(Stream(chat_chunks(["small"])))
            r = requests.post(p.base_url + "/chat/completions", json=chat(), timeout=30)
            assert r.json()["choices"][0]["message"]["content"] == "small"


def test_decompression_bomb_image_is_left_as_its_url():
    """A 12000x12000 PNG (420 KB on the wire, 432 MB decoded) with payload control on: refused from its
    header, the request goes on with the URL, the reason is logged, and the worker never decodes it."""
    with FakeArgo() as argo, FakeImageServer() as imgs:
        env = argo_env(argo, IMAGE_ALLOW_PRIVATE="true", ENABLE_PAYLOAD_CONTROL="true", MAX_PAYLOAD_SIZE="1",
                       USE_NATIVE_OPENAI="false")
        with running_proxy(**env) as p:
            quick_ok(p, timeout=10)
            before = worker_rss(p)
            bomb, small = imgs.url("/bomb/12000x12000.png"), imgs.url("/img/red.png")
            parts = [{"type": "text", "text": "?"}, {"type": "image_url", "image_url": {"url": bomb}},
                     {"type": "image_url", "image_url": {"url": small}}]
            r = requests.post(p.base_url + "/chat/completions", timeout=60,
                              json={"model": "argo:gpt-4o", "messages": [{"role": "user", "content": parts}]})
            assert r.status_code == 200, r.text
            sent = argo.requests_to(CHAT_PATH)[-1].json["messages"][0]["content"]
            assert sent[1]["image_url"]["url"] == bomb  # left in place
            assert sent[2]["image_url"]["url"].startswith("data:image/png;base64,")  # the small one inlined
            assert worker_rss(p) - before < 100 * MB
        log = p.stop()
    assert "12000x12000" in log and "max_image_pixels" in log


def gzip_of_zeros(size: int) -> bytes:
    """A gzip body that inflates to `size` zero bytes (about 1000:1), built without holding it whole."""
    import zlib
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MB)
    return b"".join(packer.compress(block) for _ in range(size // MB)) + packer.flush()


def test_a_small_compressed_forwarded_answer_is_not_inflated_whole():
    # With a secret configured the proxy relays compressed bodies decoded (to scan them); a 100 KB gzip that
    # inflates to 64 MB must stream through, not be inflated in memory at once.
    from tests.fakes.fake_openai import Reply
    bomb = gzip_of_zeros(64 * MB)
    assert len(bomb) < 256 * 1024
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, OPENAI_API_KEY="sk-upstream-key-0123456789") as p:
            quick_ok(p, timeout=10)
            before = worker_rss(p)
            fake.add(Reply(bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}))
            with requests.get(p.base_url + "/files/abc/content", stream=True, timeout=60) as r:
                assert r.status_code == 200
                size = sum(len(piece) for piece in r.raw.stream(MB, decode_content=False))
            assert size == 64 * MB
            assert worker_rss(p) - before < 40 * MB, (before, worker_rss(p))


def test_payload_control_decodes_one_image_at_a_time():
    """Four distinct 3000x3000 PNGs (118 KB each on the wire, 27 MB each decoded, under MAX_IMAGE_PIXELS) over
    the payload budget are shrunk one after another: the worker never holds two decoded (before, all four were
    held at once, and a copy of each: four of 7000x7000 peaked at 1.2 GB)."""
    decoded = 3000 * 3000 * 3

    def send(parts: list[dict]) -> list[dict]:
        r = requests.post(p.base_url + "/chat/completions", timeout=100,
                          json={"model": "argo:gpt-4o", "messages": [{"role": "user", "content": parts}]})
        assert r.status_code == 200, r.text
        return argo.requests_to(CHAT_PATH)[-1].json["messages"][0]["content"]

    with FakeArgo() as argo, FakeImageServer() as imgs:
        env = argo_env(argo, IMAGE_ALLOW_PRIVATE="true", ENABLE_PAYLOAD_CONTROL="true", MAX_PAYLOAD_SIZE="0.4",
                       USE_NATIVE_OPENAI="false")
        with running_proxy(**env) as p:
            quick_ok(p, timeout=10)
            send([{"type": "image_url", "image_url": {"url": imgs.url("/img/red.png")}}])  # Pillow loaded once
            parts = [{"type": "image_url", "image_url": {"url": imgs.url(f"/bomb/3000x3000.png?copy={i}")}}
                     for i in range(4)]
            growth, sent = peak_growth(p, lambda: send(parts))
    urls = [part["image_url"]["url"] for part in sent]
    assert all(url.startswith("data:image/") for url in urls) and any(url.startswith("data:image/jpeg") for url in urls)
    assert len(json.dumps(sent)) < 0.4 * MB
    # One image decoded, and its JPEG encoder's buffers (optimize keeps every coefficient): about 2 x decoded
    # (60 MB here); all four at once peaked at 189 MB, 7 x.
    assert growth < 3 * decoded, f"the worker's peak grew by {growth / MB:.0f} MB"
