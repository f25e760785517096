"""Admission and cache-aware routing through the real proxy under Gunicorn (two gevent workers), in front of
fake llama.cpp servers with slots (tests/fakes/fake_slots.py): the limit read from /props, the queue shared by
the workers, fair order between keys, bounded waits answered 429/503 with Retry-After in the API's shape,
keepalives while a stream waits, /metrics, and a conversation's turns kept on one deployment."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import psutil
import pytest
import requests

from tests.fakes.fake_slots import FakeSlots
from tests.polling import poll
from tests.proxy_process import running_proxy


ADMIN = "sk-admin-0123456789"


def models(*urls: str, **extra) -> str:
    return json.dumps([{"name": "local", "backend": "openai", "base_url": u, **extra} for u in urls])


def ask(proxy, text: str, key: str = "sk-any", headers: dict | None = None, **extra) -> requests.Response:
    return requests.post(proxy.base_url + "/chat/completions", timeout=60,
                         headers={"Authorization": f"Bearer {key}", **(headers or {})},
                         json={"model": "local", "messages": [{"role": "user", "content": text}], **extra})


def metric(proxy, name: str) -> float:
    text = requests.get(proxy.url + "/metrics", timeout=10, headers={"Authorization": f"Bearer {ADMIN}"}).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_requests_beyond_the_servers_slots_wait_in_the_proxy_shared_by_its_workers():
    with FakeSlots(slots=2, gated=True) as server, \
            running_proxy(MODELS=models(server.base_url), MAX_CONCURRENCY="auto", WORKERS="2") as proxy:
        assert poll(lambda: metric(proxy, "cot_proxy_admission_limit") == 2), "the limit is read from /props"
        with ThreadPoolExecutor(8) as pool:
            answers = [pool.submit(ask, proxy, f"q{i}") for i in range(8)]
            assert poll(lambda: metric(proxy, "cot_proxy_admission_waiting") == 6)
            assert poll(lambda: server.inside == 2), "the two let in reach the server"  # (a slot is taken first)
            assert metric(proxy, "cot_proxy_admission_in_flight") == 2
            server.let_go(8)
            assert all(a.result().status_code == 200 for a in answers)
        assert server.most_inside == 2 and len(server.served) == 8
        assert poll(lambda: metric(proxy, 'cot_proxy_admission_wait_seconds_count{key="none"}') == 8)


def test_a_key_flooding_the_queue_does_not_delay_another_keys_turn(monkeypatch):
    monkeypatch.setenv("KEY_HEAVY", "sk-heavy-0123456789")
    monkeypatch.setenv("KEY_LIGHT", "sk-light-0123456789")
    limits = json.dumps({"KEY_HEAVY": {"rpm": 1000}, "KEY_LIGHT": {"rpm": 1000}})
    with FakeSlots(slots=1, gated=True) as server, \
            running_proxy(MODELS=models(server.base_url, max_concurrency=1), KEY_LIMITS=limits, ENABLE_AUTH="true",
                          API_KEY_SECRET="sk-admin-0123456789", WORKERS="2") as proxy:
        with ThreadPoolExecutor(8) as pool:
            heavy = [pool.submit(ask, proxy, f"heavy {i}", "sk-heavy-0123456789") for i in range(6)]
            assert poll(lambda: metric(proxy, "cot_proxy_admission_waiting") == 5)
            light = pool.submit(ask, proxy, "light", "sk-light-0123456789")
            assert poll(lambda: metric(proxy, "cot_proxy_admission_waiting") == 6)
            server.let_go(1)  # the first heavy request ends: its slot goes to the light key, not the backlog
            assert poll(lambda: len(server.served) == 2)
            assert server.served[1]["messages"][0]["content"] == "light"
            server.let_go(6)
            assert light.result().status_code == 200 and all(h.result().status_code == 200 for h in heavy)
        assert metric(proxy, 'cot_proxy_admission_wait_seconds_count{key="KEY_LIGHT"}') == 1


def test_a_team_keys_priority_is_its_weight_in_the_queue(tmp_path):
    """`keys create --priority 4`: while both wait, that key's requests go four times as often as another's; here
    its three waiting requests all go before the other key's three, which queued first."""
    from tests.integration.test_team_keys import create
    db = tmp_path / "keys.db"
    low, high = create(db, "low"), create(db, "high", "--priority", "4")
    with FakeSlots(slots=1, gated=True) as server, \
            running_proxy(MODELS=models(server.base_url, max_concurrency=1), ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                          KEYS_DB=str(db), WORKERS="2") as proxy:
        with ThreadPoolExecutor(8) as pool:
            answers = [pool.submit(ask, proxy, "held", low)]
            assert poll(lambda: server.running == 1)
            for name, key in (("low", low), ("high", high)):
                for i in range(3):
                    answers.append(pool.submit(ask, proxy, f"{name} {i}", key))
                    assert poll(lambda: metric(proxy, "cot_proxy_admission_waiting") == len(answers) - 1)
            server.let_go(7)
            assert [a.result().status_code for a in answers] == [200] * 7
        order = [b["messages"][0]["content"] for b in server.served]
        assert order == ["held", "high 0", "high 1", "high 2", "low 0", "low 1", "low 2"], order


