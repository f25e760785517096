"""Admission and cache-aware routing, measured: the proxy under Gunicorn (2 gevent workers) in front of fake
llama.cpp servers with slots (tests/fakes/fake_slots.py: N requests at once, each slot keeping only the prompt
it read last, a prefill cost per prompt token its slot does not hold, one prompt read at a time per server, a
cost per output token). No real model: the figures are those of the fake's timing model, stated with the results.

  (a) 8 agents (a 4,000-token shared system prompt, then distinct histories growing by a ~300-token tool result
      a turn, a tool running 0.2-1.1 s between turns, BENCH_TURNS turns, 16 by default) over 2 replicas of 4
      slots: time to first token p50 and total output tokens/s, least_busy against cache_aware.
  (b) one key sends 20 requests of ~2 s at once while another sends one short request a second, to one server
      with 2 slots: the light key's TTFT p95 alone, today (the server's queue), with admission, and with
      admission and ADMISSION_KEY_SHARE=0.5.
  (c) CPU of the proxy's processes per request: admission off and on (no queue).
  (d) CPU of the proxy's processes while BENCH_WAITERS requests (1,000 by default) wait BENCH_SECONDS (60) for a
      slot that never frees (each client a socket that sends its request and waits); then how long a freed slot
      takes to reach the next waiter, and a client that leaves to be noticed. Not part of the default run.

Run: python bench/admission.py [a|b|c|d ...]   (a, b and c by default; about 5 minutes)

  --llama-server runs (a) against two real llama.cpp servers instead (llama.cpp's server with SmolLM2-135M on the CPU,
  4 slots each, as tests/real starts them: requirements-real-llama.txt), and reports the prompt tokens
  they read uncached from their own /metrics. BENCH_TURNS=4 keeps it to minutes on a small machine.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fakes.fake_slots import FakeSlots  # noqa: E402
from tests.proxy_process import running_proxy  # noqa: E402

REAL = "--llama-server" in sys.argv

HEAVY, LIGHT = "sk-heavy-0123456789abcdef", "sk-light-0123456789abcdef"


def entries(*servers: FakeSlots) -> str:
    return json.dumps([{"name": "local", "backend": "openai", "base_url": s.base_url.rstrip("/") + "/"}
                       for s in servers])


@contextmanager
def replicas(slots: int, **fake: float) -> Iterator[tuple[Any, Any, Callable[[], int]]]:
    """Two servers of `slots` slots, and a function giving the prompt tokens they have read uncached so far:
    fakes (their timing model: `fake`), or with --llama-server two llama-servers (their /metrics)."""
    if not REAL:
        with FakeSlots(slots=slots, **fake) as one, FakeSlots(slots=slots, **fake) as two:
            yield one, two, lambda: one.uncached_tokens + two.uncached_tokens
        return
    from tests.real.servers import llama_cpp_server
    # each slot gets n_ctx / slots, the model's whole 8,192 (llama-server caps a slot there): room for the system
    # prompt and 16 turns of tool results; the server's /metrics is always on (tests/real/llama_server.py)
    args = dict(n_ctx=slots * 8192, parallel=slots)
    with llama_cpp_server(**args) as one, llama_cpp_server(**args) as two:
        yield one, two, lambda: _prompt_tokens_read(one) + _prompt_tokens_read(two)


def _prompt_tokens_read(server: Any) -> int:
    """llama-server's count of prompt tokens it evaluated (a cached prefix is not evaluated again)."""
    text = requests.get(server.url + "/metrics", timeout=10).text
    return sum(int(float(line.split()[-1])) for line in text.splitlines()
               if line.startswith("llamacpp:prompt_tokens_total"))


def stream(proxy, messages: list, key: str = "sk-any", max_tokens: int = 30, served: list | None = None
           ) -> tuple[float, int]:
    """(seconds to the first content, content events) of one streamed chat request; `served`: where it went is
    appended."""
    started = time.perf_counter()
    first, events = None, 0
    with requests.post(proxy.base_url + "/chat/completions", stream=True, timeout=300,
                       headers={"Authorization": f"Bearer {key}"},
                       json={"model": "local", "stream": True, "max_tokens": max_tokens, "messages": messages}) as r:
        r.raise_for_status()
        if served is not None:
            served.append(r.headers.get("X-Served-By"))
        for line in r.iter_lines():
            if line.startswith(b"data: {") and b'"content"' in line:
                first = first or time.perf_counter()
                events += 1
    return (first or time.perf_counter()) - started, events


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# ---------------------------------------------------------------- (a)
AGENTS, TURNS = 8, int(os.environ.get("BENCH_TURNS", "16"))
RESULT_TOKENS = 300  # a tool result (a file read, a test run's output) in the fake's 4-character tokens


