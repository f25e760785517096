"""Request ids through the running app (issue 55, item 9): the client's X-Request-ID is echoed in X-Request-ID and
kept beside the proxy's own id (`client_request_id`), never taken as it; the proxy's own id comes back in
X-Cot-Proxy-Request-ID and is the request's id in the journal, the DEBUG line, the error object and the span; the
upstream's id reaches the client cleaned, an internal address glued to a word included."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply, chat_completion
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.polling import poll
from tests.proxy_process import running_proxy

pytestmark = pytest.mark.timeout(120)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
CLIENT_ID = "another-clients-request-7"


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    logs = tmp_path_factory.mktemp("ids")
    with OtlpReceiver() as receiver, FakeOpenAI() as fake, running_proxy(
            TARGET_BASE_URL=fake.base_url, MAX_RETRIES="0", LOG_DIR=str(logs), DEBUG="true", TRACING="on",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50") as proxy:
        yield fake, proxy, receiver, logs


def journal_records(logs: Path) -> list[dict]:
    return [json.loads(line) for f in logs.rglob("client*.jsonl") for line in f.read_text().splitlines() if line]


def test_the_client_id_is_echoed_and_the_proxys_own_names_the_request(traced):
    fake, proxy, receiver, logs = traced
    fake.add(Reply(chat_completion("hello")))
    r = requests.post(proxy.base_url + "/chat/completions", json=CHAT, timeout=30,
                      headers={"X-Request-ID": CLIENT_ID, "X-Session-Id": "agent-session-9"})
    assert r.status_code == 200, r.text
    own = r.headers["X-Cot-Proxy-Request-ID"]
    assert r.headers["X-Request-ID"] == CLIENT_ID and re.fullmatch(r"[0-9a-f]{32}", own), r.headers

    record = poll(lambda: next((e for e in journal_records(logs) if e.get("request_id") == own), None))
    assert record["client_request_id"] == CLIENT_ID
    assert not [e for e in journal_records(logs) if e.get("request_id") == CLIENT_ID]

    line = poll(lambda: next((ln for ln in (logs / "log.log").read_text().splitlines() if f"id={own}" in ln), ""))
    assert f"client_id={CLIENT_ID}" in line and f"id={CLIENT_ID}" not in line.replace("client_id=", ""), line

    spans = receiver.wait(lambda spans: [s for s in spans if s.kind == "SERVER"
                                         and s.attributes.get("cot_proxy.request_id") == own])
    [server] = [s for s in spans if s.kind == "SERVER" and s.attributes.get("cot_proxy.request_id") == own]
    assert server.attributes["cot_proxy.client_request_id"] == CLIENT_ID
    assert server.attributes["session.id"] == record["session"] == "agent-session-9"  # the agent's session
    assert "agent-session-9" not in requests.get(proxy.url + "/metrics", timeout=30).text  # never a metric label


def test_an_error_object_names_the_proxys_id_and_keeps_the_clients_beside_it(traced):
    fake, proxy, receiver, logs = traced
    r = requests.post(proxy.base_url + "/chat/completions", data=b'{"model": "m", "messages": [',
                      headers={"Content-Type": "application/json", "X-Request-ID": CLIENT_ID}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["request_id"] == r.headers["X-Cot-Proxy-Request-ID"] != CLIENT_ID
    assert err["client_request_id"] == CLIENT_ID == r.headers["X-Request-ID"]


def test_without_a_client_id_both_headers_carry_the_proxys_own(traced):
    fake, proxy, receiver, logs = traced
    r = requests.post(proxy.base_url + "/chat/completions", data=b"[", timeout=30,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["request_id"] == r.headers["X-Request-ID"] == r.headers["X-Cot-Proxy-Request-ID"]
    assert "client_request_id" not in r.json()["error"]


def test_an_insane_client_id_is_not_echoed(traced):
    fake, proxy, receiver, logs = traced
    fake.add(Reply(chat_completion("hello")))
    r = requests.post(proxy.base_url + "/chat/completions", json=CHAT, headers={"X-Request-ID": "x" * 500},
                      timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-ID"] == r.headers["X-Cot-Proxy-Request-ID"]


def test_a_client_id_cannot_add_fields_to_the_debug_line(traced):
    """`X-Request-ID: x id=<another request's id> status=200` stays one field (client_id, quoted): read as logfmt,
    the line's `id` is the proxy's own and its status the real one."""
    fake, proxy, receiver, logs = traced
    fake.add(Reply(chat_completion("hello")))
    forged = 'x id=0123456789abcdef0123456789abcdef status=500 q"uote'
    r = requests.post(proxy.base_url + "/chat/completions", json=CHAT, headers={"X-Request-ID": forged}, timeout=30)
    assert r.status_code == 200, r.text
    own = r.headers["X-Cot-Proxy-Request-ID"]
    line = poll(lambda: next((ln for ln in (logs / "log.log").read_text().splitlines() if f"id={own}" in ln), ""))
    fields = [token.split("=", 1) for token in shlex.split(line.split(" POST ", 1)[1]) if "=" in token]
    assert [v for k, v in fields if k == "id"] == [own], line
    assert [v for k, v in fields if k == "status"] == ["200"] and ["client_id", forged] in fields, line


@pytest.mark.parametrize("status", [200, 500])
def test_an_internal_address_glued_to_the_upstreams_id_is_cleaned(traced, status):
    fake, proxy, receiver, logs = traced
    answer = chat_completion("hello") if status == 200 else {"error": {"message": "boom", "type": "server_error"}}
    fake.add(Reply(answer, status=status, headers={"x-request-id": "req_internal_10.1.1.1"}))
    r = requests.post(proxy.base_url + "/chat/completions", json=CHAT, headers={"X-Request-ID": CLIENT_ID},
                      timeout=30)
    assert r.status_code == status, r.text
    assert r.headers["X-Upstream-Request-ID"] == "req_internal_[internal host]"
    assert r.headers["X-Request-ID"] == CLIENT_ID
    assert "10.1.1.1" not in str(r.headers) and "10.1.1.1" not in r.text
