"""A provider is a package: tests/example_provider/cot_proxy_provider_toy (a made-up "toy" protocol), copied
into a temporary directory that only the proxy's PYTHONPATH names, is found at start-up and served by the
real Gunicorn app, as BACKEND=toy and as a routing entry's backend, with no other file changed. It gets auth,
validation, think tags, stream <-> non-stream, sanitized errors and metrics from the pipeline, and its key
from its own setting (TOY_API_KEY) or from a routing entry's api_key_env, as its Provider record says."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.clients import openai_sdk
from tests.fakes.fake_toy import FakeToy
from tests.proxy_process import ROOT, running_proxy

MSG = [{"role": "user", "content": "hi"}]
PACKAGE = Path(__file__).resolve().parent.parent / "example_provider" / "cot_proxy_provider_toy"


@pytest.fixture(scope="module")
def provider_path(tmp_path_factory) -> str:
    """The proxy's PYTHONPATH: the project, then a temporary directory holding a copy of the package."""
    where = tmp_path_factory.mktemp("providers")
    shutil.copytree(PACKAGE, where / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    return os.pathsep.join([str(ROOT), str(where)])


@pytest.fixture(scope="module")
def toy_proxy(provider_path):
    with FakeToy(key="provider-credential") as toy, \
            running_proxy(PYTHONPATH=provider_path, BACKEND="toy", TARGET_BASE_URL=toy.base_url, ENABLE_AUTH="true",
                          API_KEY_SECRET="toy-key", TOY_API_KEY="provider-credential", MAX_RETRIES="0") as proxy:
        yield proxy, toy


@pytest.fixture(scope="module")
def routed_proxy(provider_path):
    """Routing mode: a `models` entry names the toy backend, its base_url and the variable holding its key."""
    models = [{"name": "toy-*", "backend": "toy", "base_url": "", "api_key_env": "TOY_ROUTED_KEY"}]
    with FakeToy(key="routed-credential") as toy:
        models[0]["base_url"] = toy.base_url
        with running_proxy(PYTHONPATH=provider_path, MODELS=json.dumps(models), TOY_ROUTED_KEY="routed-credential",
                           ENABLE_AUTH="true", API_KEY_SECRET="toy-key", MAX_RETRIES="0") as proxy:
            yield proxy, toy


def client(proxy, key: str = "toy-key") -> openai.OpenAI:
    return openai_sdk(proxy, key)


def test_whole_and_streamed_answers_with_pipeline_transforms(toy_proxy):
    proxy, toy = toy_proxy
    out = client(proxy).chat.completions.create(model="toy-small", messages=MSG, max_tokens=20)
    assert out.choices[0].message.content == "Toy answer"  # think tags stripped by the pipeline
    assert out.usage.total_tokens == 7
    sent = toy.received[-1]
    assert sent["path"] == "/generate" and sent["body"]["prompt"] == "user: hi"
    assert sent["body"]["max_new_tokens"] == 20 and sent["body"]["stream"] is False
    assert sent["headers"]["Authorization"] == "Bearer provider-credential"  # TOY_API_KEY, never the client's key

    stream = client(proxy).chat.completions.create(model="toy-small", messages=MSG, stream=True,
                                                   stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Toy answer"
    assert chunks[-1].usage.completion_tokens == 4


def test_guard_and_errors_apply_to_the_new_backend(toy_proxy):
    proxy, toy = toy_proxy
    with pytest.raises(openai.AuthenticationError):
        client(proxy, "wrong").chat.completions.create(model="toy-small", messages=MSG)
    with pytest.raises(openai.BadRequestError) as bad:
        client(proxy).chat.completions.create(model="toy-small", messages=MSG, top_p=7)
    assert bad.value.param == "top_p"
    with pytest.raises(openai.APIStatusError) as err:
        client(proxy).chat.completions.create(model="toy-broken", messages=MSG)
    assert err.value.status_code == 503
    message = err.value.body["message"]
    assert message.startswith("overloaded") and "hunter2" not in message and "10.0.0.7" not in message
    r = requests.post(proxy.base_url + "/embeddings", json={"model": "toy-small", "input": "x"},
                      headers={"Authorization": "Bearer toy-key"})
    assert r.status_code == 404  # a kind the backend does not declare


def test_models_and_metrics(toy_proxy):
    proxy, _ = toy_proxy
    client(proxy).chat.completions.create(model="toy-small", messages=MSG)
    assert [m.id for m in client(proxy).models.list()] == ["toy-small", "toy-large"]
    text = requests.get(proxy.url + "/metrics", headers={"Authorization": "Bearer toy-key"}).text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    prompt = sum(s.value for s in samples if s.name == "cot_proxy_tokens_total"
                 and s.labels == {"model": "toy-small", "type": "prompt"})
    assert prompt >= 3  # (per-model token counts come from the usage the backend reported)


def test_a_routing_entry_gives_the_new_provider_its_url_and_key(routed_proxy):
    proxy, toy = routed_proxy
    response = requests.post(proxy.base_url + "/chat/completions", headers={"Authorization": "Bearer toy-key"},
                             json={"model": "toy-small", "messages": MSG, "max_tokens": 20})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Toy answer"
    assert response.headers["X-Served-By"] == toy.base_url.removeprefix("http://").rstrip("/")
    sent = toy.received[-1]
    assert sent["path"] == "/generate" and sent["body"]["model"] == "toy-small"
    assert sent["body"]["prompt"] == "user: hi" and sent["body"]["max_new_tokens"] == 20
    assert sent["headers"]["Authorization"] == "Bearer routed-credential"  # from the entry's api_key_env

    chunks = list(client(proxy).chat.completions.create(model="toy-large", messages=MSG, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Toy answer"
    assert toy.received[-1]["body"]["stream"] is True
    assert toy.received[-1]["headers"]["Authorization"] == "Bearer routed-credential"