def conversations(strategy: str) -> tuple[float, float]:
    """Each agent starts a quarter of a second after the one before, and runs its tool between turns (0.2 to 1.1
    s, the same for both strategies): so which replica is least busy when a turn comes is not the one that
    served the turn before, as with agents whose tools take time."""
    system = "shared agent instructions " * 615  # 16,000 characters: 4,000 tokens at the fake's 4 per token
    with replicas(4, prefill=0.0005, per_token=0.02, answer_tokens=30) as (one, two, uncached), \
            running_proxy(MODELS=entries(one, two), ROUTING_STRATEGY=strategy, MAX_CONCURRENCY="auto",
                          WORKERS="2") as proxy:
        ttfts: list[float] = []
        tokens, moved, homes = [0], [0], []
        lock = threading.Lock()

        def agent(n: int) -> None:
            tools = random.Random(n)
            served: list[str] = []
            time.sleep(0.25 * n)
            history = [{"role": "system", "content": system}, {"role": "user", "content": f"task {n}: fix bug {n}"}]
            for turn in range(TURNS):
                ttft, events = stream(proxy, history, served=served)
                with lock:
                    ttfts.append(ttft)
                    tokens[0] += events
                    moved[0] += len(served) > 1 and served[-1] != served[-2]
                    if len(served) == 1:
                        homes.append(served[0])
                time.sleep(tools.uniform(0.2, 1.1))  # the tool runs
                line = f"line {turn} of {n}: some output "
                history += [{"role": "assistant", "content": f"calling a tool, turn {turn}"},
                            {"role": "user", "content": f"tool result {n}.{turn}: " +
                             line * (RESULT_TOKENS * 4 // len(line))}]

        started = time.perf_counter()
        with ThreadPoolExecutor(AGENTS) as pool:
            list(pool.map(agent, range(AGENTS)))
        took = time.perf_counter() - started
        print(f"    {strategy}: prompt tokens read uncached {uncached():,}; "
              f"turns sent to another replica than the turn before {moved[0]} of {AGENTS * (TURNS - 1)}; "
              f"conversations started per replica {sorted(homes.count(h) for h in set(homes))}; "
              f"TTFT p90 {p(ttfts, 0.9):.3f} s; {took:.1f} s in all")
        return statistics.median(ttfts), tokens[0] / took


def bench_a() -> None:
    base = conversations("least_busy")
    aware = conversations("cache_aware")
    print(f"(a) least_busy: TTFT p50 {base[0]:.3f} s, {base[1]:.1f} tokens/s")
    print(f"(a) cache_aware: TTFT p50 {aware[0]:.3f} s, {aware[1]:.1f} tokens/s "
          f"({aware[0] / base[0]:.2f}x the TTFT, {aware[1] / base[1]:.2f}x the tokens/s)")


# ---------------------------------------------------------------- (b)
def light_under_load(settings: dict[str, str] | None, with_heavy: bool = True) -> tuple[float, float]:
    os.environ["KEY_HEAVY"], os.environ["KEY_LIGHT"] = HEAVY, LIGHT
    limits = json.dumps({"KEY_HEAVY": {"rpm": 10000}, "KEY_LIGHT": {"rpm": 10000}})
    with FakeSlots(slots=2, per_token=0.05, answer_tokens=40) as server, \
            running_proxy(MODELS=entries(server), KEY_LIMITS=limits, ENABLE_AUTH="true", WORKERS="2",
                          API_KEY_SECRET="sk-admin-0123456789", **(settings or {})) as proxy:
        stream(proxy, [{"role": "user", "content": "warm"}], LIGHT, max_tokens=2)
        heavy_times: list[float] = []
        with ThreadPoolExecutor(24) as pool:
            if with_heavy:
                def heavy(i: int) -> None:
                    t = time.perf_counter()
                    stream(proxy, [{"role": "user", "content": f"long job {i}"}], HEAVY, max_tokens=40)
                    heavy_times.append(time.perf_counter() - t)
                batch = [pool.submit(heavy, i) for i in range(20)]
                time.sleep(0.2)  # the batch is in before the light key's first turn, as in the scenario
            ttfts = []
            for i in range(15):
                tick = time.perf_counter()
                ttfts.append(stream(proxy, [{"role": "user", "content": f"quick {i}"}], LIGHT, max_tokens=2)[0])
                time.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
            if with_heavy:
                [b.result() for b in batch]
        return p(ttfts, 0.95), (min(heavy_times) if heavy_times else 0.0)


def bench_b() -> None:
    alone, _ = light_under_load({"MAX_CONCURRENCY": "auto"}, with_heavy=False)
    today, heavy = light_under_load(None)
    fair, _ = light_under_load({"MAX_CONCURRENCY": "auto"})
    share, _ = light_under_load({"MAX_CONCURRENCY": "auto", "ADMISSION_KEY_SHARE": "0.5"})
    print(f"(b) light key TTFT p95: alone {alone:.3f} s; one heavy request takes {heavy:.2f} s")
    print(f"(b) today (no admission): {today:.3f} s; admission: {fair:.3f} s (target <= {alone + heavy:.2f}); "
          f"admission + key share 0.5: {share:.3f} s ({share / alone:.2f}x alone; target <= 2x)")


# ---------------------------------------------------------------- (c)
def cpu_per_request(settings: dict[str, str], n: int = 1500) -> float:
    with FakeSlots(slots=64) as server, running_proxy(MODELS=entries(server), WORKERS="2", **settings) as proxy:
        session = requests.Session()
        body = {"model": "local", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(50):
            session.post(proxy.base_url + "/chat/completions", json=body, timeout=30)
        procs = [psutil.Process(proxy.proc.pid), *psutil.Process(proxy.proc.pid).children(recursive=True)]
        before = sum(sum(pr.cpu_times()[:2]) for pr in procs)

        def run(k: int) -> None:
            s = requests.Session()
            for _ in range(n // 4):
                s.post(proxy.base_url + "/chat/completions", json=body, timeout=30).raise_for_status()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(run, range(4)))
        after = sum(sum(pr.cpu_times()[:2]) for pr in procs)
        return (after - before) / n * 1e6


def bench_c() -> None:
    off = statistics.median(cpu_per_request({}) for _ in range(3))
    on = statistics.median(cpu_per_request({"MAX_CONCURRENCY": "64"}) for _ in range(3))
    print(f"(c) proxy CPU per request: admission off {off:.0f} us, on with no queue {on:.0f} us "
          f"({on / off:.2f}x)")


# ---------------------------------------------------------------- (d)
def proxy_cpu(proxy) -> float:
    """User and system seconds of the proxy's master and workers so far."""
    procs = [psutil.Process(proxy.proc.pid), *psutil.Process(proxy.proc.pid).children(recursive=True)]
    return sum(sum(pr.cpu_times()[:2]) for pr in procs)


def waiting_now(proxy) -> float:
    text = requests.get(proxy.url + "/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("cot_proxy_admission_waiting"))


def until(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until `check` held (looked at every 5 ms); raises past `seconds`."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > seconds:
            raise TimeoutError
        time.sleep(0.005)
    return time.perf_counter() - started


def bench_d() -> None:
    import socket
    n, seconds = int(os.environ.get("BENCH_WAITERS", "1000")), float(os.environ.get("BENCH_SECONDS", "60"))
    body = json.dumps({"model": "local", "max_tokens": 1, "messages": [{"role": "user", "content": "wait"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    with FakeSlots(slots=1, gated=True) as server, \
            running_proxy(MODELS=entries(server), MAX_CONCURRENCY="1", WORKERS="2", ADMISSION_MAX_WAIT="3600",
                          ADMISSION_QUEUE_SIZE=str(max(1024, n + 1))) as proxy:
        clients = []
        try:
            for _ in range(n + 1):  # the first is seated (held by the server), the rest wait
                sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
                sock.sendall(request)
                clients.append(sock)
            until(lambda: waiting_now(proxy) == n and server.running == 1, 120)
            time.sleep(1.0)  # the waiters' first looks over
            cpu, wall = proxy_cpu(proxy), time.perf_counter()
            time.sleep(seconds)
            cpu, wall = proxy_cpu(proxy) - cpu, time.perf_counter() - wall
            print(f"(d) {n} requests waiting {wall:.0f} s: the proxy used {cpu:.2f} s of CPU, "
                  f"{cpu / wall:.3f} of a core ({cpu / wall / max(1, n) * 1e6:.1f} us per waiter per second)")
            if not n:
                return
            clients.pop().close()  # the newest client leaves
            left = until(lambda: waiting_now(proxy) == n - 1, 30)
            served = len(server.served)
            server.let_go(1)  # the held request ends: its slot goes to the next waiter
            seated = until(lambda: len(server.served) == served + 1, 30)
            print(f"(d) a client that left noticed in {left:.2f} s; a freed slot reached the next waiter in "
                  f"{seated * 1000:.0f} ms (the server's answer included)")
        finally:
            server.let_go(n + 10)
            for sock in clients:
                sock.close()


if __name__ == "__main__":
    chosen = [arg for arg in sys.argv[1:] if arg != "--llama-server"] or (["a"] if REAL else ["a", "b", "c"])
    if REAL and chosen != ["a"]:
        sys.exit("--llama-server runs (a) only")
    for name in chosen:
        {"a": bench_a, "b": bench_b, "c": bench_c, "d": bench_d}[name]()
