"""What the proxy reads of an answer from a server it chose itself (issue 55, item 6; upstream/answer_bounds.py):
a collector's answer up to MAX_COLLECTOR_ANSWER, then the connection dropped; llama-server's /props and /slots and
a model list read for contexts up to MAX_PROBE_ANSWER, a longer one saying nothing (the limit stays unknown, the
default is reserved). Real servers on loopback; each answer longer than its bound is valid JSON that says
something, so that reading it on would be seen."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator

import pytest
import requests

from argoproxy.config.settings import load_settings
from argoproxy.errors import ProxyError
from argoproxy.pipeline.request_reading import listed_models
from argoproxy.routing.slots import server_slots
from argoproxy.serve.proxy import build_proxy
from argoproxy.upstream.answer_bounds import (MAX_COLLECTOR_ANSWER, MAX_PROBE_ANSWER, AnswerTooLong, capped,
                                              collector_session, read_capped)
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.fakes.quiet_server import QuietServer

ENDLESS_FOR = 5.0  # seconds an "endless" answer goes on (a client that reads it all waits this long)


class Answers:
    """A server answering each path with a body: `endless` ones go on for ENDLESS_FOR seconds, chunked."""

    def __init__(self, bodies: dict[str, bytes], endless: tuple[str, ...] = ()) -> None:
        self.bodies, self.endless, self.cut = bodies, endless, 0

    def __enter__(self) -> "Answers":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path in server.endless:
                    return self.endless_body()
                body = server.bodies.get(self.path, b"{}")
                self.send_response(200 if self.path in server.bodies else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def endless_body(self) -> None:
                self.close_connection = True
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                piece = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
                end = time.monotonic() + ENDLESS_FOR
                try:
                    while time.monotonic() < end:
                        self.wfile.write(piece)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    server.cut += 1

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def padded(obj: dict[str, Any], size: int) -> bytes:
    """`obj` as JSON, padded with a member of spaces to `size` bytes."""
    return json.dumps({**obj, "pad": " " * size}).encode()


@pytest.fixture
def endless() -> Iterator[Answers]:
    with Answers({"/small": b'{"ok": true}'}, endless=("/endless", "/v1/traces")) as server:
        yield server


def test_a_capped_session_keeps_the_first_bytes_of_an_endless_answer_and_hangs_up(endless):
    session = capped(requests.Session(), MAX_COLLECTOR_ANSWER)
    started = time.monotonic()
    r = session.post(endless.url + "/v1/traces", data=b"spans", timeout=10)
    assert r.status_code == 200 and r.content == b" " * MAX_COLLECTOR_ANSWER
    assert time.monotonic() - started < ENDLESS_FOR / 2  # not read on to the end
    assert session.get(endless.url + "/small", timeout=10).json() == {"ok": True}  # whole, and again
    assert session.get(endless.url + "/small", timeout=10).json() == {"ok": True}
    with session.get(endless.url + "/endless", timeout=10, stream=True) as streamed:  # a stream is the caller's
        assert len(next(streamed.iter_content(1 << 20))) > 0


def test_a_bounded_read_of_a_whole_answer_refuses_a_longer_one(endless):
    with pytest.raises(AnswerTooLong, match=str(MAX_PROBE_ANSWER)):
        read_capped(requests.get(endless.url + "/endless", stream=True, timeout=10), MAX_PROBE_ANSWER)
    assert read_capped(requests.get(endless.url + "/small", stream=True, timeout=10), 12) == b'{"ok": true}'
    with pytest.raises(AnswerTooLong):
        read_capped(requests.get(endless.url + "/small", stream=True, timeout=10), 11)


def test_the_exporters_session_is_capped_unless_a_credential_provider_gives_one(monkeypatch, endless):
    for name in ("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
                 "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    session = collector_session(requests.Session())["session"]
    assert len(session.post(endless.url + "/v1/traces", data=b"", timeout=10).content) == MAX_COLLECTOR_ANSWER
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER", "a_provider")
    assert collector_session(requests.Session()) == {}


def test_slots_a_server_says_past_the_bound_are_not_read():
    said = {"/props": padded({"total_slots": 4}, MAX_PROBE_ANSWER), "/slots": padded({}, 10)}
    with Answers(said) as server:
        assert server_slots(requests.Session(), server.url + "/v1") is None
    with Answers({"/props": padded({"total_slots": 4}, 1000)}) as server:
        assert server_slots(requests.Session(), server.url + "/v1") == 4
    with Answers({"/slots": json.dumps([{"id": i, "pad": " " * 100_000} for i in range(12)]).encode()},
                 endless=("/props",)) as server:
        started = time.monotonic()
        assert server_slots(requests.Session(), server.url + "/v1") is None  # /slots: longer than the bound too
        assert time.monotonic() - started < ENDLESS_FOR / 2


@pytest.mark.parametrize("size, context", [(MAX_PROBE_ANSWER + 1000, None), (MAX_PROBE_ANSWER - 1000, 32768)])
def test_a_model_list_read_for_contexts_is_read_up_to_its_bound(tmp_path, monkeypatch, size, context):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    listing = {"object": "list", "data": [{"id": "m", "object": "model", "max_model_len": 32768}]}
    with FakeOpenAI() as fake:
        pad = size - len(json.dumps({**listing, "pad": ""}))
        fake.add(Reply(json.loads(padded(listing, pad))), Reply(json.loads(padded(listing, pad))))
        door = build_proxy(load_settings({}, environ={"HOME": str(tmp_path), "FAST_PATH": "off",
                                                       "TARGET_BASE_URL": fake.base_url}))
        if context is None:
            with pytest.raises(ProxyError) as err:
                listed_models(door.gateway.routing, door.gateway.backend)
            assert err.value.code == "upstream_response_too_large"
        assert door.gateway.reading.context("m") == context
