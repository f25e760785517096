"""ARGO's own model list through the running app: a model ARGO added after this release (in the fake's list,
not in the built-in table) is served by name in standard and native mode and listed in /v1/models; a known
name makes no extra call; ARGO_MODEL_LIST=false keeps the built-in table (a 404)."""

from __future__ import annotations

import pytest
import requests

from tests.fakes.fake_argo import MODELS_PATH, NATIVE_CHAT_PATH, NATIVE_MODELS_PATH, FakeArgo
from tests.integration.test_argo import argo_env
from tests.proxy_process import running_proxy

NEW_MODEL = {"id": "Claude Opus 5", "internal_id": "claudeopus5", "object": "model", "created": 1, "owned_by": "anthropic"}
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["standard", "native"])
def argo(request):
    with FakeArgo() as fake:
        fake.models_payload = {"object": "list", "data": [*fake.models_payload["data"], NEW_MODEL]}
        env = argo_env(fake)
        if request.param == "native":
            env.update(USE_NATIVE_OPENAI="true", NATIVE_OPENAI_BASE_URL=fake.native_base_url)
        with running_proxy(**env) as p:
            yield request.param, fake, p


def lists(fake: FakeArgo) -> int:
    return sum(r.method == "GET" and r.path in (MODELS_PATH, NATIVE_MODELS_PATH) for r in fake.requests)


def test_a_model_argo_added_is_served_by_name(argo):
    mode, fake, p = argo
    r = requests.post(p.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": MSG}, timeout=30)
    assert r.status_code == 200 and lists(fake) == 0  # a known name: no list read
    for name in ("claude-opus-5", "argo:claude-5-opus", "claudeopus5"):
        r = requests.post(p.base_url + "/chat/completions", json={"model": name, "messages": MSG}, timeout=30)
        assert r.status_code == 200, r.text
        sent = [q for q in fake.requests if q.method == "POST"][-1].json
        assert sent["model"] == "claudeopus5"
    assert 1 <= lists(fake) <= 2  # read once per worker process (two), on the first name its table lacked
    if mode == "native":
        assert [q for q in fake.requests if q.method == "POST"][-1].path == NATIVE_CHAT_PATH
    listed = {m["id"]: m["internal_name"] for m in requests.get(p.base_url + "/models", timeout=30).json()["data"]}
    assert listed["argo:claude-opus-5"] == "claudeopus5" and listed["argo:gpt-4o"] == "gpt4o"


def test_off_keeps_the_built_in_table():
    with FakeArgo() as fake:
        fake.models_payload = {"object": "list", "data": [NEW_MODEL]}
        with running_proxy(**argo_env(fake, ARGO_MODEL_LIST="false")) as p:
            r = requests.post(p.base_url + "/chat/completions", json={"model": "claude-opus-5", "messages": MSG},
                              timeout=30)
            assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
            assert "argo:claude-opus-5" not in requests.get(p.base_url + "/models", timeout=30).text
        assert lists(fake) == 0
