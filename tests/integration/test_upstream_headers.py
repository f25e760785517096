"""An upstream's response headers pass by an allow-list (issue 38, item 9), through the running app: on answers,
streams, errors, forwarded paths, native relays and routed calls, what clients act on arrives (rate limits,
Retry-After, the request id, a file's Content-Disposition), and nothing else: no Set-Cookie, Via, Server,
X-Backend-*, Alt-Svc, and no value naming a host or an address inside the upstream's network."""

from __future__ import annotations

import json

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.proxy_process import running_proxy

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
LEAKY = {
    "Set-Cookie": "session=upstream-secret; Path=/",
    "Via": "1.1 squid.corp.internal",
    "Server": "nginx (dbseven.corp.internal)",
    "X-Backend-Host": "dbseven.corp.internal",
    "X-Backend-Server": "10.9.9.9:8000",
    "Alt-Svc": 'h3=":443"; ma=86400',
    "X-Envoy-Upstream-Service-Time": "12",
    "openai-organization": "org-operator",
    "x-ratelimit-debug-host": "dbseven.corp.internal 10.9.9.9",
    "x-ratelimit-remaining-requests": "59",
    "x-request-id": "req-7 via dbseven.corp.internal",
    "openai-processing-ms": "321",
    "openai-version": "2020-10-01",
}
GONE = ("Set-Cookie", "Via", "X-Backend-Host", "X-Backend-Server", "Alt-Svc", "X-Envoy-Upstream-Service-Time",
        "openai-organization")


def assert_clean(r: requests.Response) -> None:
    for name in GONE:
        assert name not in r.headers, (name, r.headers)
    for name, value in r.headers.items():
        assert "dbseven" not in value and "10.9.9.9" not in value and "corp.internal" not in value, (name, value)
        assert "upstream-secret" not in value, (name, value)
    assert "nginx" not in r.headers.get("Server", "")


def assert_kept(r: requests.Response) -> None:
    assert r.headers["x-ratelimit-remaining-requests"] == "59"
    assert r.headers["x-ratelimit-debug-host"] == "[internal host] [internal host]"  # cleaned as the body is
    assert r.headers["X-Upstream-Request-ID"] == "req-7 via [internal host]"


def assert_informative(r: requests.Response) -> None:
    """OpenAI's own informative headers on an answer (an error relays only what clients back off by)."""
    assert r.headers["openai-processing-ms"] == "321" and r.headers["openai-version"] == "2020-10-01"


@pytest.fixture(scope="module", params=["single", "routed"])
def proxy(request):
    with FakeOpenAI() as fake:
        settings = {"TARGET_BASE_URL": fake.base_url} if request.param == "single" else {
            "MODELS": json.dumps([{"name": "m", "backend": "openai", "base_url": fake.base_url}])}
        with running_proxy(**settings, MAX_RETRIES="0") as p:
            yield fake, p, request.param


def test_a_whole_answer_and_a_stream_bring_only_allowed_headers(proxy):
    fake, p, kind = proxy
    fake.add(Reply(chat_completion("hello"), headers=LEAKY))
    r = requests.post(p.base_url + "/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 200, r.text
    assert_clean(r)
    assert_kept(r)
    assert_informative(r)
    assert r.headers["Content-Type"].startswith("application/json")

    fake.add(Stream(chat_chunks(["hel", "lo"]), headers={**LEAKY, "Content-Type": "text/event-stream"}))
    r = requests.post(p.base_url + "/chat/completions", json={**CHAT, "stream": True}, timeout=30)
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]"), r.text
    assert_clean(r)
    assert_kept(r)
    assert_informative(r)
    assert r.headers["Content-Type"].startswith("text/event-stream") and r.headers["X-Accel-Buffering"] == "no"


def test_an_upstream_id_naming_a_host_after_an_underscore_is_cleaned(proxy):
    fake, p, kind = proxy
    fake.add(Reply(chat_completion("hello"), headers={"x-request-id": "req_db7.corp.internal"}))
    r = requests.post(p.base_url + "/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["X-Upstream-Request-ID"] == "[internal host]"


@pytest.mark.parametrize("status", [401, 429, 500])
def test_an_error_brings_only_allowed_headers_cleaned(proxy, status):
    fake, p, kind = proxy
    fake.add(Reply({"error": {"message": "refused by dbseven.corp.internal", "type": "x"}}, status=status,
                   headers={**LEAKY, "Retry-After": "60",
                            "WWW-Authenticate": 'Bearer realm="http://10.9.9.9/auth", error="invalid_token"'}))
    r = requests.post(p.base_url + "/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == status, r.text
    assert "[internal host]" in r.json()["error"]["message"]
    assert_clean(r)
    assert_kept(r)
    assert r.headers["Retry-After"] == "60"
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="[internal url]", error="invalid_token"'


def test_a_forwarded_download_keeps_what_a_file_needs(proxy):
    """A forwarded route (a file's content) keeps its Content-Type, Content-Disposition, ETag and ranges: the
    decision in docs/hardening.md."""
    fake, p, kind = proxy
    if kind == "routed":
        pytest.skip("routing forwards no unknown path (docs/routing.md)")
    fake.add(Reply(b'{"custom_id": "1"}\n', headers={
        **LEAKY, "Content-Type": "application/octet-stream", "Content-Disposition": 'attachment; filename="out.jsonl"',
        "ETag": '"abc"', "Accept-Ranges": "bytes", "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    r = requests.get(p.url + "/v1/files/file-abc/content", timeout=30)
    assert r.status_code == 200 and r.content == b'{"custom_id": "1"}\n', r.text
    assert_clean(r)
    assert_kept(r)
    assert r.headers["Content-Disposition"] == 'attachment; filename="out.jsonl"'
    assert r.headers["Content-Type"] == "application/octet-stream" and r.headers["ETag"] == '"abc"'
    assert r.headers["Accept-Ranges"] == "bytes" and r.headers["Last-Modified"].startswith("Wed, 21 Oct 2015")


def test_a_natively_relayed_door_brings_only_allowed_headers():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, FRONTS_PASSTHROUGH="messages") as p:
        answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
                  "content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 1, "output_tokens": 1}}
        fake.add(Reply(answer, headers={**LEAKY, "request-id": "req_anthropic_1",
                                        "anthropic-ratelimit-requests-remaining": "9"}))
        r = requests.post(p.url + "/v1/messages", json={"model": "m", "max_tokens": 8,
                                                        "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        assert r.status_code == 200 and r.json()["content"][0]["text"] == "hi", r.text
        assert_clean(r)
        assert_kept(r)
        assert r.headers["request-id"] == "req_anthropic_1"
        assert r.headers["anthropic-ratelimit-requests-remaining"] == "9"
