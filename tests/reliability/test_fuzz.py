"""Hypothesis-generated request bodies through the running app: the proxy never answers a 5xx of its own
making (the fake upstream always answers 200) and its worker never dies (issue 7, part 3)."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream, chat_chunks, chat_completion
from tests.proxy_process import running_proxy
from tests.reliability.support import quick_ok, worker_pids

pytestmark = pytest.mark.timeout(90)


class SteadyFake(FakeOpenAI):
    """Answers every request with a well-formed answer, whatever the body (so any 5xx is the proxy's)."""

    def default_answer(self, method, path, body):
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = {}
        wants_stream = isinstance(req, dict) and req.get("stream") is True
        if path.endswith("/models"):
            return super().default_answer(method, path, b"")
        if path.endswith("/embeddings"):
            return Reply({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
                          "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        if path.endswith("/completions") and not path.endswith("chat/completions"):
            obj = {"id": "c", "object": "text_completion", "created": 1, "model": "m",
                   "choices": [{"index": 0, "text": "<think>x</think>ok", "finish_reason": "stop", "logprobs": None}]}
            if wants_stream:
                return Stream([{**obj, "choices": [{**obj["choices"][0]}]}, "[DONE]"])
            return Reply(obj)
        if wants_stream:
            return Stream(chat_chunks(["<th", "ink>a</think>", "b"], usage=True))
        return Reply(chat_completion("<think>a</think>b"))


@pytest.fixture(scope="module")
def env():
    with SteadyFake() as fake:
        with running_proxy(TARGET_BASE_URL=fake.base_url, MAX_BODY_BYTES="200000",
                           LLM_PARAMS="model=fast,temperature=0.1,append_to_last_user_message=!;model=*,top_k=3") as p:
            quick_ok(p, timeout=10)
            pids = worker_pids(p)
            yield fake, p, pids
            assert worker_pids(p) == pids
    log = p.stop()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
contents = st.one_of(st.text(max_size=40), st.lists(st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "input_audio", "x"]),
                           "text": st.text(max_size=20)}),
    st.fixed_dictionaries({"type": st.just("image_url"),
                           "image_url": st.fixed_dictionaries({"url": st.sampled_from(
                               ["data:image/png;base64,AAAA", "ftp://x/y.png", "http://127.0.0.1:1/a.png", ""])})}),
    json_values), max_size=3), json_values)
messages = st.lists(st.one_of(st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "robot", ""]),
     "content": contents}, optional={"name": st.text(max_size=10), "tool_calls": json_values,
                                     "tool_call_id": json_values}), json_values), max_size=4)
known = {
    "model": st.one_of(st.sampled_from(["m", "fast", "DeepSeek-R1", "", " "]), json_values),
    "messages": st.one_of(messages, json_values),
    "prompt": json_values, "input": json_values,
    "stream": st.one_of(st.booleans(), json_values),
    "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": st.booleans()}), json_values),
    "temperature": st.one_of(st.floats(allow_nan=False, allow_infinity=False), json_values),
    "top_p": json_values, "n": st.one_of(st.integers(-3, 3), json_values),
    "max_tokens": st.one_of(st.integers(-5, 10 ** 20), json_values), "stop": json_values,
    "tools": json_values, "tool_choice": json_values, "response_format": json_values, "user": json_values,
    "logit_bias": json_values, "seed": json_values, "timeout": json_values,
}
bodies = st.one_of(
    st.fixed_dictionaries({}, optional=known).flatmap(
        lambda d: st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(lambda extra: {**extra, **d})),
    json_values,
)
ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/chat/completions"]


def check(r: requests.Response) -> None:
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400:
        err = r.json()["error"]
        assert err["message"] and err["type"] and err["code"] != "internal_error", err
    if r.headers.get("Content-Type", "").startswith("text/event-stream"):
        assert "internal_error" not in r.text and "server_error" not in r.text, r.text[-500:]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=bodies, route=st.sampled_from(ROUTES))
def test_generated_json_bodies_never_get_a_proxy_5xx(env, body, route):
    fake, p, pids = env
    r = requests.post(p.url + route, data=json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass"),
                      headers={"Content-Type": "application/json"}, timeout=15)
    check(r)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(raw=st.one_of(st.binary(max_size=300),
                     st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                     st.builds(lambda b, cut: b[:cut], st.just(json.dumps(
                         {"model": "m", "messages": [{"role": "user", "content": "héllo \u0000 wörld"}]}).encode()),
                         st.integers(0, 80))),
       route=st.sampled_from(ROUTES))
def test_generated_raw_bytes_never_get_a_proxy_5xx(env, raw, route):
    fake, p, pids = env
    r = requests.post(p.url + route, data=raw, headers={"Content-Type": "application/json"}, timeout=15)
    check(r)


def test_worker_is_the_same_after_fuzzing(env):
    fake, p, pids = env
    assert worker_pids(p) == pids
    quick_ok(p)
