"""Who writes a call's Plan and its Outcome (issue 37 item 4): each is written by the phases that own it, at most
three modules each, read from the source (an AST scan: attribute assignments on `plan` / `call.plan` / `outcome`
/ `out` objects or a local name bound to one, the Plan's own changing methods, setattr).

Plan: the door (the route), the guard (the models named, the key and what its limits admitted); a front door's
translation makes a new one. What planning decides is no write at all: planning.py returns a frozen Planned (what a
backend's prepare returns in it), which the type checker keeps anyone from changing (tests/unit/test_types.py). Outcome: each fact is
written where it is found, with no one-line setter between (issue 70): the exchange with the upstream (exchange.py:
what was sent and came back), the sequence (gateway.py: the deployment that served, keepalives running), the answer
side (answers.py), the encoders (chat_answers.py, fronts/serve.py: the usage and answer they read, a stream's only
at its end), the relays (relay.py), a keepalive's whole answer (kept_alive.py), a background response
(state/background.py) and the door (answers it makes itself). A new writer anywhere else fails it."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.source_tree import parsed

ROOT = Path(__file__).resolve().parents[2]
PLAN_OWNERS = {"argoproxy/serve/door.py", "argoproxy/pipeline/guard.py"}
OUTCOME_OWNERS = {"argoproxy/pipeline/exchange.py", "argoproxy/pipeline/answers.py", "argoproxy/serve/door.py",
                  "argoproxy/pipeline/gateway.py", "argoproxy/pipeline/chat_answers.py", "argoproxy/fronts/serve.py",
                  "argoproxy/pipeline/relay.py", "argoproxy/pipeline/kept_alive.py", "argoproxy/state/background.py"}
# The Plan's own methods that change it: a call of one is a write as an assignment is.
PLAN_WRITING_METHODS = {"set_member", "touch"}


def owner_name(node: ast.expr) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None


def writes_in(tree: ast.AST) -> set[str]:
    """'plan' and/or 'outcome' when the code assigns an attribute of a plan or an outcome, calls a method that
    changes a plan (set_member, touch, plan.adapted's append or extend), or setattr()s one."""
    parts: set[str] = set()
    aliases = aliased(tree)
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        owners = [t.value for target in targets
                  for t in (target.elts if isinstance(target, ast.Tuple) else [target]) if isinstance(t, ast.Attribute)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, on = node.func.attr, node.func.value
            if method in PLAN_WRITING_METHODS and owner_name(on) == "plan":
                owners.append(on)
            elif method in ("append", "extend") and isinstance(on, ast.Attribute) and on.attr == "adapted":
                owners.append(on.value)
        if isinstance(node, ast.Call) and owner_name(node.func) == "setattr" and node.args:
            owners.append(node.args[0])
        for owner in owners:
            name = owner_name(owner)
            part = aliases.get(name, name) if isinstance(owner, ast.Name) else name
            if part == "plan":
                parts.add("plan")
            elif part in ("outcome", "out"):
                parts.add("outcome")
    return parts


def aliased(tree: ast.AST) -> dict[str | None, str]:
    """Local names bound to a call's plan or outcome under another name (`p = call.plan`, `a, o = x, c.outcome`)."""
    found: dict[str | None, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs = zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple) and \
                isinstance(node.value, ast.Tuple) else [(target, node.value)]
            for name, value in pairs:
                if isinstance(name, ast.Name) and isinstance(value, ast.Attribute) and value.attr in ("plan", "outcome"):
                    found[name.id] = value.attr
    return found


def writers() -> dict[str, set[str]]:
    """{'plan': modules, 'outcome': modules} that write a plan or an outcome (writes_in)."""
    found: dict[str, set[str]] = {"plan": set(), "outcome": set()}
    for path in sorted((ROOT / "argoproxy").rglob("*.py")):
        for part in writes_in(parsed(path)):
            found[part].add(str(path.relative_to(ROOT)))
    return found


def test_the_scan_sees_each_way_of_writing():
    for source, part in (("call.plan.model = 'x'", "plan"), ("plan.set_member('model', 'x')", "plan"),
                         ("call.plan.touch('timeout')", "plan"), ("call.plan.adapted.append('n=1')", "plan"),
                         ("setattr(call.outcome, 'status', 1)", "outcome"), ("out.usage, x = {}, 1", "outcome"),
                         ("call.outcome.bytes_out += 3", "outcome"), ("p = call.plan\np.model = 'x'", "plan"),
                         ("a, o = 1, call.outcome\no.status = 200", "outcome")):
        assert writes_in(ast.parse(source)) == {part}, source
    assert writes_in(ast.parse("x = call.plan.model; call.plan.body.get('model')")) == set()


def test_the_plan_is_written_by_the_phases_that_own_it():
    """The backends' prepare hooks return what they decide (pipeline/backend.py's Prepared) and the sequence keeps it;
    a backend's own route names what it serves through its Send; routing asks Gateway.attempt; key_limits' observer
    gives its hold back through the guard's Held; stored Responses ask for no keepalive through their ResponseKeeper."""
    assert writers()["plan"] == PLAN_OWNERS
    assert len(PLAN_OWNERS) <= 3


def test_the_outcome_is_written_by_the_phases_that_own_it():
    """The phases of the request path write the facts they find; observers (metrics, team keys, key_limits, the
    status page, the journal) only read the frozen records and keep their own; no room outside the request path
    (routing, admission, spend, meter, teamkeys, observe, tracing) writes the outcome."""
    assert writers()["outcome"] == OUTCOME_OWNERS


def test_routing_key_limits_and_team_keys_no_longer_write_the_call():
    """Routing asks the sequence (Gateway.attempt, kept_alive); key_limits and team keys return what they
    admitted, which the guard keeps in the plan; ARGO's raw routes and batched embeddings send through the
    sequence's exchange."""
    found = writers()
    for module in ("argoproxy/routing/dispatch.py", "argoproxy/admission/key_limits.py",
                   "argoproxy/providers/argo/backend.py", "argoproxy/providers/argo/standard.py"):
        assert module not in found["outcome"], module
    for module in ("argoproxy/routing/dispatch.py", "argoproxy/teamkeys/service.py"):
        assert module not in found["plan"], module
