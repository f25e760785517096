"""`cot-proxy run` tells each agent its model's context window and output limit the way that agent reads them,
from the window the running proxy lists (its /v1/models, as it reads it for reservations): llama.cpp's context per
slot (its /props), not the training context its model list gives; vLLM's max_model_len. Where the upstream lists
none (OpenAI's API), nothing is set and `cot-proxy agents` says so. Real proxies under Gunicorn, real fake
upstreams on loopback, and stand-ins for the agents that report what they were given."""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.agents.agents import _bounded, _isolated, secure_scratch
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.proxy_process import ROOT, ProxyProcess, running_proxy

pytestmark = pytest.mark.timeout(120)

AGENT = '''\
#!{python}
"""Stands in for a coding agent: writes what it was given (its arguments, environment and the files named there)."""
import json, os, sys
files = {{}}
for value in [*sys.argv[1:], *os.environ.values()]:
    if os.path.isfile(value) and "cot-proxy-run-" in value:
        files[value] = open(value).read()
with open(os.environ["FAKE_AGENT_DUMP"], "w") as out:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ), "files": files}}, out)
'''

LLAMA_ENTRY = {"id": "qwen3-coder", "object": "model", "created": 0, "owned_by": "llamacpp",
               "meta": {"vocab_type": 2, "n_vocab": 151936, "n_ctx_train": 262144, "n_embd": 2048}}
VLLM_ENTRY = {"id": "qwen3-coder", "object": "model", "created": 0, "owned_by": "vllm", "max_model_len": 32768}
OPENAI_ENTRY = {"id": "qwen3-coder", "object": "model", "created": 1700000000, "owned_by": "system"}


@contextmanager
def proxy_in_front_of(server: str) -> Iterator[ProxyProcess]:
    """The user's proxy in front of `server` with one model, listed as that server lists it."""
    entry = {"llama.cpp": LLAMA_ENTRY, "vLLM": VLLM_ENTRY, "OpenAI": OPENAI_ENTRY}[server]
    with FakeOpenAI(says=None if server == "OpenAI" else server) as up:
        answer = up.default_answer

        def listing(method: str, path: str, body: bytes) -> Any:
            if path.endswith("/models"):
                return Reply({"object": "list", "data": [dict(entry)]})
            return answer(method, path, body)
        up.default_answer = listing  # type: ignore[method-assign]
        with running_proxy(BACKEND="openai", TARGET_BASE_URL=up.base_url) as proxy:
            yield proxy


@pytest.fixture(scope="module")
def proxies() -> Iterator[Callable[[str], ProxyProcess]]:
    """One proxy per server for the module, started when a test first asks for it: the tests only read its model
    list. (A module-scoped `served` parametrized per server was set up again for each case of the first test below:
    its `served,agent` pairs are parametrized at function scope.)"""
    started: dict[str, ProxyProcess] = {}
    with ExitStack() as stack:
        def proxy_for(server: str) -> ProxyProcess:
            if server not in started:
                started[server] = stack.enter_context(proxy_in_front_of(server))
            return started[server]
        yield proxy_for


@pytest.fixture(params=["vLLM", "llama.cpp", "OpenAI"])
def served(request: Any, proxies: Callable[[str], ProxyProcess]) -> tuple[str, ProxyProcess]:
    """(the server, the user's proxy in front of it)."""
    return request.param, proxies(request.param)


EXPECTED = {"llama.cpp": (4096, 1024), "vLLM": (32768, 8192), "OpenAI": None}  # the fake's /props: 4096 a slot


def agent_run(tmp_path: Path, proxy: ProxyProcess, *command: str) -> tuple[Any, dict[str, Any]]:
    agents = tmp_path / "bin"
    agents.mkdir(exist_ok=True)
    for name in ("claude", "codex", "opencode", "aider"):
        program = agents / name
        program.write_text(AGENT.format(python=sys.executable))
        program.chmod(0o755)
    dump = tmp_path / "agent.json"
    dump.unlink(missing_ok=True)
    env = _isolated(tmp_path / "home", {"XDG_RUNTIME_DIR": str(secure_scratch()), "HOST": "127.0.0.1",
                                         "PORT": str(proxy.port), "BACKEND": "openai",
                                         "TARGET_BASE_URL": "http://127.0.0.1:9/v1", "FAKE_AGENT_DUMP": str(dump)})
    env["PATH"] = os.pathsep.join([str(agents), env["PATH"]])
    result = _bounded([sys.executable, str(ROOT / "cot_proxy.py"), *command], env, tmp_path, 60)
    return result, json.loads(dump.read_text()) if dump.exists() else {}


