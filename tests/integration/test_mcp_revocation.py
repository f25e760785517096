"""A revoked team key at /mcp, through the running app (Gunicorn, two workers, auth on, the SQLite key store) in
front of the strict fake stdio server (tests/fakes/fake_mcp_server.py): its requests are refused at the door
(401) within a second, and a tool call it has under way as an SSE stream, silent or reporting progress, ends
within about a second: the server is told the call is cancelled and the stream's last event is the call's
JSON-RPC error (-32041). Another key's stream goes on to its answer."""

from __future__ import annotations

import json
import re
import sys
import threading
import time

import pytest
import requests

from tests.integration.test_mcp_gateway import FAKE, INIT, JSON_HEADERS
from tests.integration.test_team_keys import create, keys
from tests.polling import poll
from tests.proxy_process import running_proxy

pytestmark = pytest.mark.timeout(90)

ADMIN = "admin-key-for-mcp-revocation-tests"
SERVERS = json.dumps({"fake": {"command": sys.executable, "args": [FAKE]}})
KEY_REFUSED = -32041
PROMPT = 1.0  # a revocation reaches every worker within this (the key cache's half second, and a margin)


@pytest.fixture(scope="module")
def guarded(module_fake, tmp_path_factory):
    db = tmp_path_factory.mktemp("mcp_revocation") / "keys.db"
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, WORKERS="2", ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                       KEYS_DB=str(db), MCP_SERVERS=SERVERS) as proxy:
        yield proxy, db


def headers(key, sid=None):
    return {**JSON_HEADERS, "Authorization": f"Bearer {key}", "Connection": "close",
            **({"Mcp-Session-Id": sid} if sid else {})}


def opened(proxy, key):
    r = requests.post(proxy.url + "/mcp", json=INIT, headers=headers(key), timeout=10)
    assert r.status_code == 200, r.text
    return r.headers["Mcp-Session-Id"]


def call(name, arguments, id=2, progress=None):
    params = {"name": name, "arguments": arguments, **({"_meta": {"progressToken": progress}} if progress else {})}
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}


def revoke(db, name):
    """Revoke the key; when the revocation is in the store (the command has returned)."""
    assert keys(db, "revoke", name).returncode == 0
    return time.monotonic()


class Stream:
    """A tool call answered as an SSE stream, sent and read on a thread (a silent stream's head comes with its
    first event): its messages, and when it ended."""

    def __init__(self, proxy, key, sid, message):
        self.messages: list[dict] = []
        self.ended: float | None = None
        self.reader = threading.Thread(target=self.read, args=(proxy.url + "/mcp", message, headers(key, sid)),
                                       daemon=True)
        self.reader.start()

    def read(self, url, message, sent_headers):
        try:
            response = requests.post(url, json=message, headers=sent_headers, stream=True,
                                     timeout=(10, 5))  # nothing read for 5 s: the stream was never ended
            assert response.status_code == 200, response.text
            assert response.headers["Content-Type"].startswith("text/event-stream")
            for line in response.iter_lines(chunk_size=None):
                if line.startswith(b"data: "):
                    self.messages.append(json.loads(line[6:]))
        finally:
            self.ended = time.monotonic()

    def answer(self):
        self.reader.join(timeout=30)
        assert self.messages and "method" not in self.messages[-1], self.messages[-3:]
        return self.messages[-1]


def cancellations(proxy):
    return len(re.findall(r"mcp server fake: fake_mcp_server: cancelled \d+", proxy.read_log()))


def test_a_revoked_keys_requests_are_refused_within_a_second(guarded):
    proxy, db = guarded
    key = create(db, "soon-revoked", "--tools", "fake__*")
    sid = opened(proxy, key)
    echo = call("fake__echo", {"text": "hi"})
    first = requests.post(proxy.url + "/mcp", json=echo, headers=headers(key, sid), timeout=10)
    assert first.status_code == 200 and first.json()["result"]["content"][0]["text"] == "hi"
    revoked = revoke(db, "soon-revoked")
    accepted_after: list[float] = []

    def refused():
        sent = time.monotonic()
        r = requests.post(proxy.url + "/mcp", json=echo, headers=headers(key, sid), timeout=10)
        if r.status_code == 200:
            accepted_after.append(sent - revoked)
        return r if r.status_code == 401 else None
    answer = poll(refused, timeout=10, interval=0.02)
    assert answer is not None and answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "revoked" in answer.text and key not in answer.text
    assert max(accepted_after, default=0) < PROMPT, accepted_after  # no request sent a second on was let through
    assert requests.post(proxy.url + "/mcp", json=INIT, headers=headers(key), timeout=10).status_code == 401
    assert requests.delete(proxy.url + "/mcp", headers=headers(key, sid), timeout=10).status_code == 401


def test_a_revoked_keys_silent_stream_ends_and_its_call_is_cancelled(guarded):
    proxy, db = guarded
    key = create(db, "silent", "--tools", "fake__slow")
    sid = opened(proxy, key)
    before = cancellations(proxy)
    stream = Stream(proxy, key, sid, call("fake__slow", {"seconds": 30}, progress="p1"))
    assert poll(lambda: "fake_mcp_server: slow call for 30 s" in proxy.read_log())  # it runs on the server
    revoked = revoke(db, "silent")
    answer = stream.answer()
    assert stream.ended is not None and stream.ended - revoked < PROMPT + 0.5, stream.ended - revoked
    assert answer["id"] == 2 and answer["error"]["code"] == KEY_REFUSED, answer
    assert "revoked" in answer["error"]["message"] and "cancelled" in answer["error"]["message"]
    assert poll(lambda: cancellations(proxy) > before)  # the server was told, as for a client's cancellation
    assert poll(lambda: "key:silent's key was refused during its call" in proxy.read_log())
    assert key not in proxy.read_log()


def test_a_revoked_keys_progress_stream_ends_while_another_keys_goes_on(guarded):
    proxy, db = guarded
    doomed, kept = create(db, "dripping", "--tools", "fake__drip"), create(db, "kept", "--tools", "fake__drip")
    drip = call("fake__drip", {"seconds": 30, "every": 0.05}, progress="tick")
    going = Stream(proxy, doomed, opened(proxy, doomed), drip)
    other = Stream(proxy, kept, opened(proxy, kept), call("fake__drip", {"seconds": 4, "every": 0.05}, progress="t"))
    assert poll(lambda: going.messages and other.messages)  # both relay progress
    revoked = revoke(db, "dripping")
    answer = going.answer()
    assert going.ended is not None and going.ended - revoked < PROMPT + 0.5, going.ended - revoked
    assert answer["error"]["code"] == KEY_REFUSED and answer["id"] == 2, answer
    assert all(m["method"] == "notifications/progress" for m in going.messages[:-1])
    assert other.answer()["result"]["content"][0]["text"] == "dripped"
