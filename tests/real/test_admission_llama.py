"""Admission and cache-aware routing in front of two real llama-server replicas (Gemma 3 270M, --parallel 2,
prompt cache on) in one pool: the limit read from /props, never more than 2 requests inside a server (counted
by a relay in front of each, tests/real/relay.py: llama-server would queue a third itself), and a
conversation's turns kept on one replica. Skipped when llama-server or the model is not installed."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import openai
import requests

from tests.polling import poll
from tests.proxy_process import running_proxy
from tests.real.relay import CountingRelay
from tests.real.servers import llama_cpp_server

SYSTEM = "You are a terse assistant. " * 40


def test_two_llama_servers_with_slots_behind_admission_and_cache_aware_routing():
    extra = ("--cache-reuse", "256", "--slots")
    with llama_cpp_server(n_ctx=4096, parallel=2, extra=extra) as one, \
            llama_cpp_server(n_ctx=4096, parallel=2, extra=extra) as two, \
            CountingRelay(one.url) as to_one, CountingRelay(two.url) as to_two:
        entries = [{"name": "gemma", "backend": "openai", "base_url": r.url + "/v1/", "max_concurrency": "auto"}
                   for r in (to_one, to_two)]
        with running_proxy(MODELS=json.dumps(entries), ROUTING_STRATEGY="cache_aware", WORKERS="2") as proxy:
            def limits() -> list[float]:
                text = requests.get(proxy.url + "/metrics", timeout=10).text
                return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("cot_proxy_admission_limit{")]
            assert poll(lambda: limits() == [2.0, 2.0], timeout=30), limits()
            client = openai.OpenAI(base_url=proxy.base_url, api_key="sk-unused")

            def conversation(n: int) -> set[str]:
                history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Count to {n}."}]
                served = set()
                for turn in range(3):
                    out = client.chat.completions.with_raw_response.create(model="gemma", messages=history,
                                                                          max_tokens=8)
                    served.add(out.headers["X-Served-By"])
                    history += [{"role": "assistant", "content": out.parse().choices[0].message.content or "ok"},
                                {"role": "user", "content": "And again."}]
                return served

            with ThreadPoolExecutor(6) as pool:
                results = list(pool.map(conversation, range(6)))
            # 6 conversations over 4 slots: a server ran 2 at once, and none held more (a third would have waited
            # in its own queue): the rest waited in the proxy
            assert to_one.posts + to_two.posts == 18
            assert max(to_one.most_inside, to_two.most_inside) == 2, (to_one.most_inside, to_two.most_inside)
            # each stayed on one replica unless its replica was full when a turn came
            assert sum(len(s) == 1 for s in results) >= 4, results
            text = requests.get(proxy.url + "/metrics", timeout=10).text
            assert 'cot_proxy_admission_wait_seconds_count{key="none"} 18.0' in text