def file_of(report: dict[str, Any], suffix: str) -> str | None:
    return next((text for path, text in report["files"].items() if path.endswith(suffix)), None)


# Every agent in front of vLLM; Claude Code, Codex and Aider in front of the others too (the window from elsewhere,
# or none).
@pytest.mark.parametrize("served,agent", [("vLLM", "claude"), ("vLLM", "codex"), ("vLLM", "opencode"),
                                          ("vLLM", "aider"), ("llama.cpp", "claude"), ("llama.cpp", "aider"),
                                          ("OpenAI", "claude"), ("OpenAI", "codex"), ("OpenAI", "aider")],
                         indirect=["served"])
def test_each_agent_is_told_the_window_its_way(served, agent, tmp_path):
    server, proxy = served
    result, report = agent_run(tmp_path, proxy, "run", "--", agent)
    assert result.returncode == 0 and report, result.stderr
    expected = EXPECTED[server]
    env, argv = report["env"], report["argv"]
    if agent == "claude":
        told = (env.get("CLAUDE_CODE_AUTO_COMPACT_WINDOW"), env.get("CLAUDE_CODE_MAX_OUTPUT_TOKENS"))
        assert told == ((str(expected[0]), str(expected[1])) if expected else (None, None)), env
    elif agent == "codex":
        overrides = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-c"]
        told = [o for o in overrides if o.startswith(("model_context_window=", "model_max_output_tokens="))]
        assert told == ([f"model_context_window={expected[0]}"] if expected else []), argv  # no key Codex lacks
    elif agent == "opencode":
        config = json.loads(file_of(report, "opencode.json") or "{}")
        model = config["provider"]["cot_proxy"]["models"]["qwen3-coder"]
        assert model.get("limit") == ({"context": expected[0], "output": expected[1]} if expected else None), model
    else:
        metadata = file_of(report, "aider-model-metadata.json")
        if expected is None:
            assert "--model-metadata-file" not in argv and metadata is None, argv
        else:
            assert argv[argv.index("--model-metadata-file") + 1].endswith("aider-model-metadata.json"), argv
            limits = json.loads(metadata or "{}")["openai/qwen3-coder"]
            assert (limits["max_input_tokens"], limits["max_output_tokens"]) == expected, limits
    said = [line for line in result.stderr.splitlines() if "model qwen3-coder" in line]
    window = (f"window {expected[0]:,} tokens, output limit {expected[1]:,}" if expected else
              "window not known: the agent keeps its own default")
    assert len(said) == 1 and window in said[0], result.stderr


def test_agents_says_what_each_agent_is_told(served, tmp_path):
    server, proxy = served
    result, _ = agent_run(tmp_path, proxy, "agents")
    assert result.returncode == 0, result.stderr
    expected = EXPECTED[server]
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("window:")]
    assert len(lines) == 4, result.stdout  # claude, codex, opencode, aider (gemini is not on PATH)
    if expected:
        assert set(lines) == {f"window: {expected[0]:,} tokens, output limit {expected[1]:,} (the proxy's model list)"}
        assert f"set   CLAUDE_CODE_AUTO_COMPACT_WINDOW={expected[0]}" in result.stdout
    else:
        assert set(lines) == {"window: not known: the proxy's model list gives none for qwen3-coder (OpenAI, ARGO and "
                              "DashScope publish none), so none is set and the agent keeps its own default"}
        assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in result.stdout


def test_the_proxy_lists_the_window_it_reserves_by(served):
    """The window is the proxy's own reading, the one its reservations use: llama.cpp's per slot."""
    import urllib.request
    server, proxy = served
    with urllib.request.urlopen(proxy.base_url + "/models", timeout=10) as answer:
        entry, = json.loads(answer.read())["data"]
    from argoproxy.pipeline.model_context import context_length
    assert context_length(entry) == (EXPECTED[server] or (None,))[0], entry
