"""Two replicas under Gunicorn sharing a real Redis (argoproxy/mcp/replicas.py): a client's notifications/cancelled
that lands on the replica not running its call still cancels it on its server; a per_session server's session
used on both replicas has a process on each, and a DELETE on one ends both. The strict stdio fake as the server."""

from __future__ import annotations

import json
import sys
import threading

import psutil
import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_mcp_gateway import FAKE, INIT, JSON_HEADERS
from tests.polling import poll
from tests.proxy_process import running_proxy
from tests.redis_server import RedisServer

VERSION = {"MCP-Protocol-Version": "2025-11-25"}
SERVERS = json.dumps({"fake": {"command": sys.executable, "args": [FAKE]},
                      "mine": {"command": sys.executable, "args": [FAKE], "per_session": True}})


@pytest.fixture(scope="module")
def replicas():
    server = RedisServer().start()
    settings = {"REDIS_URL": server.url, "MCP_SERVERS": SERVERS}
    try:
        with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, **settings) as one, \
                running_proxy(TARGET_BASE_URL=fake.base_url, **settings) as two:
            yield one, two, server.url
    finally:
        server.close()


def opened(proxy) -> str:
    r = requests.post(proxy.url + "/mcp", json=INIT, headers=JSON_HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["Mcp-Session-Id"]


def post(proxy, session: str, body: dict) -> requests.Response:
    return requests.post(proxy.url + "/mcp", json=body, timeout=60,
                         headers={**JSON_HEADERS, **VERSION, "Mcp-Session-Id": session})


def test_a_cancellation_on_another_replica_cancels_the_call_where_it_runs(replicas):
    one, two, redis_url = replicas
    session = opened(one)
    answers: list[requests.Response] = []
    slow = {"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {"name": "fake__slow",
                                                                          "arguments": {"seconds": 40}}}
    caller = threading.Thread(target=lambda: answers.append(post(one, session, slow)), daemon=True)
    caller.start()
    assert poll(lambda: "slow call for 40" in one.read_log(), timeout=20), "the call never reached its server"
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41}}

    def cancelled() -> bool:  # said again until heard: the first may come before the replica listens
        assert post(two, session, cancel).status_code == 202
        caller.join(0.5)
        return bool(answers)

    assert poll(cancelled, timeout=20), "the call ran on: its cancellation never reached its replica"
    assert answers[0].json()["error"]["code"] == -32800
    assert poll(lambda: "fake_mcp_server: cancelled" in one.read_log())
    assert "fake_mcp_server: cancelled" not in two.read_log()
    for proxy in (one, two):
        assert redis_url not in proxy.read_log() and "Traceback" not in proxy.read_log()


def test_a_per_session_servers_session_has_a_process_on_each_replica_and_a_delete_ends_both(replicas):
    one, two, _ = replicas
    session = opened(one)
    whoami = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "mine__whoami", "arguments": {}}}

    def pid(proxy) -> int:
        r = post(proxy, session, whoami)
        assert r.status_code == 200 and "result" in r.json(), r.text
        return json.loads(r.json()["result"]["content"][0]["text"])["pid"]

    here, there = pid(one), pid(two)
    assert here != there and pid(one) == here and pid(two) == there  # its own process on each replica
    gone = requests.delete(two.url + "/mcp", headers={**VERSION, "Mcp-Session-Id": session}, timeout=30)
    assert gone.status_code == 204
    assert poll(lambda: not psutil.pid_exists(there) and not psutil.pid_exists(here), timeout=15), \
        "a process of the ended session outlived it"
    assert post(one, session, whoami).status_code == 404
