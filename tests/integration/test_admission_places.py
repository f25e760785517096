"""The admission queue is fair in space (issue 55): through the real proxy under Gunicorn (two gevent workers), in
front of a fake llama.cpp server whose answers a test holds (tests/fakes/fake_slots.py). One client fills every
place of the queue; another's request then takes the place of the first client's newest request (answered 429
`queue_full` with Retry-After, naming its places and its share) and is seated next. With auth off, a flow is the
client's address: the two clients are 127.0.0.2 and 127.0.0.3 (the OpenAI SDK over httpx bound to each)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import requests

from tests.fakes.fake_slots import FakeSlots
from tests.polling import poll
from tests.proxy_process import running_proxy

HEAVY, LIGHT = "127.0.0.2", "127.0.0.3"


def client(proxy, address: str) -> openai.OpenAI:
    transport = httpx.HTTPTransport(local_address=address)
    return openai.OpenAI(base_url=proxy.base_url, api_key="sk-any", max_retries=0, timeout=60,
                         http_client=httpx.Client(transport=transport, timeout=60))


def ask(sdk: openai.OpenAI, text: str) -> str:
    """The answer's text, or the refusal's (status, code, Retry-After, message)."""
    try:
        sdk.chat.completions.create(model="local", messages=[{"role": "user", "content": text}])
        return "200"
    except openai.APIStatusError as err:
        body = err.body if isinstance(err.body, dict) else {}
        return f"{err.status_code} {body.get('code')} {err.response.headers.get('Retry-After')} {body.get('message')}"


def waiting(proxy) -> float:
    text = requests.get(proxy.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("cot_proxy_admission_waiting"))


def test_a_light_client_takes_the_newest_place_of_the_client_holding_the_queue_and_is_seated_next():
    with FakeSlots(slots=2, gated=True) as server:
        entry = [{"name": "local", "backend": "openai", "max_concurrency": 2, "base_url": server.base_url}]
        with running_proxy(MODELS=json.dumps(entry), ADMISSION_QUEUE_SIZE="4", WORKERS="2") as proxy, \
                ThreadPoolExecutor(12) as pool:
            heavy, light = client(proxy, HEAVY), client(proxy, LIGHT)
            answers = {}
            for i in range(6):  # 2 seated, then 4 waiting: every place of the queue, one after the other
                answers[f"heavy {i}"] = pool.submit(ask, heavy, f"heavy {i}")
                assert poll(lambda: server.running == min(i + 1, 2) and waiting(proxy) == max(0, i - 1))

            answers["light 0"] = pool.submit(ask, light, "light 0")
            ousted = answers["heavy 5"].result(timeout=30)  # the newest of the client furthest over its share
            assert ousted.startswith("429 queue_full 1 "), ousted
            assert "this key held 4 of the 4 places, past its share of 2" in ousted, ousted
            assert poll(lambda: waiting(proxy) == 4), "the light request holds the place it took"

            # the light client holds 1 place of its share of 2: its next request takes another of the heavy's
            answers["light 1"] = pool.submit(ask, light, "light 1")
            assert answers["heavy 4"].result(timeout=30).startswith("429 queue_full"), "the heavy's newest again"
            # each holds its share now: neither takes a place from the other
            for sdk, name in ((light, "light 2"), (heavy, "heavy 6")):
                refused = ask(sdk, name)
                assert refused.startswith("429 queue_full 1 "), refused
                assert "this key holds 2 of the 4 places, its share being 2" in refused, refused

            server.let_go(1)  # a heavy request ends: its slot goes to the light client first, in fair order
            assert poll(lambda: len(server.served) == 3)
            assert server.served[2]["messages"][0]["content"] == "light 0"
            for turn in (4, 5):  # one slot at a time: the light client's second request before the heavy's last
                server.let_go(1)
                assert poll(lambda: len(server.served) == turn)
            assert "light 1" in [body["messages"][0]["content"] for body in server.served[3:]]
            server.let_go(10)
            for name in ("heavy 0", "heavy 1", "heavy 2", "heavy 3", "light 0", "light 1"):
                assert answers[name].result(timeout=30) == "200", name
        served = [body["messages"][0]["content"] for body in server.served]
        assert sorted(served) == ["heavy 0", "heavy 1", "heavy 2", "heavy 3", "light 0", "light 1"], served


def test_a_client_ousted_from_the_queue_is_answered_in_its_doors_shape():
    """The Messages door's error shape for the refusal of a request whose place another client took."""
    with FakeSlots(slots=1, gated=True) as server:
        entry = [{"name": "local", "backend": "openai", "max_concurrency": 1, "base_url": server.base_url}]
        with running_proxy(MODELS=json.dumps(entry), ADMISSION_QUEUE_SIZE="1") as proxy, \
                ThreadPoolExecutor(4) as pool:
            def messages(address: str, text: str) -> httpx.Response:
                with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60) as http:
                    return http.post(proxy.url + "/v1/messages", json={
                        "model": "local", "max_tokens": 5, "messages": [{"role": "user", "content": text}]})
            held = pool.submit(messages, HEAVY, "held")
            assert poll(lambda: server.running == 1)
            queued = pool.submit(messages, HEAVY, "queued")
            assert poll(lambda: waiting(proxy) == 1)
            light = pool.submit(messages, LIGHT, "light")
            out = queued.result(timeout=30)
            assert out.status_code == 429 and out.headers["Retry-After"] == "1"
            body = out.json()
            assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error", body
            assert "this key held 1 of the 1 places, past its share of 0.5" in body["error"]["message"], body
            server.let_go(2)
            assert held.result(timeout=30).status_code == 200 and light.result(timeout=30).status_code == 200
