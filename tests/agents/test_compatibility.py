"""The compatibility matrix that tools/compatibility.py runs and writes into docs/compatibility.md: each coding
agent `cot-proxy run` knows (argoproxy/launch/agents.py) and each door with its own SDK, through the proxy, over
llama.cpp's own server (SmolLM2-135M behind the replay shim, as tests/agents/test_llama.py) and over the strict
fakes of vLLM, Ollama and ARGO (the scripted model behind each). An agent's cell is its tool round trip
(tests/agents/test_scripted.py's, or test_llama.py's over llama.cpp, with the agent's own prompt); a door's cell is
one whole and one streamed answer with text. Minutes in all: it runs only when that command asks (COT_PROXY_COMPATIBILITY=1)."""

from __future__ import annotations

import os

import pytest

from argoproxy.launch.agents import AGENTS as LAUNCHED
from tests.agents.agents import AGENTS, Run
from tests.agents.conftest import Backend
from tests.agents.scripted import QUOTE, ScriptedUpstream, tool_results, user_texts
from tests.agents.test_llama import _tool_round_trip
from tests.agents.test_scripted import MODELS
from tests.proxy_process import running_proxy

UPSTREAMS = ("llama.cpp", "vLLM", "Ollama", "ARGO")
DOORS = ("chat", "responses", "messages", "gemini", "ollama")
TIMEOUT = 900
pytestmark = [pytest.mark.timeout(TIMEOUT + 300),
              pytest.mark.skipif(os.environ.get("COT_PROXY_COMPATIBILITY") != "1",
                                 reason="the compatibility matrix: python tools/compatibility.py runs it")]


def _fake(says: str, **strict: bool):
    with ScriptedUpstream(says=says) as up:
        for name, value in strict.items():
            setattr(up, name, value)
        with running_proxy(BACKEND="openai", TARGET_BASE_URL=up.base_url) as proxy:
            yield Backend(says, proxy, up.bodies, up.reset)


@pytest.fixture(scope="module")
def vllm_backend():
    """As vLLM answers: OpenAI's roles and null content taken, two turns of one role in a row refused (a chat
    template that wants them to alternate), a JSON body that is not UTF-8 refused."""
    yield from _fake("vLLM", accepts_developer=True, accepts_null_content=True, accepts_json_schema=True,
                     wants_alternating_roles=True)


@pytest.fixture(scope="module")
def ollama_backend():
    """As Ollama's OpenAI-compatible API answers: roles and null content taken, lone surrogates read as U+FFFD."""
    yield from _fake("Ollama", accepts_developer=True, accepts_null_content=True, accepts_json_schema=True,
                     accepts_lone_surrogates=True)


def _backend(request, upstream: str) -> Backend:
    chosen = request.getfixturevalue({"vLLM": "vllm_backend", "Ollama": "ollama_backend",
                                      "ARGO": "argo_standard_backend"}[upstream])
    chosen.reset()
    return chosen


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("agent_name", list(LAUNCHED))
def test_agent(agent_name, upstream, request, project, tmp_path):
    workdir, token = project
    if upstream == "llama.cpp":
        shim, proxy = request.getfixturevalue("llama_agents")
        shim.forwarded.clear()
        shim.replayed.clear()
        _tool_round_trip(AGENTS[agent_name], shim, proxy, workdir, token, tmp_path)
        return
    backend, agent = _backend(request, upstream), AGENTS[agent_name]
    prompt = f"Read the file {workdir / 'note.txt'} and tell me what it says."
    result = agent.run(Run(backend.proxy.url, MODELS[agent_name], prompt, tmp_path / "home", workdir), TIMEOUT)
    report = (f"exit {result.returncode} after {result.seconds:.1f} s\n--- stdout\n{result.stdout[-2000:]}\n"
              f"--- stderr\n{result.stderr[-2000:]}\n--- proxy log\n{backend.proxy.read_log()[-2000:]}")
    assert result.returncode == 0, report
    assert QUOTE.format(token=token) in result.stdout, report
    results = tool_results if agent.tool_result_role == "tool" else user_texts
    assert any(token in text for body in backend.bodies() for text in results(body)), report


def _door_answers(door: str, url: str, model: str) -> tuple[str, str]:
    """(whole, streamed): the text of one answer of each kind through the door, with its SDK."""
    ask = "Name three colours."
    if door in ("chat", "responses"):
        import openai
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-unused", max_retries=0, timeout=300)
        if door == "chat":
            messages = [{"role": "user", "content": ask}]
            whole = client.chat.completions.create(model=model, messages=messages).choices[0].message.content
            stream = client.chat.completions.create(model=model, messages=messages, stream=True)
            return whole or "", "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        streamed = "".join(e.delta for e in client.responses.create(model=model, input=ask, stream=True)
                           if e.type == "response.output_text.delta")
        return client.responses.create(model=model, input=ask).output_text, streamed
    if door == "messages":
        import anthropic
        client = anthropic.Anthropic(base_url=url, api_key="sk-unused", max_retries=0, timeout=300)
        messages = [{"role": "user", "content": ask}]
        whole = client.messages.create(model=model, max_tokens=64, messages=messages)
        with client.messages.stream(model=model, max_tokens=64, messages=messages) as stream:
            return "".join(b.text for b in whole.content if b.type == "text"), "".join(stream.text_stream)
    if door == "gemini":
        from google import genai
        client = genai.Client(api_key="sk-unused", http_options={"base_url": url, "timeout": 300_000})
        streamed = "".join(c.text or "" for c in client.models.generate_content_stream(model=model, contents=ask))
        return client.models.generate_content(model=model, contents=ask).text or "", streamed
    import ollama
    client = ollama.Client(host=url, timeout=300)
    messages = [{"role": "user", "content": ask}]
    streamed = "".join(c.message.content or "" for c in client.chat(model=model, messages=messages, stream=True))
    return client.chat(model=model, messages=messages).message.content or "", streamed


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("door", DOORS)
def test_door(door, upstream, request):
    if upstream == "llama.cpp":
        url, model = request.getfixturevalue("llama_agents")[1].url, "smollm2"
    else:
        url, model = _backend(request, upstream).proxy.url, "gpt-4o"
    whole, streamed = _door_answers(door, url, model)
    assert whole.strip() and streamed.strip(), (whole, streamed)
