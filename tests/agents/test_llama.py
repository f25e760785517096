"""Each coding agent through the proxy in front of a real server: llama.cpp's own (the xllamacpp wheel) with
SmolLM2-135M-Instruct, the recipe tests/real uses, with the model's whole 8,192-token context. A tool round trip
whose first turn (the model asking for the note) is replayed by the script, since so small a model does not call
a tool by itself: the real server then gets the agent's whole conversation with the tool call and its result in
the history, and writes the answer the agent must print.

Claude Code runs in CI, with a short system prompt and its Read tool only (--system-prompt, --tools): its own
system prompt and tools are 4,375 tokens, which took the server 111 s to read on this busy 2-core machine, the
short ones 390 tokens and 6 s. Every agent with its own prompt, and a plain turn too, takes minutes each and runs
when asked (COT_PROXY_AGENTS_LLAMA=1); tools/compatibility.py runs every agent over this server."""

from __future__ import annotations

import os
import re

import pytest

from tests.agents.agents import AGENTS, Agent, Run, product_setup
from tests.agents.scripted import tool_results, user_texts
from tests.agents.test_scripted import PENDING

MODEL = "smollm2"
TIMEOUT = 900  # seconds for one agent run
OPT_IN = "COT_PROXY_AGENTS_LLAMA"
WHOLE = os.environ.get(OPT_IN) == "1"
pytestmark = pytest.mark.timeout(TIMEOUT + 300)  # the run, and the real server's start in the first test
# Claude Code as CI runs it: the product's set-up, then a prompt and tools small enough for the model's context.
CLAUDE_ARGS = ("--system-prompt", "You are a terse assistant. Use the Read tool to read files.", "--tools", "Read")
CLAUDE_SMALL = Agent("claude", "messages", "tool", product_setup("claude", CLAUDE_ARGS))


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text))


def _run(agent, prompt, proxy, tmp_path, workdir):
    if agent.name in PENDING:
        pytest.skip(PENDING[agent.name])
    run = Run(proxy.url, MODEL, prompt, tmp_path / "home", workdir)
    return agent.run(run, TIMEOUT)


def _report(agent_name, result, shim, proxy) -> str:
    answers = "\n".join(f"{f.status}: {f.text[:300]!r}" for f in shim.forwarded)
    return (f"{agent_name}: exit {result.returncode} after {result.seconds:.1f} s\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}\n--- the real server's answers\n{answers}"
            f"\n--- proxy log\n{proxy.read_log()[-3000:]}"
            f"\n--- llama.cpp server log\n{shim.server_log.read_text(errors='replace')[-4000:]}")


def _printed_an_answer(result, shim) -> bool:
    """The agent printed an answer the real server wrote (its words, as the agent may re-wrap them)."""
    said = [_words(f.text) for f in shim.forwarded if f.status == 200 and _words(f.text)]
    return any(s[:60] in _words(result.stdout) for s in said)


def _plain_turn(agent, shim, proxy, workdir, token, tmp_path) -> None:
    result = _run(agent, "Say hello in one short sentence.", proxy, tmp_path, workdir)
    report = _report(agent.name, result, shim, proxy)
    assert result.returncode == 0, report
    assert shim.forwarded and all(f.status == 200 for f in shim.forwarded), report
    # The 135M model may answer with nothing or a tool call; whatever text it wrote, the agent prints.
    assert _printed_an_answer(result, shim) or not any(_words(f.text) for f in shim.forwarded), report
    print(f"{agent.name} plain turn on llama.cpp: {result.seconds:.1f} s, {len(shim.forwarded)} requests")


def _tool_round_trip(agent, shim, proxy, workdir, token, tmp_path) -> None:
    result = _run(agent, f"Read the file {workdir / 'note.txt'} and tell me what it says.", proxy, tmp_path,
                  workdir)
    report = _report(agent.name, result, shim, proxy)
    assert result.returncode == 0, report
    assert shim.replayed, report
    results = tool_results if agent.tool_result_role == "tool" else user_texts
    after = [f for f in shim.forwarded if any(token in text for text in results(f.body))]
    assert after and all(f.status == 200 for f in after), report  # the real server took the tool's result
    # What the model does with the result is its own affair (text, or another tool call): its text, if any, is
    # what the agent prints.
    assert _printed_an_answer(result, shim) or not any(_words(f.text) for f in after), report
    print(f"{agent.name} tool round trip on llama.cpp: {result.seconds:.1f} s, {len(shim.forwarded)} requests")


def test_claude_code_tool_round_trip_on_llama_cpp(llama_agents, project, tmp_path):
    shim, proxy = llama_agents
    shim.forwarded.clear()
    shim.replayed.clear()
    _tool_round_trip(CLAUDE_SMALL, shim, proxy, *project, tmp_path)


# Each agent's two runs one after the other: the real server reuses the prompt prefix they share.
@pytest.mark.skipif(not WHOLE, reason=f"every agent with its own prompt on llama.cpp takes minutes: {OPT_IN}=1")
@pytest.mark.parametrize("turn", [_plain_turn, _tool_round_trip], ids=["plain", "tool_round_trip"])
@pytest.mark.parametrize("agent_name", list(AGENTS))
def test_agent_on_llama_cpp(agent_name, turn, llama_agents, project, tmp_path):
    shim, proxy = llama_agents
    shim.forwarded.clear()
    shim.replayed.clear()
    turn(AGENTS[agent_name], shim, proxy, *project, tmp_path)