def test_a_wait_past_its_bound_is_refused_with_retry_after_in_the_apis_shape():
    with FakeSlots(slots=1, gated=True, per_token=0.15) as server, \
            running_proxy(MODELS=models(server.base_url, max_concurrency=1), ADMISSION_MAX_WAIT="30") as proxy:
        server.let_go(1)
        assert ask(proxy, "first").status_code == 200  # 8 tokens at 0.15 s: a request time to estimate waits by
        with ThreadPoolExecutor(4) as pool:
            held = pool.submit(ask, proxy, "held")
            assert poll(lambda: server.running == 1)
            # the client waits 0.5 s at most (the SDK's header says so): 1.2 s is ahead, so 429 at once
            client = openai.OpenAI(base_url=proxy.base_url, api_key="sk-any", max_retries=0, timeout=0.5)
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
            assert caught.value.response.headers["Retry-After"].isdigit()
            assert caught.value.body["code"] == "queue_full"
            # an estimate that fell short: refused when the bound passes, 503
            r = ask(proxy, "short", headers={"X-Stainless-Timeout": "0.3"})
            assert r.status_code in (429, 503) and "Retry-After" in r.headers
            assert r.json()["error"]["code"] in ("queue_full", "queue_timeout")
            server.let_go(5)
            assert held.result().status_code == 200
        assert metric(proxy, "cot_proxy_admission_refusals_total") >= 2


def test_a_killed_workers_slots_and_places_in_the_queue_are_given_back():
    """A worker SIGKILLed while its requests hold a slot or wait for one cannot give them back: the master does
    (its ledger of what it held). They stayed taken for good: the deployment served nobody again."""
    with FakeSlots(slots=1, gated=True) as server, \
            running_proxy(MODELS=models(server.base_url, max_concurrency=1), WORKERS="2") as proxy:
        with ThreadPoolExecutor(3) as pool:
            doomed = [pool.submit(ask, proxy, f"doomed {i}") for i in range(3)]
            assert poll(lambda: metric(proxy, "cot_proxy_admission_waiting") == 2)
            # the seated request may still be on its way to the server
            assert poll(lambda: server.running == 1 and metric(proxy, "cot_proxy_admission_in_flight") == 1)
            workers = psutil.Process(proxy.proc.pid).children()
            for worker in workers:
                os.kill(worker.pid, signal.SIGKILL)
            assert poll(lambda: len(set(psutil.Process(proxy.proc.pid).children()) - set(workers)) == 2)
            for request in doomed:
                with pytest.raises(requests.RequestException):
                    request.result()
        gauges = lambda: (metric(proxy, "cot_proxy_admission_in_flight"),  # noqa: E731
                          metric(proxy, "cot_proxy_admission_waiting"))
        assert poll(lambda: gauges() == (0, 0)), gauges()
        server.let_go(10)  # the killed request's own answer ends at the server (to nobody)
        assert ask(proxy, "after").status_code == 200
        assert "admission: worker" in proxy.read_log()


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_a_client_that_leaves_while_its_request_waits_leaves_the_queue(worker_class):
    """A waiting request whose client closed its connection stayed in the queue, was granted a slot in its turn
    and sent to the server for nobody, ahead of the requests behind it."""
    with FakeSlots(slots=1, gated=True) as server, \
            running_proxy(MODELS=models(server.base_url, max_concurrency=1), WORKER_CLASS=worker_class) as proxy:
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(ask, proxy, "held")
            assert poll(lambda: server.running == 1)
            body = json.dumps({"model": "local", "messages": [{"role": "user", "content": "left"}]}).encode()
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as client:
                client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                assert poll(lambda: metric(proxy, "cot_proxy_admission_waiting") == 1)
            assert poll(lambda: metric(proxy, "cot_proxy_admission_waiting") == 0), "the request left with its client"
            server.let_go(5)
            assert held.result().status_code == 200
            assert ask(proxy, "next").status_code == 200
        assert [b["messages"][0]["content"] for b in server.served] == ["held", "next"]


