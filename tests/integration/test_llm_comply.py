"""llm-comply 0.5.0 (a conformance bench on PyPI that vendors the APIs' official schemas) run through the real app
under Gunicorn, in its five formats (OpenAI chat, Open Responses, Anthropic Messages, Google GenAI, Google
Interactions), in front of an upstream that answers as a capable model does: reasoning beside its answer when
reasoning is asked for, text, a tool call when tools are offered, usage with cached and reasoning tokens. None of
its cases is skipped: each format runs with a model name its reasoning cases take (a reasoning model's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import capable_model as capable
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream
from tests.proxy_process import running_proxy

import llm_comply
from llm_comply.config import ComplianceConfig
from llm_comply.http import close_client
from llm_comply.result import TestStatus
from llm_comply.runner import TestRunner
from llm_comply.schema import SpecLoader
from llm_comply.tests import get_tests

# Each format, with a model name its reasoning case runs for (llm-comply skips it for other names), the header
# its key goes in, and the document it validates against (as its command line picks them).
FORMATS = {
    "openai-chat": ("gpt-5-fake", "Authorization", True, {}, "openai_chat.json"),
    "open-responses": ("gpt-5-fake", "Authorization", True, {}, "openresponses.json"),
    "anthropic": ("claude-3-5-sonnet-fake", "x-api-key", False, {"anthropic-version": "2023-06-01"},
                  "anthropic.json"),
    "google-genai": ("gemini-2.5-flash-fake", "x-goog-api-key", False, {}, None),
    "google-interactions": ("gemini-2.5-flash-fake", "x-goog-api-key", False, {}, None),
}


def capable_answer(method: str, path: str, body: bytes) -> Reply | Stream:
    """What a capable model answers a chat request: a tool call when it is offered tools (named as the request
    names them), reasoning when reasoning is asked for (reasoning_effort), streamed when asked; a 400 for a
    request that names no model, as OpenAI's API answers."""
    req = json.loads(body or b"{}")
    if not req.get("model"):  # as OpenAI's API answers (the proxy forwards a request without one: docs/conformance.md)
        return Reply({"error": {"message": "you must provide a model parameter", "type": "invalid_request_error",
                                "param": None, "code": None}}, status=400)
    tools = [t["function"]["name"] for t in req.get("tools") or () if isinstance(t, dict) and t.get("function")]
    reasoning = req.get("reasoning_effort") not in (None, "none")
    model = req.get("model") or capable.MODEL
    if req.get("stream"):
        events = capable.chunks(calls=bool(tools), reasoning=reasoning, model=model)
        return Stream([named(e, tools) for e in events])
    return Reply(named(capable.whole(calls=bool(tools), reasoning=reasoning, model=model), tools))


def named(answer: Any, tools: list[str]) -> Any:
    """The capable model's calls under the first tool the request offers."""
    if not tools or not isinstance(answer, dict):
        return answer
    text = json.dumps(answer).replace('"get_weather"', json.dumps(tools[0]))
    return json.loads(text)


@pytest.fixture(scope="module")
def served():
    with FakeOpenAI() as fake, running_proxy(TARGET_BASE_URL=fake.base_url, THINK_MODE="reasoning") as proxy:
        fake.accepts_developer = fake.accepts_null_content = fake.accepts_json_schema = True
        fake.accepts_unparsed_arguments = True
        fallback = fake.default_answer

        def answer(method: str, path: str, body: bytes) -> Reply | Stream:
            if method == "POST" and path.endswith("/chat/completions"):
                return capable_answer(method, path, body)
            return fallback(method, path, body)
        fake.default_answer = answer
        yield proxy


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_case_of_the_format_passes(served, fmt):
    model, header, bearer, headers, spec_file = FORMATS[fmt]
    config = ComplianceConfig(base_url=served.url, api_key="sk-client", model=model, auth_header=header,
                              use_bearer_prefix=bearer, timeout=30.0, extra_headers=headers or None)
    spec_path = str(Path(llm_comply.__file__).parent / "specs" / spec_file) if spec_file else None
    try:
        suite = TestRunner(config, get_tests(fmt), SpecLoader(spec_path)).run_all()
    finally:
        close_client()
    outcome = {r.id: (r.status, r.errors) for r in suite.results}
    assert not [i for i, (status, _) in outcome.items() if status == TestStatus.SKIPPED], outcome
    assert {i: errors for i, (status, errors) in outcome.items() if status != TestStatus.PASSED} == {}
    assert len(outcome) >= 8
