"""Capability adaptation: a request edited to what its model accepts (argoproxy/pipeline/capabilities.py says what that
is), and the one parameter an upstream's 400 names, found so the request can be sent once more without it.

Pure functions over parsed bodies, in the shape of the internal chat request (chat completions; also what every
API door's request becomes) or of an API door's own body relayed as it is to an upstream that serves its API
(the door says where its body keeps what is adapted: `Front.native_shape`). Each change is returned as "param=what" for the
X-Adapted-Params header and the journal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from argoproxy.pipeline.capabilities import Caps

EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# A thinking budget in tokens (as an API door's request gives it) -> effort, for models that take only an
# effort: below 4096 low, below 16384 medium, else high (docs/client-apis.md has the table and its reasons).
BUDGET_STEPS = ((4096, "low"), (16384, "medium"))
REASONING_OFF = "none"  # OpenAI's spelling; adapt moves it to the nearest value a model takes
REASONING_DEFAULT = "medium"  # "on, at the model's default": OpenAI's default effort
DROPPED = "dropped"


@dataclass(frozen=True)
class Shape:
    """Where one wire format keeps the reasoning effort and the output limit."""

    effort: tuple[str, str] | str
    limit: str
    renames_limit: bool  # a family's max_tokens_field applies (chat completions only)


CHAT = Shape("reasoning_effort", "max_tokens", True)  # the internal chat request


def adapt_request(body: dict[str, Any], caps: Caps, shape: Shape = CHAT, supply_limit: bool = True) -> list[str]:
    """Edit `body` in place to what `caps` accepts; the changes made ("top_p=dropped", "thinking.type=adaptive")."""
    where = shape
    changes: list[str] = []
    if isinstance(body.get("thinking"), dict):
        _thinking(body, caps, where, changes)
    _effort(body, caps, where, changes)
    _sampling(body, caps, changes)
    _limits(body, caps, where, changes, supply_limit)
    return changes


# ---------------------------------------------------------------- reasoning
def _thinking(body: dict[str, Any], caps: Caps, where: Shape, changes: list[str]) -> None:
    thinking = body["thinking"]
    kind = thinking.get("type")
    budget = thinking.get("budget_tokens")
    if caps.thinking is not None and kind not in caps.thinking:
        if kind == "enabled" and "adaptive" in caps.thinking:
            body["thinking"] = {"type": "adaptive"}
            changes.append("thinking.type=adaptive")
            return
        del body["thinking"]
        changes.append("thinking=dropped")
        if kind == "enabled" and _effort_of(body, where) is None and caps.effort != ():
            effort = _closest(budget_effort(budget), caps.effort)
            _set_effort(body, where, effort)
            changes.append(f"{_effort_name(where)}={effort}")
        return
    if budget is not None and not caps.thinking_budget:
        body["thinking"] = {k: v for k, v in thinking.items() if k != "budget_tokens"}
        changes.append("thinking.budget_tokens=dropped")


def _effort(body: dict[str, Any], caps: Caps, where: Shape, changes: list[str]) -> None:
    effort = _effort_of(body, where)
    if effort is not None and caps.effort is not None and effort not in caps.effort:
        closest = _closest(effort, caps.effort) if caps.effort else None
        _set_effort(body, where, closest)
        changes.append(f"{_effort_name(where)}={closest or DROPPED}")
        effort = closest
    if effort is not None and isinstance(body.get("thinking"), dict) and not caps.thinking_with_effort:
        del body["thinking"]  # the effort was asked for explicitly; thinking is what the family takes alone
        changes.append("thinking=dropped")


def budget_effort(budget: Any) -> str:
    """The effort a thinking budget in tokens stands for (BUDGET_STEPS)."""
    if isinstance(budget, int) and not isinstance(budget, bool):
        for below, effort in BUDGET_STEPS:
            if budget < below:
                return effort
    return "high"


def thinking_effort(kind: Any, budget: Any = None) -> str | None:
    """The reasoning_effort a door's thinking switch means: `enabled` with a budget, `adaptive`, `disabled`
    (an API door's thinking switch, as its request says it); None for none of them."""
    if kind == "enabled":
        return budget_effort(budget) if budget is not None else REASONING_DEFAULT
    if kind == "adaptive":
        return REASONING_DEFAULT
    return REASONING_OFF if kind == "disabled" else None


def _closest(effort: str, taken: tuple[str, ...] | None) -> str:
    """`effort`, or the taken value nearest to it on EFFORT_ORDER (the lower one on a tie)."""
    if taken is None or effort in taken:
        return effort
    rank = {name: i for i, name in enumerate(EFFORT_ORDER)}
    at = rank.get(effort, rank["medium"])
    known = [t for t in taken if t in rank] or list(taken)
    return min(known, key=lambda t: (abs(rank.get(t, at) - at), rank.get(t, at)))


def _effort_of(body: dict[str, Any], where: Shape) -> str | None:
    if isinstance(where.effort, str):
        value = body.get(where.effort)
    else:
        holder = body.get(where.effort[0])
        value = holder.get(where.effort[1]) if isinstance(holder, dict) else None
    return value if isinstance(value, str) else None


def _set_effort(body: dict[str, Any], where: Shape, effort: str | None) -> None:
    if isinstance(where.effort, str):
        if effort is None:
            body.pop(where.effort, None)
        else:
            body[where.effort] = effort
        return
    outer, inner = where.effort
    holder = dict(body[outer]) if isinstance(body.get(outer), dict) else {}
    if effort is None:
        holder.pop(inner, None)
    else:
        holder[inner] = effort
    if holder:
        body[outer] = holder
    else:
        body.pop(outer, None)


def _effort_name(where: Shape) -> str:
    return where.effort if isinstance(where.effort, str) else ".".join(where.effort)


# ---------------------------------------------------------------- sampling and limits
def _sampling(body: dict[str, Any], caps: Caps, changes: list[str]) -> None:
    for name in ("temperature", "top_p"):
        taken = getattr(caps, name)
        value = body.get(name)
        if value is None or taken is True:
            continue
        if taken is False or not isinstance(value, (int, float)) or float(value) != taken:
            del body[name]
            changes.append(f"{name}={DROPPED}")
    if not caps.sampling_together and body.get("temperature") is not None and body.get("top_p") is not None:
        del body["top_p"]  # the family takes either: temperature is the one clients mean
        changes.append(f"top_p={DROPPED}")


def _limits(body: dict[str, Any], caps: Caps, where: Shape, changes: list[str], supply: bool) -> None:
    limit = where.limit
    if where.renames_limit and caps.max_tokens_field != limit and body.get(limit) is not None:
        target = caps.max_tokens_field
        value = body.pop(limit)
        if body.get(target) is None:
            body[target] = value
            changes.append(f"{limit}->{target}")
        else:
            changes.append(f"{limit}={DROPPED}")
        limit = target
    if where.renames_limit and not caps.token_limits_together and body.get("max_tokens") is not None \
            and body.get("max_completion_tokens") is not None:
        del body["max_tokens"]
        changes.append(f"max_tokens={DROPPED}")
    if supply and caps.max_tokens is not None and body.get(limit) is None and body.get("max_tokens") is None \
            and body.get("max_completion_tokens") is None:
        body[limit] = caps.max_tokens
        changes.append(f"{limit}={caps.max_tokens}")


# ---------------------------------------------------------------- an upstream's 400
# Parameters the proxy may leave out to get an answer; never the messages, the model or the output limit.
OPTIONAL = ("top_p", "temperature", "top_k", "presence_penalty", "frequency_penalty", "repetition_penalty",
            "seed", "logit_bias", "logprobs", "top_logprobs", "reasoning_effort", "parallel_tool_calls",
            "stream_options", "service_tier", "verbosity", "store", "prediction", "thinking", "output_config",
            "reasoning", "context_management", "metadata")
# A name in quotes, also as JSON text escapes them (ARGO quotes the provider's error inside its own message:
# `\"thinking.type.enabled\"`), or a dotted path before a colon, as pydantic words a field's error
# (`output_config.effort: Input should be ...`; not a host name in a URL, `https://thinking.example.com: ...`).
_QUOTED = re.compile(r"""['"`]([a-z_]+(?:\.[a-z_]+)*)\\?['"`]|(?<![\w./])([a-z_]+(?:\.[a-z_]+)+):\s""")
_PARAM_FIELD = re.compile(r"""param\\?['"]\s*:\s*\\?['"]([a-z_]+)""")


def refused_param(body: dict[str, Any], error_text: str) -> str | None:
    """The optional parameter of `body` an upstream's 400 names, or None. Where it names both temperature and
    top_p (a family that takes only one of them), top_p."""
    text = error_text[:4000]
    named = set()
    for match in _QUOTED.finditer(text):
        root = (match.group(1) or match.group(2)).split(".", 1)[0]
        if root in body and root in OPTIONAL:
            named.add(root)
    declared = _PARAM_FIELD.search(text)  # an OpenAI error object quoted in the message names it exactly
    if declared and declared.group(1) in body and declared.group(1) in OPTIONAL:
        named = {declared.group(1)}
    if {"temperature", "top_p"} <= named:
        return "top_p"
    return next((n for n in OPTIONAL if n in named), None)


# ---------------------------------------------------------------- structured output worded otherwise
TYPES_TAKEN = "'text' or 'json_object'"  # what pydantic says llama-cpp-python takes


def schema_as_json_object(body: dict[str, Any], error_text: str) -> dict[str, Any] | None:
    """The response_format to send again with, or None. llama-cpp-python takes a JSON schema as
    `{"type": "json_object", "schema": ...}` and refuses OpenAI's `json_schema` type with a 500 carrying
    pydantic's "Input should be 'text' or 'json_object'": every structured request (the SDK's parse(), Codex's
    --output-schema, the doors' text.format and responseSchema) failed on it."""
    asked = body.get("response_format")
    if not (isinstance(asked, dict) and asked.get("type") == "json_schema"):
        return None
    text = error_text[:4000]
    if "response_format" not in text or TYPES_TAKEN not in text:  # its words, not a client's schema echoed
        return None
    spec = asked.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return {"type": "json_object", "schema": schema} if isinstance(schema, dict) else {"type": "json_object"}
