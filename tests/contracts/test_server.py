"""The server side's contract, for the real app under Gunicorn with FAST_PATH=on and with FAST_PATH=off (each
seam the switch changes there: the worker's sockets, response writing, request body reading, the upstream's
read deadline under the worker, and the tracer's span batching): an answer leaves with the framing it
announces (its Content-Length, or chunks to the last one), head-only answers are complete, a client's
connection is kept alive between requests; a request body reaches the upstream byte for byte whatever its
framing, a request sent behind it on the same connection is answered, one shorter than its length is refused;
a client that leaves while the upstream is silent frees the upstream; an upstream that stalls mid-stream is
cut at the read deadline; and each request's spans reach the collector with their attributes."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Iterator

import pytest

from tests.contracts.conftest import MODES
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks
from tests.fakes.otlp_receiver import OtlpReceiver, Span
from tests.polling import poll
from tests.proxy_process import ProxyProcess, running_proxy

pytestmark = pytest.mark.timeout(90)
READ_TIMEOUT = 10  # TIMEOUT: the upstream's silence the worker waits out (a stall holds its stream far longer)
STALL = 60


class Served:
    def __init__(self, mode: str, upstream: FakeOpenAI, receiver: OtlpReceiver, proxy: ProxyProcess) -> None:
        self.mode, self.upstream, self.receiver, self.proxy = mode, upstream, receiver, proxy


@pytest.fixture(scope="module", params=MODES, ids=lambda mode: f"FAST_PATH-{mode}")
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The app in each mode, traced, in front of a fake OpenAI server."""
    with FakeOpenAI(says="vLLM") as upstream, OtlpReceiver() as receiver, running_proxy(
            FAST_PATH=request.param, TARGET_BASE_URL=upstream.base_url, TRACING="on",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50",
            TIMEOUT=str(READ_TIMEOUT)) as proxy:
        yield Served(request.param, upstream, receiver, proxy)


@pytest.fixture
def app(served: Served) -> Served:
    served.upstream.reset()
    served.receiver.clear()
    return served


def chat_request(content: str = "hi", stream: bool = False, extra: bytes = b"") -> bytes:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": content}], "stream": stream}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


class Reader:
    """HTTP/1.1 answers read off a client socket, their framing checked strictly."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def _more(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError(f"the connection closed; had {self.buf[:300]!r}")
        self.buf += data

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def answer(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        """(status, headers in lower case, body) of the next answer, read to the end its framing says."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if head_only or status in (204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self._line().split(b";")[0], 16):
                body += self._take(size)
                assert self._take(2) == b"\r\n", "a chunk not followed by CRLF"
            assert self._line() == b"", "no CRLF after the last chunk"
            return status, headers, body
        return status, headers, self._take(int(headers["content-length"]))


def connect(app: Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", app.proxy.port), timeout=20)


# ---- response writing


def test_a_whole_answer_is_written_as_its_length_says_and_the_connection_kept(app):
    with connect(app) as s:
        reader = Reader(s)
        for content in ("one", "two"):
            app.upstream.add(Reply({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                                 "finish_reason": "stop"}]}))
            s.sendall(chat_request())
            status, headers, body = reader.answer()
            assert status == 200 and headers["content-type"].startswith("application/json")
            assert json.loads(body)["choices"][0]["message"]["content"] == content
        assert reader.buf == b""  # nothing past the second answer


def test_a_stream_is_written_in_chunks_to_its_last(app):
    pieces = [f"piece {i} " * 20 for i in range(12)]
    app.upstream.add(Stream(chat_chunks(pieces) + ["[DONE]"], split=True))
    with connect(app) as s:
        s.sendall(chat_request(stream=True))
        status, headers, body = Reader(s).answer()
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in body.decode().split("\n\n") if line.startswith("data: {")]
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]) == "".join(pieces)
    assert body.endswith(b"data: [DONE]\n\n")


