"""Many upstreams behind one proxy (issue 15), with several fake upstreams on loopback and the real proxy
under Gunicorn: routing by name and glob, pools, failover, 429 cooldown, fallbacks, /v1/models, /health."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.clients import anthropic_sdk, openai_sdk
from tests.fakes.fake_openai import FakeOpenAI, Reply, chat_completion
from tests.polling import poll
from tests.proxy_process import running_proxy

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def models(*entries: dict) -> str:
    return json.dumps(list(entries))


def chat(proxy, model: str, **extra) -> requests.Response:
    return requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": model, **extra}, timeout=30)


@pytest.fixture
def fakes():
    with FakeOpenAI() as a, FakeOpenAI() as b, FakeOpenAI() as c:
        yield a, b, c


def test_routing_by_name_and_glob(fakes):
    a, b, c = fakes
    entries = models({"name": "qwen3", "backend": "openai", "base_url": a.base_url, "upstream_model": "Qwen/Qwen3-8B"},
                     {"name": "local-*", "backend": "openai", "base_url": b.base_url},
                     {"name": "*", "backend": "openai", "base_url": c.base_url, "params": {"temperature": 0.1}})
    with running_proxy(MODELS=entries) as proxy:
        r = chat(proxy, "qwen3")
        assert r.status_code == 200, r.text
        assert a.received[-1].json()["model"] == "Qwen/Qwen3-8B"
        assert r.headers["X-Served-Model"] == "qwen3" and r.headers["X-Served-By"] == f"127.0.0.1:{a.port}"

        r = chat(proxy, "local-llama")
        assert r.status_code == 200 and b.received[-1].json()["model"] == "local-llama"
        assert r.headers["X-Served-Model"] == "local-llama" and r.headers["X-Served-By"] == f"127.0.0.1:{b.port}"

        client = openai.OpenAI(base_url=proxy.base_url, api_key="sk-client")
        out = client.chat.completions.create(model="anything", messages=CHAT["messages"])
        assert out.choices[0].message.content == c.default_content
        assert c.received[-1].json()["temperature"] == 0.1  # the entry's params
        assert len(a.received) == len(b.received) == 1


def test_without_models_the_single_upstream_answers_as_before(fakes):
    """TARGET_BASE_URL alone is the shorthand for a one-entry list: its answers, whole or streamed (with
    keepalives), and its errors name the model and the deployment as a routed answer does (issue 37)."""
    a, _, _ = fakes
    with running_proxy(TARGET_BASE_URL=a.base_url) as proxy:
        r = chat(proxy, "any-model-name")
        assert r.status_code == 200 and r.headers["X-Served-By"] == f"127.0.0.1:{a.port}"
        assert r.headers["X-Served-Model"] == "any-model-name"
        with requests.post(proxy.url + "/v1/chat/completions", json={**CHAT, "model": "m\u00e9", "stream": True},
                           stream=True, timeout=30) as streamed:
            assert streamed.status_code == 200 and b"data: [DONE]" in streamed.content
            assert streamed.headers["X-Served-By"] == f"127.0.0.1:{a.port}"
            assert streamed.headers["X-Served-Model"] == "m%C3%A9"  # client input: never a raw header byte
        assert requests.get(proxy.url + "/health", timeout=10).json()["status"] == "healthy"
        metrics = requests.get(proxy.url + "/metrics", timeout=10).text
        assert f'deployment="127.0.0.1:{a.port}"' in metrics


def test_a_model_no_entry_serves_is_a_404_naming_it(fakes):
    a, _, _ = fakes
    with running_proxy(MODELS=models({"name": "qwen3", "backend": "openai", "base_url": a.base_url})) as proxy:
        client = openai_sdk(proxy, "sk-client")
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="gpt-5", messages=CHAT["messages"])
        assert "gpt-5" in info.value.message and info.value.code == "model_not_found"
        assert a.received == []
        listed = [m.id for m in client.models.list()]
        assert listed == ["qwen3"]


def test_models_lists_every_name_pseudo_models_and_glob_matches(fakes):
    a, b, _ = fakes
    entries = models({"name": "qwen3", "backend": "openai", "base_url": a.base_url},
                     {"name": "qwen3", "backend": "openai", "base_url": b.base_url},
                     {"name": "fake-*", "backend": "openai", "base_url": b.base_url})
    with running_proxy(MODELS=entries, LLM_PARAMS="model=qwen3-think,think_mode=reasoning") as proxy:
        ids = [m["id"] for m in requests.get(proxy.base_url + "/models", timeout=10).json()["data"]]
        assert ids == ["qwen3", "fake-model", "qwen3-think"]


def test_the_pool_spreads_requests_by_in_flight(fakes):
    a, b, _ = fakes
    entries = models({"name": "qwen3", "backend": "openai", "base_url": a.base_url},
                     {"name": "qwen3", "backend": "openai", "base_url": b.base_url})
    for fake in (a, b):
        fake.add(*[Reply(chat_completion("slow"), delay=1.5) for _ in range(8)])
    with running_proxy(MODELS=entries, WORKERS="1") as proxy:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: chat(proxy, "qwen3").status_code, range(8)))
        assert results == [200] * 8
        assert (len(a.received), len(b.received)) == (4, 4)  # 8 at once: each deployment got half


def test_weights_share_idle_traffic(fakes):
    a, b, _ = fakes
    entries = models({"name": "m", "backend": "openai", "base_url": a.base_url, "weight": 4},
                     {"name": "m", "backend": "openai", "base_url": b.base_url, "weight": 1})
    with running_proxy(MODELS=entries) as proxy:
        for _ in range(100):
            assert chat(proxy, "m").status_code == 200
    assert 65 <= len(a.received) <= 95, (len(a.received), len(b.received))


def test_a_429_with_retry_after_moves_traffic_away(fakes):
    a, b, _ = fakes
    entries = models({"name": "m", "backend": "openai", "base_url": a.base_url, "weight": 1000},
                     {"name": "m", "backend": "openai", "base_url": b.base_url})
    a.add(*[Reply({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limited"}},
                  status=429, headers={"Retry-After": "30"}) for _ in range(50)])
    with running_proxy(MODELS=entries, WORKERS="2") as proxy:
        for _ in range(20):
            r = chat(proxy, "m")
            assert r.status_code == 200 and r.headers["X-Served-By"] == f"127.0.0.1:{b.port}"
        assert len(a.received) == 1  # the 429 cooled it down for both workers
        health = requests.get(proxy.url + "/health", timeout=10)
        assert health.status_code == 200
        states = {d["served_by"]: d["state"] for d in health.json()["deployments"]}
        assert states == {f"127.0.0.1:{a.port}": "rate_limited", f"127.0.0.1:{b.port}": "up"}
        assert 25 < next(d["retry_in"] for d in health.json()["deployments"] if d["state"] != "up") <= 30


@pytest.mark.parametrize("retry_after", ["99999999999999999999", "1" * 400, "Thu, 01 Jan 2099 00:00:00 GMT"])
def test_a_429_with_an_enormous_retry_after_cools_down_for_an_hour_at_most(fakes, retry_after):
    """Its seconds overflowed the cooldown's shared cell: a 500 of the proxy's own on every such answer; a
    date in 2099 cooled the deployment down until then."""
    a, b, _ = fakes
    entries = models({"name": "m", "backend": "openai", "base_url": a.base_url, "weight": 1000},
                     {"name": "m", "backend": "openai", "base_url": b.base_url})
    a.add(Reply({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": retry_after}))
    with running_proxy(MODELS=entries) as proxy:
        r = chat(proxy, "m")
        assert r.status_code == 200 and r.headers["X-Served-By"] == f"127.0.0.1:{b.port}", r.text
        deployments = requests.get(proxy.url + "/health", timeout=10).json()["deployments"]
        cooled = next(d for d in deployments if d["state"] != "up")
        assert cooled["state"] == "rate_limited" and 3590 < cooled["retry_in"] <= 3600, cooled
        assert "Traceback" not in proxy.read_log()


def test_an_unknown_model_of_megabytes_is_named_in_part(fakes):
    """The 404 quoted the whole name: a 2 MB name, a 2 MB error (20 MB: +100 MB in the worker)."""
    a, _, _ = fakes
    with running_proxy(MODELS=models({"name": "m", "backend": "openai", "base_url": a.base_url})) as proxy:
        r = chat(proxy, "q" * 2_000_000)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        assert len(r.content) < 5000 and r.json()["error"]["message"].endswith("...")


def test_a_pool_that_fails_falls_back_naming_the_model_asked_for(fakes):
    a, b, _ = fakes
    entries = models({"name": "qwen3", "backend": "openai", "base_url": a.base_url},
                     {"name": "gpt-4o", "backend": "openai", "base_url": b.base_url})
    a.add(Reply({"error": {"message": "overloaded"}}, status=503), Reply({"error": {"message": "overloaded"}}, status=503),
          Reply({"error": {"message": "overloaded"}}, status=503))
    with running_proxy(MODELS=entries, FALLBACKS='{"qwen3": ["gpt-4o"]}', MAX_RETRIES="0") as proxy:
        r = chat(proxy, "qwen3")
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "qwen3"
        assert r.headers["X-Served-Model"] == "gpt-4o" and r.headers["X-Served-By"] == f"127.0.0.1:{b.port}"
        assert b.received[-1].json()["model"] == "gpt-4o"
        # streamed, through the SDK: every chunk names qwen3
        a.add(Reply({"error": {"message": "overloaded"}}, status=503))
        client = openai.OpenAI(base_url=proxy.base_url, api_key="sk-client")
        chunks = list(client.chat.completions.create(model="qwen3", messages=CHAT["messages"], stream=True))
        assert chunks and all(c.model == "qwen3" for c in chunks)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == b.default_content


def test_a_deployment_that_fails_after_a_keepalive_still_fails_over(fakes):
    """SSE keepalives commit a slow stream to 200 before the upstream answers; a deployment that then fails
    (here a 503 after a second, as an overloaded queue or a timeout would) is still retried on the next one:
    the client had keepalive comments, not a byte of an answer."""
    a, b, _ = fakes
    entries = models({"name": "m", "backend": "openai", "base_url": a.base_url, "weight": 1000},
                     {"name": "m", "backend": "openai", "base_url": b.base_url, "weight": 0.001})
    with running_proxy(MODELS=entries, SSE_KEEPALIVE="0.1", COOLDOWN_SECONDS="0") as proxy:
        a.add(Reply({"error": {"message": "overloaded"}}, status=503, delay=0.6))
        r = requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": "m", "stream": True},
                          stream=True, timeout=30)
        body = r.raw.read()
        assert r.status_code == 200 and body.startswith(b": keepalive") and body.endswith(b"data: [DONE]\n\n")
        assert b'"error"' not in body and len(a.received) == 1 and len(b.received) == 1
        a.add(Reply({"error": {"message": "overloaded"}}, status=503, delay=0.6))
        client = anthropic_sdk(proxy, "sk-client")
        with client.messages.stream(model="m", max_tokens=8, messages=CHAT["messages"]) as stream:
            assert stream.get_final_message().content[0].text == b.default_content
        assert len(a.received) == 2 and len(b.received) == 2


LLAMA_SERVER_CONTEXT = {"error": {"code": 400, "message": "request (40123 tokens) exceeds the available context size "
                                   "(32768 tokens), try increasing it", "type": "exceed_context_size_error",
                        "n_prompt_tokens": 40123, "n_ctx": 32768}}


def test_context_length_exceeded_goes_to_the_fallback(fakes):
    a, b, _ = fakes
    entries = models({"name": "small", "backend": "openai", "base_url": a.base_url},
                     {"name": "big", "backend": "openai", "base_url": b.base_url})
    a.add(Reply({"error": {"message": "This model's maximum context length is 8192 tokens.",
                           "type": "invalid_request_error", "code": "context_length_exceeded"}}, status=400),
          Reply(LLAMA_SERVER_CONTEXT, status=400))  # llama.cpp's server words it its own way
    with running_proxy(MODELS=entries, FALLBACKS='{"small": ["big"]}') as proxy:
        for _ in range(2):
            r = chat(proxy, "small")
            assert r.status_code == 200 and r.headers["X-Served-Model"] == "big"
        # any other 4xx goes to the client as it is
        a.add(Reply({"error": {"message": "bad temperature", "type": "invalid_request_error"}}, status=400))
        r = chat(proxy, "small")
        assert r.status_code == 400 and "bad temperature" in r.json()["error"]["message"]
        assert r.headers["X-Served-By"] == f"127.0.0.1:{a.port}"
        assert len(b.received) == 2


def test_when_every_deployment_fails_the_client_gets_the_last_error(fakes):
    a, b, _ = fakes
    entries = models({"name": "m", "backend": "openai", "base_url": a.base_url},
                     {"name": "m", "backend": "openai", "base_url": b.base_url})
    for fake in (a, b):
        fake.add(*[Reply({"error": {"message": "down for maintenance"}}, status=503) for _ in range(3)])
    with running_proxy(MODELS=entries, MAX_RETRIES="1", WORKERS="1") as proxy:
        r = chat(proxy, "m")
        assert r.status_code == 503 and "maintenance" in r.json()["error"]["message"]
        assert len(a.received) + len(b.received) == 2  # one try on each, no more
        health = requests.get(proxy.url + "/health", timeout=10)
        assert health.status_code == 503 and len(health.json()["down"]) == 2


def test_health_detail_and_hidden_fallbacks_are_for_key_holders_only(fakes):
    """Issue 20, item 7: with auth on, /health tells a caller without a key the status only (no host:port, no
    model names, no error text); a key holder sees the deployments, but none of a name off the allow-list; a
    fallback off the allow-list is named in X-Served-Model by the alias asked for."""
    a, b, _ = fakes
    entries = models({"name": "qwen3", "backend": "openai", "base_url": a.base_url},
                     {"name": "hidden-big", "backend": "openai", "base_url": b.base_url})
    a.add(*[Reply({"error": {"message": "overloaded at gpu7.internal"}}, status=503) for _ in range(4)])
    with running_proxy(MODELS=entries, FALLBACKS='{"qwen3": ["hidden-big"]}', ALLOWED_MODELS="qwen3",
                       ENABLE_AUTH="true", API_KEY_SECRET="sk-client", MAX_RETRIES="0", WORKERS="1") as proxy:
        headers = {"Authorization": "Bearer sk-client"}
        r = requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": "qwen3"}, headers=headers,
                          timeout=10)
        assert r.status_code == 200 and r.json()["model"] == "qwen3", r.text
        assert r.headers["X-Served-Model"] == "qwen3" and "hidden" not in str(r.headers)
        with requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": "qwen3", "stream": True},
                           headers=headers, timeout=10, stream=True) as s:
            assert s.status_code == 200 and s.headers["X-Served-Model"] == "qwen3" and b"hidden" not in s.raw.read()
        for anonymous in ({}, {"Authorization": "Bearer wrong"}):
            r = requests.get(proxy.url + "/health", headers=anonymous, timeout=10)
            assert (r.status_code, r.json()) == (503, {"status": "unhealthy"}), r.text  # qwen3's pool is down
        r = requests.get(proxy.url + "/health", headers={"x-api-key": "sk-client"}, timeout=10)
        rows = r.json()["deployments"]
        assert [row["model"] for row in rows] == ["qwen3"] and rows[0]["served_by"] == f"127.0.0.1:{a.port}"
        assert rows[0]["state"] == "down" and "overloaded" in rows[0]["error"] and "hidden" not in r.text


def test_allow_list_and_auth_apply_on_routes(fakes):
    a, _, _ = fakes
    entries = models({"name": "*", "backend": "openai", "base_url": a.base_url, "api_key_env": "UPSTREAM_KEY_A"})
    with running_proxy(MODELS=entries, UPSTREAM_KEY_A="sk-upstream-a", ENABLE_AUTH="true", API_KEY_SECRET="sk-client",
                       ALLOWED_MODELS="gpt-*") as proxy:
        assert requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": "gpt-4o"},
                             timeout=10).status_code == 401
        headers = {"Authorization": "Bearer sk-client"}
        r = requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": "llama"}, headers=headers,
                          timeout=10)
        assert r.status_code in (403, 404) and a.received == []
        r = requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": "gpt-4o"}, headers=headers,
                          timeout=10)
        assert r.status_code == 200
        assert a.received[-1].headers["Authorization"] == "Bearer sk-upstream-a"  # the deployment's own key


def _one_request(proxy, stream: bool) -> str:
    """'ok', 'started' (a stream that broke after its first byte reached us) or 'failed'."""
    try:
        with requests.post(proxy.base_url + "/chat/completions", json={**CHAT, "model": "m", "stream": stream},
                           stream=True, timeout=30) as r:
            if r.status_code != 200:
                return "failed"
            try:
                body = b"".join(r.iter_content(None))
            except requests.RequestException:
                return "started"
            if stream:
                return "ok" if body.rstrip().endswith(b"data: [DONE]") else "started"
            return "ok" if json.loads(body)["choices"] else "failed"
    except requests.RequestException:
        return "failed"


def test_a_deployment_killed_under_steady_load_fails_no_request_that_had_not_started():
    from tests.fakes.fake_process import fake_process
    with fake_process(delay=0.3) as a, fake_process(delay=0.3) as b:
        entries = models({"name": "m", "backend": "openai", "base_url": a.base_url},
                         {"name": "m", "backend": "openai", "base_url": b.base_url})
        with running_proxy(MODELS=entries, WORKERS="2") as proxy:
            outcomes: list[tuple[bool, str]] = []
            stop = threading.Event()

            def client(i: int) -> None:
                stream = i % 2 == 0
                while not stop.is_set():
                    outcomes.append((stream, _one_request(proxy, stream)))

            threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while len(outcomes) < 16 and time.monotonic() < deadline:
                stop.wait(0.05)
            a.kill()  # SIGKILL mid-load: open connections reset, new ones refused
            killed_at = len(outcomes)
            while len(outcomes) < killed_at + 32 and time.monotonic() < deadline:
                stop.wait(0.05)
            stop.set()
            for t in threads:
                t.join(30)
            log = proxy.read_log()
        assert f"deployment 127.0.0.1:{a.port} of m failed" in log  # requests in flight there moved over
        failed = [o for o in outcomes if o[1] == "failed"]
        assert failed == [], outcomes
        assert all(stream for stream, outcome in outcomes if outcome == "started")  # only streams already going
        assert len(outcomes) >= killed_at + 32
        after = outcomes[killed_at + 8:]  # requests that began after the kill: all served, streams included
        assert {(True, "ok"), (False, "ok")} == set(after), after


def test_per_key_limits_across_workers(fakes):
    a, _, _ = fakes
    limits = '{"TEAM_A_KEY": {"rpm": 3}, "TEAM_B_KEY": {"tpm": 30}}'
    with running_proxy(TARGET_BASE_URL=a.base_url, ENABLE_AUTH="true", API_KEY_SECRET="sk-admin", KEY_LIMITS=limits,
                       TEAM_A_KEY="sk-team-a", TEAM_B_KEY="sk-team-b", WORKERS="2") as proxy:
        def team_a():  # a new connection each time: the two workers share the count
            return openai_sdk(proxy, "sk-team-a")

        with ThreadPoolExecutor(3) as pool:  # three at once, so both workers take some
            list(pool.map(lambda _: team_a().chat.completions.create(model="m", messages=CHAT["messages"]), range(3)))
        with pytest.raises(openai.RateLimitError) as info:
            team_a().chat.completions.create(model="m", messages=CHAT["messages"])
        err = info.value
        assert err.code == "rate_limit_exceeded" and "3 requests per minute" in err.message
        assert 1 <= int(err.response.headers["Retry-After"]) <= 120
        assert err.body["type"] == "rate_limit_error"
        # the admin key has no budget; team B's is in tokens (12 per answer from the upstream's usage; each request
        # may use its prompt and 3: the third's does not fit what is left)
        admin = openai_sdk(proxy, "sk-admin")
        for _ in range(5):
            admin.chat.completions.create(model="m", messages=CHAT["messages"])
        team_b = openai_sdk(proxy, "sk-team-b")
        team_b.chat.completions.create(model="m", messages=CHAT["messages"], max_tokens=3)
        stream = team_b.chat.completions.create(model="m", messages=CHAT["messages"], stream=True, max_tokens=3,
                                                stream_options={"include_usage": True})
        assert [c for c in stream]
        with pytest.raises(openai.RateLimitError) as info:
            team_b.chat.completions.create(model="m", messages=CHAT["messages"], max_tokens=3)
        assert "30 tokens per minute" in info.value.message
        assert len(a.received) == 3 + 5 + 2


def test_front_doors_route_and_fall_back_too(fakes):
    import anthropic
    a, b, _ = fakes
    entries = models({"name": "claude-local", "backend": "openai", "base_url": a.base_url},
                     {"name": "backup", "backend": "openai", "base_url": b.base_url})
    for _ in range(2):
        a.add(Reply({"error": {"message": "overloaded"}}, status=503))
    with running_proxy(MODELS=entries, FALLBACKS='{"claude-local": ["backup"]}', MAX_RETRIES="0") as proxy:
        client = anthropic_sdk(proxy, "sk-client")
        message = client.messages.create(model="claude-local", max_tokens=32,
                                         messages=[{"role": "user", "content": "hi"}])
        assert message.content[0].text == b.default_content and message.model == "claude-local"
        assert b.received[-1].json()["model"] == "backup"
        responses = openai_sdk(proxy, "sk-client")
        answer = responses.responses.create(model="claude-local", input="hi")
        assert answer.output_text == b.default_content and answer.model == "claude-local"
        with pytest.raises(anthropic.NotFoundError) as info:  # the 404 in Anthropic's error shape
            client.messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        assert "nope" in str(info.value) and info.value.body["type"] == "error"
        # count_tokens is answered by the proxy, but only for a name the messages route would serve
        assert client.messages.count_tokens(model="claude-local", messages=[{"role": "user", "content": "hi"}]
                                            ).input_tokens > 0
        with pytest.raises(anthropic.NotFoundError):
            client.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "hi"}])


def test_key_limits_answer_in_each_front_doors_shape(fakes):
    import anthropic
    a, _, _ = fakes
    with running_proxy(TARGET_BASE_URL=a.base_url, ENABLE_AUTH="true", KEY_LIMITS='{"TEAM_A_KEY": {"rpm": 1}}',
                       TEAM_A_KEY="sk-team-a") as proxy:
        client = anthropic_sdk(proxy, "sk-team-a")
        client.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.RateLimitError) as info:
            client.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "rate_limit_error"
        assert int(info.value.response.headers["Retry-After"]) >= 1


def _states(proxy) -> dict[str, str]:
    return {d["served_by"]: d["state"] for d in requests.get(proxy.url + "/health", timeout=10).json()["deployments"]}


def test_the_active_probe_takes_a_dead_deployment_out_and_brings_it_back(fakes):
    from tests.fakes.fake_process import fake_process
    _, b, _ = fakes
    with fake_process() as a:
        entries = models({"name": "m", "backend": "openai", "base_url": a.base_url},
                         {"name": "m", "backend": "openai", "base_url": b.base_url})
        where = f"127.0.0.1:{a.port}"
        with running_proxy(MODELS=entries, HEALTH_PROBE_SECONDS="0.2", COOLDOWN_SECONDS="60", WORKERS="1") as proxy:
            assert _states(proxy)[where] == "up"
            a.kill()
            assert poll(lambda: _states(proxy)[where] == "down", 15)  # no request had to find it dead
            health = requests.get(proxy.url + "/health", timeout=10)
            assert health.status_code == 200 and health.json()["down"] == [f"m at {where}"]
            with fake_process(port=a.port):  # back on the same port: up long before the 60 s cooldown ends
                assert poll(lambda: _states(proxy)[where] == "up", 15)


def test_metrics_and_journals_name_the_deployment(fakes, tmp_path):
    a, b, _ = fakes
    entries = models({"name": "m", "backend": "openai", "base_url": a.base_url},
                     {"name": "other", "backend": "openai", "base_url": b.base_url})
    with running_proxy(MODELS=entries, LOG_DIR=str(tmp_path)) as proxy:
        assert chat(proxy, "m").status_code == 200 and chat(proxy, "other").status_code == 200
        metrics = requests.get(proxy.url + "/metrics", timeout=10).text
        assert f'deployment="127.0.0.1:{a.port}"' in metrics and f'deployment="127.0.0.1:{b.port}"' in metrics
    records = [json.loads(line) for f in tmp_path.rglob("*.jsonl") for line in f.read_text().splitlines()]
    served = {(r.get("served_model"), r.get("deployment")) for r in records}
    assert ("m", f"127.0.0.1:{a.port}") in served and ("other", f"127.0.0.1:{b.port}") in served


def test_a_fallback_onto_argo_is_resolved_as_the_fallback_model(fakes):
    """ARGO resolves the model the deployment serves (the fallback's name), not the one asked for: `local` is
    no ARGO model, and ARGO answered 404 model_not_found where the fallback should have served."""
    from tests.fakes.fake_argo import CHAT_PATH, FakeArgo
    a, _, _ = fakes
    with FakeArgo() as argo:
        entries = models({"name": "local", "backend": "openai", "base_url": a.base_url},
                         {"name": "argo:gpt-4o", "backend": "argo", "base_url": argo.base_url + "/api/v1/resource/"})
        a.add(*[Reply({"error": {"message": "down"}}, status=503) for _ in range(3)])
        with running_proxy(MODELS=entries, FALLBACKS='{"local": ["argo:gpt-4o"]}', ARGO_USER="alice",
                           MAX_RETRIES="0") as proxy:
            r = chat(proxy, "local")
            assert r.status_code == 200 and r.headers["X-Served-Model"] == "argo:gpt-4o"
            assert r.json()["model"] == "local"  # the answer names the model asked for
            assert [q.json["model"] for q in argo.requests_to(CHAT_PATH)] == ["gpt4o"]


def test_argo_next_to_a_local_model(fakes):
    from tests.fakes.fake_argo import CHAT_PATH, FakeArgo
    a, _, _ = fakes
    with FakeArgo() as argo:
        entries = models({"name": "argo:*", "backend": "argo", "base_url": argo.base_url + "/api/v1/resource/"},
                         {"name": "qwen3", "backend": "openai", "base_url": a.base_url,
                          "params": {"think_mode": "reasoning"}})
        a.default_content = "<think>hmm</think>Local answer."
        with running_proxy(MODELS=entries, ARGO_USER="alice") as proxy:
            client = openai_sdk(proxy, "sk-client")
            hosted = client.chat.completions.with_raw_response.create(model="argo:gpt-4o", messages=CHAT["messages"])
            assert hosted.headers["X-Served-By"] == f"127.0.0.1:{argo.port}"
            sent = argo.requests_to(CHAT_PATH)[-1].json
            assert sent["model"] == "gpt4o" and sent["user"] == "alice"
            local = client.chat.completions.create(model="qwen3", messages=CHAT["messages"])
            message = local.choices[0].message
            assert message.content == "Local answer." and message.model_extra["reasoning_content"] == "hmm"
