"""count_tokens (Messages) and countTokens (Google) ask the upstream when it can count: llama.cpp's server
(/apply-template, then /tokenize of the prompt) or vLLM (/tokenize with the messages); which way an upstream and
model take is learned at the first count; an upstream that can count neither way is asked no more and the
estimate answers. Fakes in the servers' shapes here; tests/real/test_counts.py against llama.cpp's own server."""

from __future__ import annotations

import json

import anthropic
import pytest
import requests

from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.proxy_process import running_proxy

SYSTEM = "You are a careful assistant."
MESSAGES = [{"role": "user", "content": "Read note.txt and say what it holds."}]
TOOLS = [{"name": "read", "description": "Read a file", "input_schema": {"type": "object", "properties": {
    "path": {"type": "string"}}, "required": ["path"]}}]


class LlamaLike(FakeOpenAI):
    """llama.cpp's counting routes: the prompt is the request's JSON, and each of its characters one token."""

    def default_answer(self, method: str, path: str, body: bytes) -> Reply:
        if path == "/apply-template":
            request = json.loads(body)
            return Reply({"prompt": "<bos>" + json.dumps([request["messages"], request.get("tools")])})
        if path == "/tokenize":
            return Reply({"tokens": list(range(len(json.loads(body)["content"])))})
        return super().default_answer(method, path, body)


class VllmLike(FakeOpenAI):
    def default_answer(self, method: str, path: str, body: bytes) -> Reply:
        if path == "/apply-template":
            return Reply({"detail": "Not Found"}, status=404)
        if path == "/tokenize":
            request = json.loads(body)
            assert request["add_generation_prompt"] is True and request["messages"]
            return Reply({"count": 1000 + len(request.get("tools") or []), "max_model_len": 4096, "tokens": []})
        return super().default_answer(method, path, body)


def counted(proxy) -> tuple[int, int]:
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0)
    messages = client.messages.count_tokens(model="m", system=SYSTEM, messages=MESSAGES, tools=TOOLS).input_tokens
    google = requests.post(f"{proxy.url}/v1beta/models/m:countTokens", timeout=30,
                           json={"contents": [{"role": "user", "parts": [{"text": MESSAGES[0]["content"]}]}]})
    assert google.status_code == 200, google.text
    return messages, google.json()["totalTokens"]


def asked(upstream, path: str) -> int:
    return sum(1 for r in upstream.received if r.path == path)


def test_llama_cpp_counts_with_its_template_and_tokenizer():
    with LlamaLike() as up, running_proxy(TARGET_BASE_URL=up.base_url) as proxy:
        messages, google = counted(proxy)
        templated = [r for r in up.received if r.path == "/apply-template"]
        first = json.loads(templated[0].body)
        assert first["messages"][0] == {"role": "system", "content": SYSTEM}
        assert first["tools"][0]["function"]["name"] == "read"  # the chat request's tools, as the template reads them
        prompt = "<bos>" + json.dumps([first["messages"], first["tools"]])
        assert messages == len(prompt)
        assert google == len("<bos>" + json.dumps([json.loads(templated[1].body)["messages"], None]))
        assert asked(up, "/apply-template") == 2 and asked(up, "/tokenize") == 2


def test_vllm_counts_with_its_tokenize_route_learned_once():
    with VllmLike() as up, running_proxy(TARGET_BASE_URL=up.base_url, WORKERS="1") as proxy:
        assert counted(proxy) == (1001, 1000)
        assert asked(up, "/apply-template") == 1  # learned: the second count went to /tokenize alone
        assert counted(proxy) == (1001, 1000)
        assert asked(up, "/apply-template") == 1 and asked(up, "/tokenize") == 4


def test_an_upstream_that_cannot_count_is_asked_once_then_estimated():
    with FakeOpenAI() as up, running_proxy(TARGET_BASE_URL=up.base_url, WORKERS="1") as proxy:
        first = counted(proxy)
        calls = asked(up, "/apply-template") + asked(up, "/tokenize")
        assert first[0] > 10 and first[1] > 5  # the estimate
        assert counted(proxy) == first
        assert asked(up, "/apply-template") + asked(up, "/tokenize") == calls  # not asked again


def test_routed_counts_ask_a_deployment_of_the_model_under_its_upstream_name():
    """With `models`, the count is a deployment's that serves the model (they were always the estimate), asked
    under the name that server knows (upstream_model); a model no deployment serves is a 404."""
    with LlamaLike() as up, VllmLike() as other:
        models = [{"name": "coder", "backend": "openai", "base_url": up.base_url, "upstream_model": "qwen-coder"},
                  {"name": "big", "backend": "openai", "base_url": other.base_url}]
        with running_proxy(MODELS=json.dumps(models), WORKERS="1") as proxy:
            client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0)
            coder = client.messages.count_tokens(model="coder", system=SYSTEM, messages=MESSAGES).input_tokens
            templated = [json.loads(r.body) for r in up.received if r.path == "/apply-template"]
            assert len(templated) == 1 and templated[0]["model"] == "qwen-coder"
            assert coder == len("<bos>" + json.dumps([templated[0]["messages"], None]))
            assert client.messages.count_tokens(model="big", messages=MESSAGES).input_tokens == 1000
            with pytest.raises(anthropic.NotFoundError):
                client.messages.count_tokens(model="nobody-serves-this", messages=MESSAGES)


def test_a_backend_whose_servers_never_count_is_not_asked():
    """DashScope's API is no llama.cpp or vLLM: its deployments were sent /apply-template and /tokenize (with
    `Authorization: Bearer <bound method ...>`), two calls of up to 5 s each before every estimate."""
    from tests.fakes.fake_dashscope import FakeDashScope
    with FakeDashScope(api_key="ds-key") as ds:
        models = [{"name": "qwen", "backend": "dashscope", "base_url": ds.base_url}]
        with running_proxy(MODELS=json.dumps(models), DASHSCOPE_API_KEY="ds-key", WORKERS="1") as proxy:
            client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0)
            assert client.messages.count_tokens(model="qwen", messages=MESSAGES).input_tokens > 5  # the estimate
        assert not [r for r in ds.received if "tokenize" in r.path or "template" in r.path], \
            [r.path for r in ds.received]
