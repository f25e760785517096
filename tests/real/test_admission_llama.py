"""Admission and cache-aware routing in front of two real llama-server replicas (llama.cpp's own server from the
xllamacpp wheel, SmolLM2-135M-Instruct, --parallel 2, prompt cache on) in one pool: the limit read from /props, never more than 2 requests inside a server (counted
by a relay in front of each, tests/real/relay.py: llama-server would queue a third itself), and a
conversation's turns kept on its replica while that one has a free slot, where the server's prompt cache holds
it. Skipped when llama.cpp's server or the model is not installed (failed in CI, which installs them)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.polling import poll
from tests.proxy_process import running_proxy
from tests.real.relay import CountingRelay
from tests.real.servers import llama_cpp_server

pytestmark = pytest.mark.timeout(600)  # two servers start, then 24 turns of a small model on a busy CPU
SYSTEM = "You are a terse assistant. " * 40


def test_two_llama_servers_with_slots_behind_admission_and_cache_aware_routing():
    with llama_cpp_server(n_ctx=4096, parallel=2, cache_reuse=256) as one, \
            llama_cpp_server(n_ctx=4096, parallel=2, cache_reuse=256) as two, \
            CountingRelay(one.url) as to_one, CountingRelay(two.url) as to_two:
        entries = [{"name": "smollm2", "backend": "openai", "base_url": r.url + "/v1/", "max_concurrency": "auto"}
                   for r in (to_one, to_two)]
        with running_proxy(MODELS=json.dumps(entries), ROUTING_STRATEGY="cache_aware", WORKERS="2") as proxy:
            def limits() -> list[float]:
                text = requests.get(proxy.url + "/metrics", timeout=10).text
                return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("cot_proxy_admission_limit{")]
            assert poll(lambda: limits() == [2.0, 2.0], timeout=30), limits()
            client = openai.OpenAI(base_url=proxy.base_url, api_key="sk-unused")

            def turn(history: list[dict]) -> tuple[str, int]:
                """Sends the conversation so far and adds the answer and a next question to it: (the replica
                that served it, the prompt tokens that server had in its cache)."""
                out = client.chat.completions.with_raw_response.create(model="smollm2", messages=history, max_tokens=8)
                answer = out.parse()
                details = answer.usage.prompt_tokens_details if answer.usage else None
                history += [{"role": "assistant", "content": answer.choices[0].message.content or "ok"},
                            {"role": "user", "content": "And again."}]
                return out.headers["X-Served-By"], (details.cached_tokens or 0) if details else 0

            def conversation(n: int) -> None:
                history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Count to {n}."}]
                for _ in range(3):
                    turn(history)

            # 6 conversations over 4 slots: a server ran 2 at once, and none held more (a third would have waited
            # in its own queue): the rest waited in the proxy. Full, a turn takes the first slot freed on
            # either replica (docs/admission.md: its own replica only while it has room).
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(conversation, range(6)))
            assert to_one.posts + to_two.posts == 18
            assert max(to_one.most_inside, to_two.most_inside) == 2, (to_one.most_inside, to_two.most_inside)
            assert poll(lambda: 'cot_proxy_admission_wait_seconds_count{key="none"} 18.0' in
                        requests.get(proxy.url + "/metrics", timeout=10).text, timeout=10)

            # A conversation starts alone, on the first replica (the least loaded: a tie). A long answer (a new
            # conversation) then runs there too. The conversation's next turns still go to its replica, which has a
            # free slot, and find it in that server's cache; by load alone they would go to the idle replica and
            # read the conversation again there.
            history = [{"role": "system", "content": "Conversation A. " + SYSTEM},
                       {"role": "user", "content": "Count to 3."}]
            home, _ = turn(history)
            with client.chat.completions.create(model="smollm2", stream=True, max_tokens=1000,
                                                extra_body={"ignore_eos": True},
                                                messages=[{"role": "user", "content": "Count to 500."}]):
                assert poll(lambda: to_one.inside + to_two.inside == 1, timeout=60)
                for _ in range(2):
                    served, cached = turn(history)
                    assert served == home and cached > 200, (served, home, cached)
                assert to_one.inside + to_two.inside == 1, "the long answer ended before the turns: make it longer"
