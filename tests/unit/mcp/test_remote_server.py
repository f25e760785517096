"""A remote MCP server as the supervisor reaches it (argoproxy/mcp/remote_server.py), in front of the strict fake
remote server (tests/fakes/fake_mcp_http.py) on loopback: Streamable HTTP and the older HTTP+SSE, the session kept
and renewed, many clients' calls under ids of its own, progress, answers as JSON or streams (resumed), the server's
own requests refused; and what it must never do: follow a redirect, post to an endpoint elsewhere, let a bad or
slow answer harm other calls, or show its credentials."""

from __future__ import annotations

import logging
import threading

import pytest

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import jsonrpc, remote_server
from argoproxy.mcp.event_stream import EventReader, TooLarge
from argoproxy.mcp.remote_server import RemoteServer
from tests.fakes.fake_mcp_http import FakeRemote
from tests.polling import poll
from tests.proxy_process import free_port

TOKEN = "remote-token-0123456789-secret"


@pytest.fixture
def fake():
    with FakeRemote(token=TOKEN) as running:
        yield running


def reach(url, transport="", **kw):
    server = RemoteServer(McpServer("docs", url=url, bearer_token_env="DOCS_TOKEN", transport=transport, **kw),
                          environ={"DOCS_TOKEN": TOKEN})
    server.start()
    return server


@pytest.fixture
def docs(fake):
    server = reach(fake.url)
    assert server.ready.wait(10), server.last_error
    yield server
    server.stop()


def call(server, name, args=None, id=1, timeout=10.0, **kw):
    return server.call({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                        "params": {"name": name, "arguments": args or {}}}, timeout, **kw)


def text(answer):
    return answer["result"]["content"][0]["text"]


def test_a_session_is_opened_and_every_request_carries_it_its_revision_and_the_token(docs, fake):
    assert text(call(docs, "add", {"a": 2, "b": 40})) == "42"
    assert docs.status()["kind"] == "remote" and docs.status()["state"] == "ready"
    init, *later = [h for m, _, h in fake.seen if m == "POST"]
    assert "Mcp-Session-Id" not in init and later
    assert all(h["Mcp-Session-Id"] == docs.session_id and h["MCP-Protocol-Version"] == "2025-11-25" for h in later)
    assert fake.authorizations() == {f"Bearer {TOKEN}"} and fake.refused == []


def test_many_clients_calls_share_the_session_under_ids_of_its_own(docs):
    """Every caller sends id 1 at once; the fake refuses an id in flight, so each answer coming back under id 1
    with its own text is the remapping."""
    answers = {}

    def one(n):
        answers[n] = call(docs, "echo", {"text": f"call {n}"}, id=1)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert {n: (a["id"], text(a)) for n, a in answers.items()} == {n: (1, f"call {n}") for n in range(12)}


