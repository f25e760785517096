"""Retries bounded per client request (issue 38, item 8), through the running app and fake upstreams: one
total of upstream calls (MAX_UPSTREAM_CALLS, default 3) whatever the routing chain, each fallback model asked
at least once while calls are left, and a 4xx (429 included) never asked again whatever `x-should-retry` says."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.proxy_process import running_proxy

pytestmark = pytest.mark.timeout(120)

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def failing(status: int, **headers: str) -> Reply:
    return Reply({"error": {"message": f"failed {status}", "type": "server_error"}}, status=status,
                 headers={"Retry-After": "0", **headers})


def chat(proxy, model: str) -> requests.Response:
    return requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": model}, timeout=60)


@pytest.fixture
def fakes():
    with FakeOpenAI() as a, FakeOpenAI() as b, FakeOpenAI() as c:
        yield a, b, c


def chain_of_three(a: FakeOpenAI, b: FakeOpenAI, c: FakeOpenAI) -> dict[str, str]:
    entries = [{"name": n, "backend": "openai", "base_url": f.base_url} for n, f in (("a", a), ("b", b), ("c", c))]
    return {"MODELS": json.dumps(entries), "FALLBACKS": '{"a": ["b", "c"]}', "COOLDOWN_SECONDS": "0"}


@pytest.mark.parametrize("answer", [failing(503), failing(500, **{"x-should-retry": "true"})],
                         ids=["503", "500-should-retry"])
def test_a_chain_that_fails_everywhere_costs_three_calls_one_per_model(fakes, answer):
    """a -> b -> c, each a pool of one failing: 9 upstream calls before (3 per model, the per-URL retries of a
    pool of one); now one each, and the answer tells the SDKs not to multiply them."""
    a, b, c = fakes
    for fake in fakes:
        fake.add(*[answer] * 9)
    with running_proxy(**chain_of_three(a, b, c), MAX_RETRIES="2") as proxy:
        r = chat(proxy, "a")
        assert r.status_code == answer.status, r.text
        assert [len(f.received) for f in fakes] == [1, 1, 1]
        assert r.headers["x-should-retry"] == "false" and r.headers["X-Served-Model"] == "c"

        # The openai SDK retrying on its own (max_retries=2) does not turn it into 9 again.
        for fake in fakes:
            fake.received.clear()
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="sk-client", max_retries=2, timeout=60)
        with pytest.raises(openai.APIStatusError):
            sdk.chat.completions.create(model="a", messages=CHAT["messages"])
        assert sum(len(f.received) for f in fakes) == 3


def test_a_pool_and_a_fallback_share_the_total(fakes):
    """A pool of two then a fallback: both deployments and the fallback once each (3), never the fallback's
    own retries on top."""
    a, b, c = fakes
    entries = [{"name": "m", "backend": "openai", "base_url": a.base_url},
               {"name": "m", "backend": "openai", "base_url": b.base_url},
               {"name": "f", "backend": "openai", "base_url": c.base_url}]
    for fake in fakes:
        fake.add(*[failing(503)] * 9)
    with running_proxy(MODELS=json.dumps(entries), FALLBACKS='{"m": ["f"]}', COOLDOWN_SECONDS="0",
                       MAX_RETRIES="5") as proxy:
        assert chat(proxy, "m").status_code == 503
        assert [len(f.received) for f in fakes] == [1, 1, 1]


def test_the_total_is_a_setting(fakes):
    a, _, _ = fakes
    a.add(*[failing(503)] * 9)
    with running_proxy(TARGET_BASE_URL=a.base_url, MAX_RETRIES="10", MAX_UPSTREAM_CALLS="5") as proxy:
        r = chat(proxy, "m")
        assert r.status_code == 503 and len(a.received) == 5 and r.headers["x-should-retry"] == "false"
    a.reset()
    a.add(*[failing(503)] * 9)
    with running_proxy(**chain_of_three(*fakes), MAX_UPSTREAM_CALLS="1") as proxy:
        assert chat(proxy, "a").status_code == 503
        assert [len(f.received) for f in fakes] == [1, 0, 0]


@pytest.mark.parametrize("status", [400, 409, 422])
def test_a_4xx_is_never_asked_again_whatever_x_should_retry_says(fakes, status):
    a, b, c = fakes
    refused = Reply({"error": {"message": "refused", "type": "invalid_request_error"}}, status=status,
                    headers={"x-should-retry": "true"})
    a.add(*[refused] * 3)
    with running_proxy(TARGET_BASE_URL=a.base_url, MAX_RETRIES="2") as proxy:
        r = chat(proxy, "m")
        assert r.status_code == status and len(a.received) == 1
        assert r.headers.get("x-should-retry") == "true"  # not retried by the proxy: the client's own call
    a.reset()
    a.add(*[refused] * 3)
    with running_proxy(**chain_of_three(a, b, c)) as proxy:  # routed: not another deployment or fallback either
        assert chat(proxy, "a").status_code == status
        assert [len(f.received) for f in fakes] == [1, 0, 0]
