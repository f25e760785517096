"""Status lines as HTTP words them (`401 Unauthorized`, `429 Too Many Requests`), through the running app: the
proxy's own errors and an upstream's relayed status alike (Werkzeug wrote `401 UNAUTHORIZED`)."""

from __future__ import annotations

import http.client
import json

from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.proxy_process import running_proxy

CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def status_line(port: int, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.reason
    finally:
        conn.close()


def test_reason_phrases_are_the_standard_ones() -> None:
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, ENABLE_AUTH="true", API_KEY_SECRET="k1",
                                           MAX_RETRIES="0") as p:
        assert status_line(p.port, "POST", "/v1/chat/completions", CHAT) == (401, "Unauthorized")
        key = {"Authorization": "Bearer k1"}
        assert status_line(p.port, "POST", "/v1/chat/completions", "{", key) == (400, "Bad Request")
        assert status_line(p.port, "GET", "/v1/chat/completions", None, key) == (405, "Method Not Allowed")
        up.add(Reply({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=429,
                     headers={"Retry-After": "120"}))
        assert status_line(p.port, "POST", "/v1/chat/completions", CHAT, key) == (429, "Too Many Requests")
        assert status_line(p.port, "POST", "/v1/chat/completions", CHAT, key) == (200, "OK")
        assert status_line(p.port, "GET", "/health") == (200, "OK")