def test_the_status_page_shows_the_queue_each_keys_waits_and_its_queue_refusals(monkeypatch):
    """The page shows the queue (each deployment's load, its model's waiting requests), each key's recent waits
    (p50, p95) and its queue refusals by code; they count under the cause `queue`, not `rate`."""
    from tests.integration.test_status_page import rendered
    monkeypatch.setenv("KEY_A", "sk-a-0123456789")
    with FakeSlots(slots=1, gated=True) as server, \
            running_proxy(MODELS=models(server.base_url, max_concurrency=1), ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                          KEY_LIMITS=json.dumps({"KEY_A": {"rpm": 1000}}), WORKERS="2") as proxy:
        def data() -> dict:
            return requests.get(proxy.url + "/ui/data", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()
        key = "sk-a-0123456789"
        with ThreadPoolExecutor(4) as pool:
            held = pool.submit(ask, proxy, "held", key)
            assert poll(lambda: server.running == 1)
            waiting = [pool.submit(ask, proxy, f"waits {i}", key) for i in range(2)]
            assert poll(lambda: data()["queue"]["deployments"][0]["waiting"] == 2)
            row = data()["queue"]["deployments"][0]
            assert (row["model"], row["in_flight"], row["limit"]) == ("local", 1, 1), row
            late = ask(proxy, "late", key, headers={"X-Stainless-Timeout": "0.3"})  # nothing ended: no estimate yet
            assert (late.status_code, late.json()["error"]["code"]) == (503, "queue_timeout")
            server.let_go(3)
            assert all(r.result().status_code == 200 for r in [held, *waiting])
        queue = data()["queue"]
        waits = {k["key"]: k for k in queue["keys"]}["KEY_A"]
        assert (waits["waits"], waits["queue_full"], waits["queue_timeout"]) == (3, 0, 1), waits
        assert waits["p50"] > 0 and waits["p95"] >= waits["p50"]  # two of three waited for the held one
        refusals = data()["refusals"]
        assert (refusals["queue"], refusals["rate"]) == (1, 0), refusals
        page = rendered(f"{proxy.url}/ui#key={ADMIN}")
        assert '<section id="queue-section">' in page, page[-4000:]  # shown: no longer `hidden`
        assert '<td class="n">0 / 1</td>' in page  # the slot is free now
        assert "<td>KEY_A</td><td class=\"n\">3</td>" in page, page[-4000:]


def test_a_waiting_stream_is_kept_alive_and_a_messages_request_waits_as_well():
    with FakeSlots(slots=1, gated=True) as server, \
            running_proxy(MODELS=models(server.base_url, max_concurrency=1), SSE_KEEPALIVE="0.2") as proxy:
        with ThreadPoolExecutor(4) as pool:
            held = pool.submit(ask, proxy, "held")
            assert poll(lambda: server.running == 1)
            lines: list[bytes] = []
            started = threading.Event()

            def stream() -> int:
                with requests.post(proxy.base_url + "/chat/completions", stream=True, timeout=60,
                                   json={"model": "local", "stream": True,
                                         "messages": [{"role": "user", "content": "streamed"}]}) as r:
                    started.set()
                    for line in r.iter_lines():
                        lines.append(line)
                    return r.status_code
            streamed = pool.submit(stream)
            messages = pool.submit(requests.post, proxy.url + "/v1/messages", timeout=60,
                                   json={"model": "local", "max_tokens": 5,
                                         "messages": [{"role": "user", "content": "via messages"}]})
            assert poll(lambda: metric(proxy, "cot_proxy_admission_waiting") == 2)
            assert poll(lambda: lines.count(b": keepalive") >= 2), "the waiting stream gets keepalives"
            server.let_go(3)
            assert streamed.result() == 200 and b"data: [DONE]" in lines
            assert messages.result().status_code == 200 and messages.result().json()["type"] == "message"
            assert held.result().status_code == 200


def test_cache_aware_routing_keeps_a_conversation_on_the_deployment_that_served_it():
    with FakeSlots(slots=4) as a, FakeSlots(slots=4) as b, \
            running_proxy(MODELS=models(a.base_url, b.base_url), ROUTING_STRATEGY="cache_aware", WORKERS="2") as proxy:
        client = openai.OpenAI(base_url=proxy.base_url, api_key="sk-any")
        for conversation in range(4):
            history = [{"role": "system", "content": "shared system prompt " * 50},
                       {"role": "user", "content": f"task {conversation}"}]
            served = set()
            for turn in range(4):
                out = client.chat.completions.with_raw_response.create(model="local", messages=history)
                served.add(out.headers["X-Served-By"])
                history += [{"role": "assistant", "content": out.parse().choices[0].message.content},
                            {"role": "user", "content": f"turn {turn}"}]
            assert len(served) == 1, f"conversation {conversation} moved between deployments: {served}"
        # Messages: the door's chat request is routed alike
        history = [{"role": "user", "content": "a messages conversation"}]
        served = set()
        for turn in range(3):
            r = requests.post(proxy.url + "/v1/messages", timeout=30, json={
                "model": "local", "max_tokens": 5, "system": "be brief", "messages": history})
            assert r.status_code == 200, r.text
            served.add(r.headers["X-Served-By"])
            history += [{"role": "assistant", "content": r.json()["content"][0]["text"]},
                        {"role": "user", "content": f"more {turn}"}]
        assert len(served) == 1


def test_a_conversation_stays_on_its_server_while_a_slot_is_free_there():
    """Bounded-load hashing at 1.25x the mean load sent a turn to the idle server when its own ran 2 of its 4
    slots (the mean of small numbers): that server read the whole conversation again."""
    with FakeSlots(slots=4, held_if="hold") as a, FakeSlots(slots=4, held_if="hold") as b, \
            running_proxy(MODELS=models(a.base_url, b.base_url), ROUTING_STRATEGY="cache_aware",
                          MAX_CONCURRENCY="auto") as proxy:
        assert poll(lambda: metric(proxy, "cot_proxy_admission_limit") == 8)
        servers = {a.base_url.split("/")[2]: a, b.base_url.split("/")[2]: b}
        histories = {}

        def begin(name: str) -> FakeSlots:  # a conversation starts on its home: the first of its hash order
            histories[name] = [{"role": "system", "content": "shared instructions " * 50},
                               {"role": "user", "content": f"task {name}"}]
            r = ask_with(proxy, histories[name])
            histories[name] += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "next"}]
            return servers[r.headers["X-Served-By"]]
        home = begin("mine")
        others = [n for n in (f"other {i}" for i in range(16)) if begin(n) is home][:2]
        with ThreadPoolExecutor(2) as pool:
            held = [pool.submit(ask_with, proxy, histories[n][:-1] + [{"role": "user", "content": "hold"}])
                    for n in others]
            assert poll(lambda: home.running == 2)  # two of its four slots busy, none of the other's
            r = ask_with(proxy, histories["mine"])
            assert servers[r.headers["X-Served-By"]] is home, "the turn went where its conversation is cached"
            home.let_go(2)
            assert all(h.result().status_code == 200 for h in held)


def ask_with(proxy, messages: list) -> requests.Response:
    r = requests.post(proxy.base_url + "/chat/completions", json={"model": "local", "messages": messages},
                      timeout=60)
    assert r.status_code == 200, r.text
    return r

