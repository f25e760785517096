"""No request holds a worker's CPU for long (issue 20, item 2), through the running app: token estimates of large
inputs (count_tokens, a streamed Messages start) and many distinct dropped tool types cost bounded CPU (read from
the worker's own rusage), their log lines stay short, and /health keeps answering while the worst of them runs."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI
from tests.proxy_process import running_proxy
from tests.reliability.support import quick_ok, workers

pytestmark = pytest.mark.timeout(300)

MB = 1024 * 1024
# The target is 1 s of a worker's CPU per request; the bound leaves room for a loaded machine (CPU time, not
# wall time, so load changes it little). Before the fix these took 5 to 31 s.
CPU_BOUND = 2.0


def worker_cpu(p) -> float:
    """CPU seconds the workers used so far (user + system, from their rusage via /proc)."""
    procs = workers(p)
    assert len(procs) == 1, procs  # one worker: its figures are the request's
    return sum(procs[0].cpu_times()[:2])


def cpu_of(p, send) -> tuple[float, requests.Response]:
    """The workers' CPU seconds one request costs, and its answer."""
    before = worker_cpu(p)
    r = send()
    return worker_cpu(p) - before, r


@pytest.fixture(scope="module")
def env():
    with FakeOpenAI() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, MAX_BODY_BYTES=str(32 * MB)) as p:
            quick_ok(p, timeout=10)
            yield fake, p


def messages(text: str, **extra) -> dict:
    return {"model": "fake-model", "max_tokens": 10, "messages": [{"role": "user", "content": text}], **extra}


def count_tokens(p, body: dict) -> requests.Response:
    return requests.post(p.url + "/v1/messages/count_tokens", json=body, timeout=120)


def test_count_tokens_of_30_megabytes_costs_bounded_cpu_and_an_estimate_close_to_bytes_over_8(env):
    _, p = env
    cost, r = cpu_of(p, lambda: count_tokens(p, messages("a" * (30 * MB))))
    assert r.status_code == 200, r.text
    # tiktoken counts a run of `a` as one token per 8 letters: the estimate keeps that ratio
    assert abs(r.json()["input_tokens"] - 30 * MB / 8) < 30 * MB / 8 * 0.05, r.json()
    assert cost < CPU_BOUND, cost


def test_streamed_messages_estimate_their_input_in_bounded_cpu(env):
    _, p = env
    body = messages("!?.,;:" * (10 * MB // 6), stream=True)
    cost, r = cpu_of(p, lambda: requests.post(p.url + "/v1/messages", json=body, timeout=120))
    assert r.status_code == 200 and "message_start" in r.text, r.text[:500]
    assert cost < CPU_BOUND, cost


def test_forty_thousand_dropped_tool_types_cost_bounded_cpu_and_one_short_log_line(env):
    _, p = env
    tools = [{"type": f"server_tool_{i:06d}", "name": f"t{i}"} for i in range(40_000)]
    body = messages("hi", tools=tools)
    log_before = len(p.read_log())
    cost, r = cpu_of(p, lambda: requests.post(p.url + "/v1/messages", json=body, timeout=300))
    assert r.status_code == 200, r.text
    assert cost < CPU_BOUND, cost
    lines = [line for line in p.read_log()[log_before:].splitlines() if "left out" in line]
    assert len(lines) == 1 and len(lines[0]) < 4096, [len(line) for line in lines]
    assert "server_tool_000000" in lines[0] and "more" in lines[0]


def test_thirty_megabytes_of_empty_arrays_are_refused_in_bounded_cpu(env):
    fake, p = env
    served = len(fake.received)
    body = b'{"model": "fake-model", "messages": [], "x": [' + b",".join([b"[]"] * (10 * MB)) + b"]}"
    cost, r = cpu_of(p, lambda: requests.post(p.url + "/v1/chat/completions", data=body, timeout=120,
                                              headers={"Content-Type": "application/json"}))
    assert r.status_code == 400 and "arrays and objects" in r.json()["error"]["message"], r.text[:300]
    assert len(fake.received) == served
    assert cost < CPU_BOUND, cost  # 10 million lists took 9 s to parse and 3.7 s to walk


def test_health_answers_while_the_worst_requests_run(env):
    _, p = env
    big = messages("a" * (30 * MB))
    done = threading.Event()
    answers: list[int] = []

    def send() -> None:
        answers.append(count_tokens(p, big).status_code)

    senders = [threading.Thread(target=send) for _ in range(2)]
    for thread in senders:
        thread.start()
    threading.Thread(target=lambda: ([t.join() for t in senders], done.set())).start()
    slowest = 0.0
    while not done.is_set():
        start = time.monotonic()
        r = requests.get(p.url + "/health", timeout=60)
        slowest = max(slowest, time.monotonic() - start)
        assert r.status_code == 200
    assert answers == [200, 200]
    # The target is 100 ms (docs/hardening.md has the figures); a machine shared with other test runs gets far
    # more room, and the bound still fails where /health waited for the whole requests (over 60 s before).
    assert slowest < 5.0, slowest



def test_a_31_mb_body_of_8_million_strings_costs_bounded_cpu_and_health_keeps_answering(env):
    """Issue 38, item 10: 8 million strings `"["` (31 MB) cost 2.5 s of the worker's CPU in the repeated-key and
    container counting, then a parse no other request could interrupt, and /health waited 2.0 s behind it. Now
    the body is counted at C speed and refused for its values (MAX_VALUES) before anything parses it."""
    fake, p = env
    chats = lambda: sum(1 for got in fake.received if got.path.endswith("/chat/completions"))  # noqa: E731
    served = chats()  # (/health asks the upstream for its models)
    body = b'{"model": "fake-model", "messages": [' + b",".join([b'"["'] * 8_000_000) + b"]}"
    assert len(body) > 31_000_000
    done = threading.Event()
    answers: list[requests.Response] = []
    costs: list[float] = []

    def send() -> None:
        cost, r = cpu_of(p, lambda: requests.post(p.url + "/v1/chat/completions", data=body, timeout=120,
                                                  headers={"Content-Type": "application/json"}))
        costs.append(cost)
        answers.append(r)
        done.set()

    assert requests.get(p.url + "/health", timeout=60).status_code == 200  # its upstream probe, kept 5 s
    threading.Thread(target=send).start()
    waits = []
    while not done.is_set():
        start = time.monotonic()
        assert requests.get(p.url + "/health", timeout=60).status_code == 200
        waits.append(time.monotonic() - start)
    slowest = max(waits, default=0.0)
    print(sorted(waits)[-5:])
    r = answers[0]
    assert r.status_code == 400 and "1,000,000 values" in r.json()["error"]["message"], r.text[:300]
    assert chats() == served
    # Measured: about 0.2 s of CPU (most of it reading 31 MB) and /health within 0.05 s; the bounds leave room
    # for a loaded machine and still fail where the checks took 2.5 s and /health waited 2 s.
    print(f"worker CPU {costs[0]:.2f} s, slowest /health {slowest:.3f} s")
    assert costs[0] < 1.2, costs
    assert slowest < 1.0, slowest
