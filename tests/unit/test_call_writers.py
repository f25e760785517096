"""Who writes a call's Plan and its Outcome (issue 37 item 4): each is written by the phases that own it, read
from the source (an AST scan for attribute assignments on `plan` / `call.plan` / `outcome` / `out` objects).

The goal is at most three modules each: Plan by the door (the route), the guard (the models named, the key and
its limits) and the sequence (gateway.py: everything planned); Outcome by the sequence's exchange with the
upstream (gateway.py), the shared answer side (answers.py) and the door (answers it makes itself). The modules
that still write outside those are listed in WRITING_TOO with why: the test fails when a new module starts
writing, and when a listed one stops (then take it off the list)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAN_OWNERS = {"argoproxy/serve/door.py", "argoproxy/pipeline/guard.py", "argoproxy/pipeline/gateway.py"}
OUTCOME_OWNERS = {"argoproxy/pipeline/gateway.py", "argoproxy/pipeline/answers.py", "argoproxy/serve/door.py"}
# Still writing, to be moved into their phase's owner (each a known debt, not a place to add more):
PLAN_WRITING_TOO = {
    "argoproxy/providers/argo/backend.py": "prepare pops `timeout`; the raw routes name the model they serve",
    "argoproxy/providers/argo/native.py": "prepare maps aliases, caps Claude's whole answers (set_member)",
    "argoproxy/providers/argo/standard.py": "prepare sets the ARGO id as upstream_model",
    "argoproxy/providers/dashscope/backend.py": "prepare sets DashScope's model name",
    "argoproxy/state/service.py": "truncation auto turns keepalives off for its retries",
    "argoproxy/routing/key_limits.py": "its observer gives a call's hold back once (limit_lease = None)",
}
OUTCOME_WRITING_TOO = {
    "argoproxy/pipeline/chat_answers.py": "the chat door's encoder records status, output and usage",
    "argoproxy/fronts/serve.py": "the doors' encoder records status, output and usage",
    "argoproxy/pipeline/filters.py": "the journal's capture filters record what passed",
    "argoproxy/pipeline/stream_usage.py": "native relay's usage read from the bytes",
    "argoproxy/observe/metrics.py": "the streams-in-flight gauge marks the calls it counted",
    "argoproxy/state/background.py": "a background response's status",
    "argoproxy/teamkeys/service.py": "usage estimated for a key's budget when the upstream sent none",
}


def writers() -> dict[str, set[str]]:
    """{'plan': modules, 'outcome': modules} that assign an attribute of a plan or an outcome."""
    found: dict[str, set[str]] = {"plan": set(), "outcome": set()}
    for path in sorted((ROOT / "argoproxy").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if not isinstance(t, ast.Attribute):
                        continue
                    owner = t.value
                    owner_name = owner.attr if isinstance(owner, ast.Attribute) else \
                        owner.id if isinstance(owner, ast.Name) else None
                    if owner_name == "plan":
                        found["plan"].add(name)
                    elif owner_name in ("outcome", "out"):
                        found["outcome"].add(name)
    return found


def test_the_plan_is_written_by_the_phases_that_own_it():
    plan = writers()["plan"]
    assert plan - PLAN_OWNERS - set(PLAN_WRITING_TOO) == set(), "a new module writes the Plan"
    assert set(PLAN_WRITING_TOO) - plan == set(), "no longer writes the Plan: take it off PLAN_WRITING_TOO"
    assert len(PLAN_OWNERS) <= 3


def test_the_outcome_is_written_by_the_phases_that_own_it():
    outcome = writers()["outcome"]
    assert outcome - OUTCOME_OWNERS - set(OUTCOME_WRITING_TOO) == set(), "a new module writes the Outcome"
    assert set(OUTCOME_WRITING_TOO) - outcome == set(), "no longer writes the Outcome: take it off the list"
    assert len(OUTCOME_OWNERS) <= 3


def test_routing_key_limits_and_team_keys_no_longer_write_the_call():
    """Routing asks the sequence (Gateway.serving, replan, kept_alive); key_limits and team keys return what they
    admitted, which the guard keeps in the plan; ARGO's raw routes and batched embeddings send through the
    sequence's exchange."""
    found = writers()
    for module in ("argoproxy/routing/dispatch.py", "argoproxy/routing/key_limits.py",
                   "argoproxy/providers/argo/backend.py", "argoproxy/providers/argo/standard.py"):
        assert module not in found["outcome"], module
    for module in ("argoproxy/routing/dispatch.py", "argoproxy/teamkeys/service.py"):
        assert module not in found["plan"], module