def test_head_only_answers_are_complete(app):
    app.upstream.add(Reply(b"", status=204), Reply({"x": 1}, headers={"ETag": '"v1"'}))
    with connect(app) as s:
        reader = Reader(s)
        s.sendall(b"DELETE /v1/files/f1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert reader.answer()[0] == 204
        s.sendall(b"HEAD /v1/files HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, headers, _ = reader.answer(head_only=True)
        assert status == 200 and headers["etag"] == '"v1"'
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")  # the connection still serves
        assert reader.answer()[0] == 200


# ---- request body reading


def test_a_long_body_reaches_the_upstream_byte_for_byte(app):
    content = "".join(chr(0x20 + i % 90) for i in range(3_000_000))
    with connect(app) as s:
        s.sendall(chat_request(content))
        assert Reader(s).answer()[0] == 200
    assert app.upstream.received[-1].json()["messages"][0]["content"] == content


def test_a_chunked_request_body_reaches_the_upstream_whole(app):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 70_000}]}).encode()
    framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8000]), body[i:i + 8000]) for i in range(0, len(body), 8000))
    with connect(app) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n")
        assert Reader(s).answer()[0] == 200
    assert app.upstream.received[-1].json()["messages"][0]["content"] == "x" * 70_000


@pytest.mark.parametrize("first", ["first", "first " * 5000], ids=["short body", "long body"])
def test_a_request_sent_behind_a_body_is_answered(app, first):
    with connect(app) as s:
        s.sendall(chat_request(first) + chat_request("second"))
        reader = Reader(s)
        assert [reader.answer()[0], reader.answer()[0]] == [200, 200]
    assert [r.json()["messages"][0]["content"] for r in app.upstream.received] == [first, "second"]


def test_a_body_shorter_than_its_length_is_refused_and_not_forwarded(app):
    with connect(app) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"model\": \"m\"}")
        s.shutdown(socket.SHUT_WR)
        status, _, body = Reader(s).answer()
    assert status == 400 and "Content-Length" in json.loads(body)["error"]["message"]
    assert app.upstream.received == []


# ---- the worker's sockets


def test_a_client_that_leaves_while_the_upstream_is_silent_frees_it(app):
    app.upstream.add(Stream(chat_chunks(["too late"]), held=30))
    s = connect(app)
    s.sendall(chat_request(stream=True))
    assert poll(lambda: app.upstream.holding == 1, timeout=20), "the upstream was never asked"
    s.close()
    assert poll(lambda: app.upstream.left, timeout=20), "the upstream never saw its request given up"


def test_an_upstream_that_stalls_mid_stream_is_cut_at_the_read_deadline(app):
    app.upstream.add(Stream(chat_chunks(["a", "b"]), pause_at={2: STALL}))
    with connect(app) as s:
        s.sendall(chat_request(stream=True))
        status, _, body = Reader(s).answer()  # ended, and framed to its last chunk, well before the stall does
    events = [json.loads(line[6:]) for line in body.decode().split("\n\n") if line.startswith("data: {")]
    assert status == 200 and [e["choices"][0]["delta"].get("content") for e in events[:2]] == ["", "a"]
    assert events[-1]["error"]["code"] == "upstream_timeout" and "stalled" in events[-1]["error"]["message"]


# ---- span batching


def test_each_requests_spans_reach_the_collector_with_their_attributes(app):
    traces = {stream: uuid.uuid4().hex for stream in (False, True)}
    with connect(app) as s:
        reader = Reader(s)
        for stream, trace in traces.items():
            s.sendall(chat_request(stream=stream, extra=b"traceparent: 00-%s-b7ad6b7169203331-01\r\n" % trace.encode()))
            assert reader.answer()[0] == 200

    def of(spans: list[Span], trace: str, kind: str) -> list[Span]:
        return [s for s in spans if s.kind == kind and s.trace_id == trace]

    spans = app.receiver.wait(lambda spans: all(len(of(spans, t, "SERVER")) == len(of(spans, t, "CLIENT")) == 1
                                                for t in traces.values()))
    for trace in traces.values():
        [server], [client] = of(spans, trace, "SERVER"), of(spans, trace, "CLIENT")
        assert (server.name, server.parent_id, client.parent_id) == ("chat m", "b7ad6b7169203331", server.span_id)
        assert server.attributes["http.response.status_code"] == 200
        assert server.attributes["gen_ai.request.model"] == "m"
        assert server.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert client.attributes["server.port"] == app.upstream.port
        assert server.start_ns <= client.start_ns <= client.end_ns <= server.end_ns
