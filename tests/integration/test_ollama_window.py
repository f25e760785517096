"""Ollama's window per model on the proxy's model list, through the real app under Gunicorn in front of a fake that
says it is Ollama (GET /api/version) and answers POST /api/show as Ollama does: the model's `num_ctx` where its
parameters set it, else Ollama's default context (never the trained context its model_info gives), listed as
`context_length`, which `cot-proxy agents` tells each agent; each model asked once."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.integration.test_agent_windows import agent_run
from tests.proxy_process import running_proxy

pytestmark = pytest.mark.timeout(120)

LISTED = [{"id": name, "object": "model", "created": 1700000000, "owned_by": "library"}
          for name in ("qwen3:8b", "llama3.2:1b")]  # Ollama's /v1/models: no window there
SHOWN = {"qwen3:8b": {"parameters": "num_ctx                        32768\ntemperature                    0.6",
                      "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960}},
         "llama3.2:1b": {"parameters": 'stop                           "<|eot_id|>"',
                         "model_info": {"general.architecture": "llama", "llama.context_length": 131072}}}


@pytest.fixture(scope="module")
def served():
    with FakeOpenAI(says="Ollama") as fake:
        answer = fake.default_answer

        def as_ollama(method: str, path: str, body: bytes) -> Any:
            if path == "/api/show" and method == "POST":
                shown = SHOWN.get(json.loads(body).get("model"))
                return Reply(shown) if shown else Reply({"error": "model not found"}, status=404)
            if path.endswith("/models"):
                return Reply({"object": "list", "data": [dict(m) for m in LISTED]})
            return answer(method, path, body)
        fake.default_answer = as_ollama  # type: ignore[method-assign]
        with running_proxy(BACKEND="openai", TARGET_BASE_URL=fake.base_url) as proxy:
            yield fake, proxy


def listed(proxy) -> dict[str, Any]:
    with urllib.request.urlopen(proxy.base_url + "/models", timeout=10) as answer:
        return {m["id"]: m.get("context_length") for m in json.loads(answer.read())["data"]}


def test_the_model_list_gives_num_ctx_else_ollamas_default(served):
    fake, proxy = served
    assert listed(proxy) == {"qwen3:8b": 32768, "llama3.2:1b": 4096}
    assert listed(proxy) == {"qwen3:8b": 32768, "llama3.2:1b": 4096}
    shows = [json.loads(r.body) for r in fake.received if r.path == "/api/show"]
    assert sorted(s["model"] for s in shows) == ["llama3.2:1b", "qwen3:8b"]  # once a model


def test_agents_are_told_it(served, tmp_path):
    _, proxy = served
    result, _ = agent_run(tmp_path, proxy, "agents")
    assert result.returncode == 0, result.stderr
    assert "set   CLAUDE_CODE_AUTO_COMPACT_WINDOW=32768" in result.stdout, result.stdout
