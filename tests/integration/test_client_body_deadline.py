"""CLIENT_TIMEOUT counts from the body's first read, as documented (issue 38, item 4), through the running app: a
team key looked up in a slow Redis (replies trickling through a TCP middlebox) takes the proxy longer than the
client's allowance before it reads the body, and that time is the proxy's, not the client's. It was counted from
the request's arrival: the body, sent whole with the headers, got a 408 that blamed the client."""

from __future__ import annotations

import time

import pytest
import requests

from argoproxy.teamkeys.service import CACHE_SECONDS
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_shared_redis import ADMIN, create
from tests.middlebox import Middlebox
from tests.proxy_process import running_proxy
from tests.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def redis_box():
    server = RedisServer().start()
    box = Middlebox(server.port)
    yield server, box
    box.close()
    server.close()


def test_the_body_deadline_starts_at_its_first_read_not_at_the_requests_arrival(redis_box):
    server, box = redis_box
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true",
                                             API_KEY_SECRET=ADMIN, REDIS_URL=box.url, WORKERS="1",
                                             CLIENT_TIMEOUT="0.3") as proxy:
        key = create(server.url, "slowpoke")
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {key}"}
        assert requests.post(proxy.url + "/v1/chat/completions", json=body, headers=headers,
                             timeout=30).status_code == 200  # the key known (and cached) while Redis answers
        time.sleep(CACHE_SECONDS + 0.1)  # a TTL, not an event: the worker's record of the key is read again now
        box.byte_pause = 0.2
        box.set("slow")  # the look-up waits its deadline (0.5 s), then the cached record stands in for it
        started = time.monotonic()
        r = requests.post(proxy.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
        took = time.monotonic() - started
        assert took > 0.3, took  # the proxy's own wait was longer than CLIENT_TIMEOUT
        assert r.status_code == 200, r.text  # before: 408 client_timeout, for a body that had arrived at once
