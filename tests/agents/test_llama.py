"""Each coding agent through the proxy in front of a real server: llama.cpp's (llama-cpp-python) with Gemma 3 270M,
the recipe tests/real uses, with the 32k context an agent's prompt needs. One plain turn, and one tool round
trip whose first turn (the model asking for the note) is replayed by the script, since so small a model does
not call a tool by itself: the real server then gets the agent's whole conversation with the tool call and
its result in the history, the shape real servers refused (`developer` messages, `content: null`), and
writes the answer the agent must print."""

from __future__ import annotations

import os
import re

import pytest

from tests.agents.agents import AGENTS, Run
from tests.agents.scripted import tool_results, user_texts
from tests.agents.test_scripted import PENDING

MODEL = "gemma-tools"  # the llama.cpp alias with a tool-calling chat format (tests/real/servers.py)
TIMEOUT = 1500  # seconds for one agent run: every request is 10-20k prompt tokens on 2 CPU cores
# Minutes of CPU per run (a 270M model reading a coding agent's 10-20k-token prompt on 2 cores): run when asked.
OPT_IN = "COT_PROXY_AGENTS_LLAMA"
pytestmark = [pytest.mark.timeout(TIMEOUT + 300),  # the run, and the real server's start in the first test
              pytest.mark.skipif(os.environ.get(OPT_IN) != "1",
                                 reason=f"the agents on llama.cpp take minutes each: {OPT_IN}=1 runs them")]


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text))


def _run(agent_name, prompt, proxy, tmp_path, workdir):
    if agent_name in PENDING:
        pytest.skip(PENDING[agent_name])
    run = Run(proxy.url, MODEL, prompt, tmp_path / "home", workdir)
    return AGENTS[agent_name].run(run, TIMEOUT)


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


def _plain_turn(agent_name, shim, proxy, workdir, token, tmp_path) -> None:
    result = _run(agent_name, "Say hello in one short sentence.", proxy, tmp_path, workdir)
    report = _report(agent_name, result, shim, proxy)
    assert result.returncode == 0, report
    assert shim.forwarded and all(f.status == 200 for f in shim.forwarded), report
    # The 270M model may answer with nothing or a tool call; whatever text it wrote, the agent prints.
    assert _printed_an_answer(result, shim) or not any(_words(f.text) for f in shim.forwarded), report
    print(f"{agent_name} plain turn on llama.cpp: {result.seconds:.1f} s, {len(shim.forwarded)} requests")


def _tool_round_trip(agent_name, shim, proxy, workdir, token, tmp_path) -> None:
    result = _run(agent_name, f"Read the file {workdir / 'note.txt'} and tell me what it says.", proxy, tmp_path,
                  workdir)
    report = _report(agent_name, result, shim, proxy)
    assert result.returncode == 0, report
    assert shim.replayed, report
    results = tool_results if AGENTS[agent_name].tool_result_role == "tool" else user_texts
    after = [f for f in shim.forwarded if any(token in text for text in results(f.body))]
    assert after and all(f.status == 200 for f in after), report  # the real server took the tool's result
    # What the 270M model does with the result is its own affair (text, or another tool call): its text, if any,
    # is what the agent prints.
    assert _printed_an_answer(result, shim) or not any(_words(f.text) for f in after), report
    print(f"{agent_name} tool round trip on llama.cpp: {result.seconds:.1f} s, {len(shim.forwarded)} requests")


# Each agent's two runs one after the other: the real server reuses the prompt prefix they share.
@pytest.mark.parametrize("turn", [_plain_turn, _tool_round_trip], ids=["plain", "tool_round_trip"])
@pytest.mark.parametrize("agent_name", list(AGENTS))
def test_agent_on_llama_cpp(agent_name, turn, llama_agents, project, tmp_path):
    shim, proxy = llama_agents
    shim.forwarded.clear()
    shim.replayed.clear()
    turn(agent_name, shim, proxy, *project, tmp_path)
