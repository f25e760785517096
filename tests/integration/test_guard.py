"""Guard and observe, through the running app (Gunicorn) against a fake upstream: API-key auth (configured and
generated keys, across workers), validation, the model allow-list, sanitized errors with request ids, and
/metrics adding up across worker processes. Driven by the openai SDK and raw HTTP."""

from __future__ import annotations

import glob
import os
import re
import tempfile
import threading
import time

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.clients import openai_sdk
from tests.fakes.fake_openai import Reply, Stream, chat_chunks
from tests.proxy_process import free_port, running_proxy

MSG = [{"role": "user", "content": "hi"}]


sdk = openai_sdk


def metric_samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _without_route(text: str, route: str) -> str:
    return "\n".join(line for line in text.splitlines() if f'route="{route}"' not in line)


def total(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module")
def guarded(module_fake):
    """Auth with two configured keys, an allow-list, the upstream's own key; one worker."""
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET="k1,k2",
                       ALLOWED_MODELS="fake-*,gpt-4o", OPENAI_API_KEY="sk-upstream-secret", MAX_RETRIES="0") as p:
        yield p


# ------------------------------------------------------------------ auth
def test_missing_and_wrong_keys_get_401_with_openai_error(guarded, upstream):
    for headers, code in (({}, "missing_api_key"), ({"Authorization": "Bearer nope"}, "invalid_api_key"),
                          ({"x-api-key": "k3"}, "invalid_api_key"), ({"Authorization": "Basic azE6"}, "missing_api_key"),
                          ({"Authorization": "Bearer k1x"}, "invalid_api_key")):
        r = requests.post(guarded.base_url + "/chat/completions", json={"model": "fake-model", "messages": MSG},
                          headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"].startswith('Bearer realm="cot_proxy"')
        err = r.json()["error"]
        assert err["type"] == "authentication_error" and err["code"] == code and err["param"] is None
        assert err["request_id"] == r.headers["X-Request-ID"]
        assert "nope" not in r.text and "k1" not in r.text
    # Unknown routes and the model list are behind the key too; nothing reached the upstream.
    assert requests.get(guarded.base_url + "/models").status_code == 401
    assert requests.get(guarded.url + "/some/forwarded/path").status_code == 401
    assert upstream.received == []


def test_sdk_with_either_key_and_the_client_key_never_goes_upstream(guarded, upstream):
    for key in ("k1", "k2"):
        out = sdk(guarded, key).chat.completions.create(model="fake-model", messages=MSG)
        assert out.choices[0].message.content.startswith("Hello")
        got = upstream.received[-1]
        assert got.headers["Authorization"] == "Bearer sk-upstream-secret"  # the proxy's upstream key
        assert key not in str(got.headers)
    stream = sdk(guarded, "k2").chat.completions.create(model="fake-model", messages=MSG, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from the fake upstream!"
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(guarded, "wrong").chat.completions.create(model="fake-model", messages=MSG)
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"


def test_x_api_key_is_accepted_and_stripped(guarded, upstream):
    r = requests.post(guarded.base_url + "/chat/completions", json={"model": "fake-model", "messages": MSG},
                      headers={"x-api-key": "k2", "X-Custom": "kept"})
    assert r.status_code == 200
    got = upstream.received[-1]
    assert "X-Api-Key" not in got.headers and "x-api-key" not in {k.lower() for k in got.headers}
    assert got.headers["Authorization"] == "Bearer sk-upstream-secret" and got.headers["X-Custom"] == "kept"
    # A pass-through route also gets the upstream key, never the client's.
    r = requests.get(guarded.url + "/v1/files", headers={"Authorization": "Bearer k1"})
    assert r.status_code == 200 and upstream.received[-1].headers["Authorization"] == "Bearer sk-upstream-secret"


def test_health_is_open_and_metrics_are_protected(guarded, upstream):
    assert requests.get(guarded.url + "/health").status_code in (200, 503)  # open: never 401
    # ... but without an accepted key it tells the status only, not where the upstream is (issue 20, item 7)
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = requests.get(guarded.url + "/health", headers=headers)
        assert r.json() == {"status": "healthy"} and r.status_code == 200, r.text
    for headers in ({"Authorization": "Bearer k2"}, {"x-api-key": "k1"}, {"api-key": "k1"}):
        r = requests.get(guarded.url + "/health", headers=headers)
        assert r.json()["target_url"] == upstream.base_url, r.text
    r = requests.get(guarded.url + "/metrics")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"]
    r = requests.get(guarded.url + "/metrics", headers={"Authorization": "Bearer k1"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert "cot_proxy_requests_total" in r.text
    assert "k1" not in r.text and "k2" not in r.text and "sk-upstream-secret" not in r.text


# ------------------------------------------------------------------ validation and allow-list
@pytest.mark.parametrize("body, param", [
    ({"messages": MSG}, "model"),
    ({"model": "fake-model", "messages": []}, "messages"),
    ({"model": "fake-model", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "fake-model", "messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
    ({"model": "fake-model", "messages": MSG, "temperature": 3}, "temperature"),
    ({"model": "fake-model", "messages": MSG, "top_p": -1}, "top_p"),
    ({"model": "fake-model", "messages": MSG, "n": 0}, "n"),
    ({"model": "fake-model", "messages": MSG, "max_tokens": 0}, "max_tokens"),
    ({"model": "fake-model", "messages": MSG, "stream": "true"}, "stream"),
])
def test_invalid_requests_get_400_naming_the_param(guarded, upstream, body, param):
    r = requests.post(guarded.base_url + "/chat/completions", json=body, headers={"Authorization": "Bearer k1"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["request_id"]
    assert upstream.received == []


def test_invalid_completions_and_embeddings(guarded, upstream):
    h = {"Authorization": "Bearer k1"}
    r = requests.post(guarded.base_url + "/completions", json={"model": "fake-model", "prompt": {"a": 1}}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    r = requests.post(guarded.base_url + "/embeddings", json={"model": "fake-model"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    r = requests.post(guarded.base_url + "/embeddings", data=b"[1, 2]", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400
    with pytest.raises(openai.BadRequestError) as info:
        sdk(guarded, "k1").chat.completions.create(model="fake-model", messages=MSG, temperature=9)
    assert info.value.param == "temperature"
    assert upstream.received == []


def test_unknown_fields_are_forwarded_untouched(guarded, upstream):
    body = {"model": "fake-model", "messages": MSG, "top_k": 5, "repetition_penalty": 1.1,
            "chat_template_kwargs": {"enable_thinking": False}}
    r = requests.post(guarded.base_url + "/chat/completions", json=body, headers={"Authorization": "Bearer k1"})
    assert r.status_code == 200 and upstream.received[-1].json() == body


def test_allow_list_403_and_filtered_model_list(guarded, upstream):
    with pytest.raises(openai.PermissionDeniedError) as info:
        sdk(guarded, "k1").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code == 403 and info.value.code == "model_not_allowed"
    assert upstream.received == []
    assert sdk(guarded, "k1").chat.completions.create(model="gpt-4o", messages=MSG).choices
    upstream.add(Reply({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "x"}
                                                   for m in ("fake-a", "gpt-4o", "gpt-4o-mini", "o1", "fake-b")]}))
    assert [m.id for m in sdk(guarded, "k1").models.list()] == ["fake-a", "gpt-4o", "fake-b"]


# ------------------------------------------------------------------ sanitized errors, request ids
def test_upstream_errors_keep_status_but_lose_secrets(guarded, upstream):
    upstream.add(Reply({"error": {"message": "Incorrect API key provided: sk-upst****cret. Upstream "
                                             "http://admin:pw@10.1.2.3:8080/v1?key=zzz said no.",
                                  "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
                       status=401))
    r = requests.post(guarded.base_url + "/chat/completions", json={"model": "fake-model", "messages": MSG},
                      headers={"Authorization": "Bearer k1", "X-Request-ID": "req-abc-123"})
    assert r.status_code == 401 and r.headers["X-Request-ID"] == "req-abc-123"
    err = r.json()["error"]
    assert err["code"] == "invalid_api_key" and err["request_id"] == r.headers["X-Cot-Proxy-Request-ID"]
    assert err["client_request_id"] == "req-abc-123"  # the client's, beside the proxy's own
    for leaked in ("sk-upst", "cret", "admin", "pw@", "10.1.2.3", "zzz"):
        assert leaked not in err["message"], err["message"]
    # whose key was refused, then the upstream's own words
    assert err["message"].startswith("The upstream refused the proxy's key (OPENAI_API_KEY")
    assert "(401): Incorrect API key provided" in err["message"]

    upstream.add(Reply({"detail": "Traceback (most recent call last):\n  File \"/srv/app/main.py\", line 3, in x\n"
                                  "KeyError: 'model'"}, status=500))
    r = requests.post(guarded.base_url + "/chat/completions", json={"model": "fake-model", "messages": MSG},
                      headers={"Authorization": "Bearer k1"})
    assert r.status_code == 500
    assert r.json()["error"]["message"] == "KeyError: 'model'" and r.headers["X-Request-ID"]


def test_stream_error_frame_carries_request_id(guarded, upstream):
    upstream.add(Stream(chat_chunks(["a", "b", "c"]), cut_after=2))
    r = requests.post(guarded.base_url + "/chat/completions", stream=True, headers={"Authorization": "Bearer k1",
                                                                                    "X-Request-ID": "rid-9"},
                      json={"model": "fake-model", "messages": MSG, "stream": True})
    text = r.content.decode().replace(" ", "")
    assert f'"request_id":"{r.headers["X-Cot-Proxy-Request-ID"]}"' in text and '"client_request_id":"rid-9"' in text
    assert r.headers["X-Request-ID"] == "rid-9"


def test_connection_errors_say_what_failed():
    port = free_port()  # nothing listens here
    with running_proxy(TARGET_BASE_URL=f"http://127.0.0.1:{port}/v1", MAX_RETRIES="0") as p:
        r = requests.post(p.base_url + "/chat/completions", json={"model": "m", "messages": MSG})
        err = r.json()["error"]
        assert r.status_code == 502 and "refused" in err["message"] and err["request_id"] == r.headers["X-Request-ID"]


# ------------------------------------------------------------------ generated key, workers, metrics
def _read_key(proxy) -> tuple[str, list[str]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = proxy.read_log().splitlines(keepends=True)
        for line in lines:
            match = re.search(r"generated API key for every worker of this run: (\S+)", line)
            if match:
                return match.group(1), lines
        time.sleep(0.05)
    raise AssertionError("no generated key printed: " + proxy.read_log())


def test_generated_key_is_shared_by_every_worker_and_metrics_add_up(module_fake):
    metrics_dir = tempfile.mkdtemp(prefix="cot_proxy_test_metrics_")
    open(os.path.join(metrics_dir, "counter_999999.db"), "wb").close()  # a stale file from "last run"
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ENABLE_AUTH="true", WORKERS="2",
                       PROMETHEUS_MULTIPROC_DIR=metrics_dir) as proxy:
        key, first_lines = _read_key(proxy)
        assert key.startswith("sk-proxy-") and len(key) > 30
        assert not glob.glob(os.path.join(metrics_dir, "*_999999.db"))  # emptied at start
        def worker_files() -> set[str]:
            return {re.search(r"_(\d+)\.db$", f).group(1) for f in glob.glob(os.path.join(metrics_dir, "counter_*.db"))}

        n_whole, n_stream = 0, 10
        deadline = time.monotonic() + 30
        # A new connection each time, so the kernel spreads them over both workers; until both have answered
        # (the second may still be loading the app when the first answers).
        while n_whole < 40 or len(worker_files()) < 2:
            assert time.monotonic() < deadline, f"one worker answered {n_whole} requests alone"
            r = requests.post(proxy.base_url + "/chat/completions", json={"model": "fake-model", "messages": MSG},
                              headers={"Authorization": f"Bearer {key}", "Connection": "close"})
            assert r.status_code == 200, r.text
            n_whole += 1
        for _ in range(n_stream):
            s = sdk(proxy, key).chat.completions.create(model="fake-model", messages=MSG, stream=True,
                                                        stream_options={"include_usage": True})
            assert [c for c in s]
        assert requests.get(proxy.base_url + "/models", headers={"Connection": "close"}).status_code == 401
        assert len(worker_files()) == 2  # both workers answered (and so both accepted the one generated key)

        scrapes = [requests.get(proxy.url + "/metrics", headers={"x-api-key": key, "Connection": "close"})
                   for _ in range(6)]
        assert all(r.status_code == 200 for r in scrapes)
        # Same totals from every worker (scrapes go through the door like any route and count themselves).
        assert len({_without_route(r.text, "metrics").split("cot_proxy_streams_in_flight")[0] for r in scrapes}) == 1
        assert total(metric_samples(scrapes[-1].text), "cot_proxy_requests_total", route="metrics") == 5
        samples = metric_samples(scrapes[-1].text)
        n = n_whole + n_stream
        assert total(samples, "cot_proxy_requests_total", route="chat", model="fake-model", status="200") == n
        assert total(samples, "cot_proxy_requests_total", status="401") == 1
        assert total(samples, "cot_proxy_tokens_total", model="fake-model", type="prompt") == 5 * n
        assert total(samples, "cot_proxy_tokens_total", model="fake-model", type="completion") == 7 * n
        assert total(samples, "cot_proxy_upstream_latency_seconds_count", route="chat") == n
        assert total(samples, "cot_proxy_request_duration_seconds_count", route="chat") == n
        assert total(samples, "cot_proxy_time_to_first_token_seconds_count", route="chat") == n_stream
        assert total(samples, "cot_proxy_request_bytes_total", route="chat") > 0
        assert total(samples, "cot_proxy_response_bytes_total", route="chat") > 0
        assert total(samples, "cot_proxy_streams_in_flight") == 0
    log = proxy.log  # the whole log: stop() reads it from its file
    assert log.count(key) == 1  # printed once, by the master, never by the workers or logs
    assert os.path.isdir(metrics_dir)  # the operator's directory is kept


def test_streams_in_flight_and_public_metrics(module_fake, tmp_path):
    # A private temporary directory: other test runs on the machine make metrics directories too.
    pattern = os.path.join(tmp_path, "cot_proxy_metrics_*")
    before = set(glob.glob(pattern))
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET="k1",
                       METRICS_PUBLIC="true", WORKERS="2", TMPDIR=str(tmp_path)) as proxy:
        created = set(glob.glob(pattern)) - before
        assert len(created) == 1  # a fresh directory for this run
        metrics_dir = created.pop()
        module_fake.add(Stream(chat_chunks(["slow", " stream"]), delay=1.5))
        done = threading.Event()

        def stream() -> None:
            s = sdk(proxy, "k1").chat.completions.create(model="fake-model", messages=MSG, stream=True)
            for _ in s:
                pass
            done.set()

        t = threading.Thread(target=stream)
        t.start()
        deadline, during = time.monotonic() + 5, None
        while time.monotonic() < deadline and not done.is_set():
            r = requests.get(proxy.url + "/metrics", headers={"Connection": "close"})  # public: no key
            assert r.status_code == 200
            during = total(metric_samples(r.text), "cot_proxy_streams_in_flight")
            if during == 1:
                break
            time.sleep(0.05)
        assert during == 1
        t.join(10)
        after = total(metric_samples(requests.get(proxy.url + "/metrics").text), "cot_proxy_streams_in_flight")
        assert after == 0
        assert requests.get(proxy.base_url + "/models").status_code == 401  # the API stays protected
    assert not os.path.exists(metrics_dir)  # the run's own temporary directory is removed at exit


def test_a_refused_request_is_counted_under_the_model_it_named(module_fake):
    """Two 400s (a bad temperature) for an allowed model: /metrics labels them with that model, not "none"."""
    with running_proxy(TARGET_BASE_URL=module_fake.base_url, ALLOWED_MODELS="gpt-4o*", WORKERS="1") as proxy:
        for _ in range(2):
            r = requests.post(proxy.base_url + "/chat/completions",
                              json={"model": "gpt-4o", "messages": MSG, "temperature": 5})
            assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
        samples = metric_samples(requests.get(proxy.url + "/metrics").text)
        assert total(samples, "cot_proxy_requests_total", route="chat", model="gpt-4o", status="400") == 2
        assert total(samples, "cot_proxy_requests_total", route="chat", model="none") == 0