def test_an_answer_as_an_event_stream_and_its_progress_come_back_under_the_clients_token(docs):
    notes = []
    answer = docs.call({"jsonrpc": "2.0", "id": "p", "method": "tools/call",
                        "params": {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": 7}}},
                       10, on_note=notes.append)
    assert text(answer) == "3 steps" and answer["id"] == "p"
    assert [(n["params"]["progressToken"], n["params"]["progress"]) for n in notes] == [(7, 1), (7, 2), (7, 3)]


def test_every_answer_may_be_a_stream():
    with FakeRemote(sse_answers=True) as fake:
        server = reach(fake.url)
        try:
            assert server.ready.wait(10), server.last_error
            assert text(call(server, "echo", {"text": "streamed"})) == "streamed"
        finally:
            server.stop()


def test_a_stream_that_ends_before_its_answer_is_resumed_with_last_event_id(docs, fake):
    assert text(call(docs, "polled")) == "resumed"
    resumed = [h for m, _, h in fake.seen if m == "GET" and "Last-Event-ID" in h]  # not the session's own GET
    assert len(resumed) == 1 and resumed[0]["Last-Event-ID"] and resumed[0]["Accept"] == "text/event-stream"


def test_a_session_the_server_ended_is_opened_again_and_the_call_sent_once_more(docs, fake):
    first = docs.session_id
    assert text(call(docs, "forget")) == "forgotten"
    assert text(call(docs, "echo", {"text": "again"})) == "again"
    assert docs.session_id != first and docs.restarts == 0


def test_the_servers_own_requests_are_refused(docs):
    assert text(call(docs, "ask")) == "error -32601"


def test_garbage_an_oversized_answer_and_a_hang_end_their_own_call_only(docs, monkeypatch, caplog):
    monkeypatch.setattr(remote_server, "MAX_MESSAGE", 100_000)
    with caplog.at_level(logging.WARNING, logger="cot_proxy"):
        garbage = call(docs, "garbage", id="g")
        huge = call(docs, "huge", {"bytes": 200_000}, id="h")
    assert garbage["id"] == "g" and garbage["error"]["code"] == jsonrpc.INTERNAL_ERROR
    assert huge["error"]["code"] == jsonrpc.INTERNAL_ERROR and "more than 100000 bytes" in huge["error"]["message"]
    assert "not JSON" in caplog.text
    hung = call(docs, "slow", {"seconds": 5}, id="s", timeout=0.3)
    assert hung["id"] == "s" and hung["error"]["code"] == jsonrpc.REQUEST_TIMEOUT
    assert text(call(docs, "echo", {"text": "still here"})) == "still here"
    assert docs.state == "ready" and docs.restarts == 0


def test_the_older_http_sse_transport_when_asked_or_when_initialize_is_refused():
    with FakeRemote(mode="sse", token=TOKEN) as fake:
        for url, transport in ((fake.url, "sse"), (fake.url, "")):
            server = reach(url, transport)
            try:
                assert server.ready.wait(10), server.last_error
                assert server.using == "sse" and text(call(server, "echo", {"text": "old"})) == "old"
            finally:
                server.stop()
        posts = [h for m, p, h in fake.seen if m == "POST" and p.startswith("/messages")]
        assert posts and all(h["Authorization"] == f"Bearer {TOKEN}" for h in posts)
        assert [m for m, p, _ in fake.seen if p == "/sse"] == ["GET", "POST", "GET"]  # the second: POST, refused


def test_an_endpoint_on_another_origin_is_refused_and_logged(caplog):
    with FakeRemote(host="127.0.0.2") as elsewhere, \
            FakeRemote(mode="sse", token=TOKEN, endpoint=elsewhere.url.replace("/mcp", "/messages")) as fake:
        with caplog.at_level(logging.WARNING, logger="cot_proxy"):
            server = reach(fake.url, "sse")
            try:
                assert poll(lambda: "another origin" in server.last_error, timeout=10)
                assert server.state != "ready"
            finally:
                server.stop()
        assert elsewhere.seen == []
        assert "its endpoint event names another origin (http://127.0.0.2:" in caplog.text


def test_a_redirect_is_not_followed():
    with FakeRemote(host="127.0.0.2", token=TOKEN) as elsewhere, FakeRemote(redirect=elsewhere.url) as fake:
        server = reach(fake.url)
        try:
            assert poll(lambda: "redirect" in server.last_error, timeout=10)
            assert "does not follow redirects" in server.last_error and server.state != "ready"
        finally:
            server.stop()
        assert elsewhere.seen == [] and len(fake.seen) >= 1


def test_a_server_that_is_down_is_restarting_until_it_answers():
    port = free_port()
    server = reach(f"http://127.0.0.1:{port}/mcp")
    try:
        assert poll(lambda: server.state == "restarting" and "could not connect" in server.last_error, timeout=10)
        answer = call(server, "echo", {"text": "x"}, timeout=0.2)
        assert answer["error"]["code"] == jsonrpc.SERVER_UNAVAILABLE
        with FakeRemote(token=TOKEN, port=port):
            assert server.ready.wait(20), server.last_error
            assert text(call(server, "echo", {"text": "up"})) == "up" and server.restarts >= 1
    finally:
        server.stop()


def test_credentials_never_reach_an_error_or_the_log(caplog):
    """A refused token, and a server down whose URL holds a token in its query: the errors name the origin."""
    with FakeRemote(token="another-token-entirely") as fake, caplog.at_level(logging.INFO, logger="cot_proxy"):
        refused = RemoteServer(McpServer("docs", url=fake.url + "?key=url-secret-987654", headers=(("X-Team", "hdr-secret-4567"),),
                                         bearer_token_env="DOCS_TOKEN"), environ={"DOCS_TOKEN": TOKEN})
        refused.start()
        try:
            assert poll(lambda: "401" in refused.last_error, timeout=10)
            answer = call(refused, "echo", timeout=0.2)
        finally:
            refused.stop()
        assert fake.seen[0][2]["X-Team"] == "hdr-secret-4567"
    said = refused.last_error + str(answer) + caplog.text
    assert "refused the credentials" in refused.last_error
    for secret in (TOKEN, "url-secret-987654", "hdr-secret-4567"):
        assert secret not in said


def test_a_server_that_says_the_credentials_back_shows_them_to_no_client():
    with FakeRemote(token=TOKEN) as fake:
        server = reach(fake.url, headers=(("X-Team", "hdr-secret-4567"),))
        try:
            assert server.ready.wait(10), server.last_error
            said = text(call(server, "headers"))
        finally:
            server.stop()
    assert TOKEN not in said and "hdr-secret-4567" not in said and "Bearer [redacted]" in said


def test_the_environments_http_proxy_is_used_and_no_proxy_honoured(monkeypatch):
    """The fake answers as the HTTP proxy too: a request through a proxy names the whole URL."""
    with FakeRemote(token=TOKEN) as proxy:
        for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ALL_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        server = reach("http://mcp.example.invalid/mcp")
        try:
            assert server.ready.wait(10), server.last_error
            assert text(call(server, "echo", {"text": "via the proxy"})) == "via the proxy"
        finally:
            server.stop()
        assert {p for _, p, _ in proxy.seen} == {"http://mcp.example.invalid/mcp"}
        monkeypatch.setenv("NO_PROXY", "mcp.example.invalid")
        direct = reach("http://mcp.example.invalid/mcp")
        try:
            assert poll(lambda: "could not connect to http://mcp.example.invalid" in direct.last_error, timeout=10)
        finally:
            direct.stop()


def test_stopping_ends_the_session_at_the_server(fake):
    server = reach(fake.url)
    assert server.ready.wait(10)
    # its stream of the server's own messages open first: a GET started as the DELETE went could land after it
    assert poll(lambda: any(method == "GET" for method, _, _ in fake.seen), timeout=10)
    server.stop()
    assert fake.sessions == {} and fake.seen[-1][0] == "DELETE"


def test_the_event_reader_keeps_to_its_bound_and_the_fields():
    reader = EventReader(100)
    events = list(reader.events([b"id: 1\nretry: 250\ndata: \n\n: comment\nevent: endpoint\r\ndata: /x", b"?s=1\n\n",
                                 b"data: a\ndata: b\n\n"]))
    assert [(e.type, e.data) for e in events] == [("endpoint", b"/x?s=1"), ("message", b"a\nb")]
    assert (reader.last_id, reader.retry_ms) == ("1", 250)
    with pytest.raises(TooLarge):
        list(EventReader(100).events([b"data: " + b"x" * 60, b"x" * 60]))
    with pytest.raises(TooLarge):
        list(EventReader(100).events([b"data: " + b"x" * 60 + b"\n", b"data: " + b"x" * 60 + b"\n"]))
