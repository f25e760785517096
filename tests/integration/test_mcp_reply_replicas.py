"""Two replicas under Gunicorn sharing a real Redis (argoproxy/mcp/replicas.py): a client's response to its call's
server's request (sampling) POSTed to the replica not running the call still reaches the server, which the
replica running it gives it to; a response from another key's session never does. Keys in Redis; the stdio
server built with the official SDK (tests/fakes/asking_mcp_server.py)."""

from __future__ import annotations

import json
import sys

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_mcp_client_requests import ASKING, Call, headers, plain, raw_session, respond
from tests.integration.test_shared_redis import create
from tests.polling import poll
from tests.proxy_process import running_proxy
from tests.redis_server import RedisServer

ADMIN = "admin-key-for-reply-replica-tests"
SERVERS = json.dumps({"asking": {"command": sys.executable, "args": [ASKING], "timeout": 30}})


@pytest.fixture(scope="module")
def replicas():
    server = RedisServer().start()
    settings = {"REDIS_URL": server.url, "MCP_SERVERS": SERVERS, "ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN}
    try:
        bot, other = create(server.url, "bot"), create(server.url, "other")
        with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, **settings) as one, \
                running_proxy(TARGET_BASE_URL=fake.base_url, **settings) as two:
            session = raw_session(one, bot)  # the server started (a call waits for it no longer than its deadline)
            assert poll(lambda: plain(one, bot, session, "asking__plain") == "ready", timeout=60)
            yield one, two, bot, other, server.url
    finally:
        server.close()


def test_a_response_posted_to_another_replica_reaches_the_server_of_its_call(replicas):
    one, two, bot, other, redis_url = replicas
    mine, others = raw_session(one, bot), raw_session(two, other)
    call = Call(one, bot, mine, "asking__sample", {"prompt": "poem"})
    asked = call.request()
    assert asked["method"] == "sampling/createMessage" and asked["id"].startswith("cot_proxy-ask-")

    assert respond(two, other, mine, asked["id"], "from another key").status_code == 404  # not its session
    assert respond(two, bot, mine, 7, "an id the proxy never gave").status_code == 400  # told to no one

    def answered() -> bool:  # said again until heard: the first may come before the replica listens
        # Another key's session first: accepted (told to the replicas), and heard before the answer, given to no one.
        assert respond(two, other, others, asked["id"], "from another key's session").status_code == 202
        assert respond(two, bot, mine, asked["id"], "the answer").status_code == 202
        return call.done.wait(0.5)

    assert poll(answered, timeout=20), "the response never reached the replica running its call"
    answer = call.answer()
    assert answer["id"] == 1 and answer["result"]["content"][0]["text"] == "sampled: the answer", answer
    assert respond(two, bot, mine, asked["id"], "late").status_code == 202  # told; its call ended: none sent on
    for proxy in (one, two):
        log = proxy.read_log()
        assert redis_url not in log and "Traceback" not in log and bot not in log and other not in log


def test_a_response_or_cancellation_redis_will_not_carry_is_answered_lost_not_accepted(replicas):
    """Redis refusing what the replica not running the call publishes (here: PUBLISH denied by ACL, as when it is
    away): the client is answered 503 (-32001) saying its response or cancellation is lost, never 202 and silence;
    the replica logs one line for each."""
    import redis

    one, two, bot, _, redis_url = replicas
    mine = raw_session(one, bot)
    call = Call(one, bot, mine, "asking__sample", {"prompt": "ode"})
    asked = call.request()
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("default", commands=["-publish"], reset=False)
    try:
        lost = respond(two, bot, mine, asked["id"], "lost")
        assert lost.status_code == 503 and lost.json()["error"]["code"] == -32001, lost.text
        assert "Redis cannot be reached" in lost.json()["error"]["message"]
        cancel = requests.post(two.url + "/mcp", json={"jsonrpc": "2.0", "method": "notifications/cancelled",
                                                       "params": {"requestId": 1}},
                               headers=headers(bot, mine), timeout=30)
        assert cancel.status_code == 503 and cancel.json()["error"]["code"] == -32001, cancel.text
    finally:
        admin.acl_setuser("default", commands=["+publish"], reset=False)
    assert poll(lambda: two.read_log().count("could not be told of a") >= 2)
    assert poll(lambda: respond(two, bot, mine, asked["id"], "heard").status_code == 202 and call.done.wait(0.5),
                timeout=20)
    assert call.answer()["result"]["content"][0]["text"] == "sampled: heard"
