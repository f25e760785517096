"""Capability adaptation in-process: the shipped table, its overrides, the request edits per shape, the
parameter an upstream's 400 names, and the table against the fake ARGO's rules (what one adapts, the other takes)."""

from __future__ import annotations

import copy
import json

import pytest

from argoproxy.fronts.messages import MessagesFront
from argoproxy.fronts.responses import ResponsesFront
from argoproxy.pipeline.adapt import CHAT, adapt_request, refused_param, thinking_effort

MESSAGES, RESPONSES = MessagesFront.native_shape, ResponsesFront.native_shape  # the doors' own bodies
from argoproxy.pipeline.capabilities import CapabilityTable, Caps, builtin_table, parse_overrides, squashed
from argoproxy.config.settings import SettingsError, load_settings
from tests.fakes import argo_rules

ARGO = CapabilityTable("argo")
OPENAI = CapabilityTable("openai")

# What the agents send (../shared/reference/fronts.md): Claude Code and the Anthropic SDK with extended thinking.
CLAUDE_CODE = {"max_tokens": 32000, "thinking": {"type": "enabled", "budget_tokens": 31999}, "temperature": 1,
               "top_p": 0.95, "messages": [{"role": "user", "content": "hi"}], "stream": True}


def family(name: str, table: CapabilityTable = ARGO) -> str | None:
    caps = table.lookup(name)
    return caps.family if caps else None


def test_names_find_their_family_in_every_spelling():
    assert squashed("argo:claude-opus-4.6") == squashed("claude-opus-4-6") == "claudeopus46"
    assert family("claudeopus46") == family("claude-opus-4-6-20260101") == "claude-4.6 (ARGO)"
    assert family("claude-opus-4-6", OPENAI) == "claude-4.5+"  # thinking rules are ARGO's own
    assert family("claude-sonnet-4-5-20250929") == "claude-4.5 (ARGO)"
    assert family("claude-opus-4-20250514") == family("claudeopus4") == "claude-4 (ARGO)"
    assert family("claude-opus-4-20250514", OPENAI) == "claude-4"
    assert family("claude-3-5-sonnet") == "claude-3 (ARGO)" and family("claude-3-5-sonnet", OPENAI) == "claude-3"
    assert family("claudesonnet37") == "claude-3 (ARGO)" and family("claude-sonnet-4-20250514") == "claude-4 (ARGO)"
    # a model ARGO adds later (its own list) is not taken for an old one, whose rules would drop its thinking
    assert family("claudeopus5") == "claude-3" and "(ARGO)" not in family("claudeopus48")
    assert family("gpt5mini") == family("gpt-5.5") == family("openai/gpt-5") == "gpt-5"
    assert family("gpt-5-chat-latest") == "gpt-5-chat"
    assert family("o3-mini", OPENAI) == "o-series" and family("gpto3", ARGO) == "o-series (ARGO)"
    assert family("gpto3", OPENAI) is None
    assert family("gemini25pro") == "gemini-2.5 (ARGO)" and family("gemini-2.5-pro", OPENAI) is None
    assert family("llama-3-8b") is None and family("x" * 10_000) is None


def test_claude_code_thinking_on_argo_claude_4_6_becomes_adaptive():
    body = copy.deepcopy(CLAUDE_CODE)
    changes = adapt_request(body, ARGO.lookup("claudeopus46"), MESSAGES)
    assert body["thinking"] == {"type": "adaptive"} and "top_p" not in body and body["temperature"] == 1
    assert changes == ["thinking.type=adaptive", "top_p=dropped"]


def test_where_only_effort_is_taken_the_budget_becomes_effort():
    for budget, effort in ((1024, "low"), (8000, "medium"), (31999, "high")):
        body = {**copy.deepcopy(CLAUDE_CODE), "thinking": {"type": "enabled", "budget_tokens": budget}}
        changes = adapt_request(body, ARGO.lookup("claude-sonnet-4-5"), MESSAGES)
        assert "thinking" not in body and body["output_config"] == {"effort": effort}
        assert changes[:2] == ["thinking=dropped", f"output_config.effort={effort}"]
    body = {"thinking": {"type": "enabled", "budget_tokens": 2000}, "output_config": {"effort": "high", "format": 1}}
    adapt_request(body, ARGO.lookup("claudehaiku45"), MESSAGES)
    assert body["output_config"] == {"effort": "high", "format": 1}  # the client's own effort wins


def test_effort_clamped_and_thinking_with_effort_where_refused():
    body = {"thinking": {"type": "adaptive"}, "output_config": {"effort": "minimal"}, "max_tokens": 5}
    assert adapt_request(body, ARGO.lookup("claude-opus-4-7"), MESSAGES) == ["output_config.effort=low"]
    body = {"output_config": {"effort": "max"}, "max_tokens": 5}
    adapt_request(body, ARGO.lookup("claudeopus46"), MESSAGES)
    assert body["output_config"] == {"effort": "high"}
    body = {"thinking": {"type": "disabled"}, "output_config": {"effort": "low"}, "max_tokens": 5}
    assert adapt_request(body, ARGO.lookup("claudeopus41"), MESSAGES) == ["thinking=dropped"]
    body = {"model": "gpt-4o", "reasoning_effort": "high"}
    assert adapt_request(body, OPENAI.lookup("gpt-4o"), CHAT) == ["reasoning_effort=dropped"]
    assert body == {"model": "gpt-4o"}


def test_sampling_rules():
    body = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 100}
    assert adapt_request(body, OPENAI.lookup("gpt-5"), CHAT) == ["temperature=dropped", "top_p=dropped",
                                                                   "max_tokens->max_completion_tokens"]
    assert body == {"max_completion_tokens": 100}
    body = {"temperature": 1, "max_completion_tokens": 5}
    assert adapt_request(body, OPENAI.lookup("gpt-5"), CHAT) == [] and body["temperature"] == 1
    body = {"temperature": 0.5, "top_p": 0.9, "max_tokens": 5}
    assert adapt_request(body, ARGO.lookup("claude-opus-4-7"), MESSAGES) == ["temperature=dropped", "top_p=dropped"]
    body = {"temperature": 0.5, "top_p": 0.9, "max_tokens": 5}
    assert adapt_request(body, ARGO.lookup("claude-opus-4-1"), MESSAGES) == []  # the one that takes both


def test_limits_supplied_where_required():
    body = {"messages": []}
    assert adapt_request(body, ARGO.lookup("claudesonnet46"), CHAT) == ["max_tokens=16384"]
    body = {"max_completion_tokens": 10}
    assert adapt_request(body, ARGO.lookup("claudesonnet46"), CHAT) == []
    body = {}
    assert adapt_request(body, ARGO.lookup("claudesonnet46"), MESSAGES, supply_limit=False) == []
    body = {"max_tokens": 10, "max_completion_tokens": 20}
    assert adapt_request(body, ARGO.lookup("gemini25flash"), CHAT) == ["max_tokens=dropped"]
    body = {"reasoning": {"effort": "high"}, "temperature": 0.3}
    assert adapt_request(body, OPENAI.lookup("gpt-5"), RESPONSES) == ["temperature=dropped"]


def test_unknown_models_are_sent_as_written():
    assert ARGO.lookup("my-own-model") is None and OPENAI.lookup(None) is None


def test_overrides_and_their_errors():
    overrides = parse_overrides({"my-claude": {"like": "claude-4.5 (ARGO)"}, "gpt-5*": {"adapt": False},
                                 "local-*": {"max_tokens": 4096, "top_p": False}})
    table = CapabilityTable("argo", overrides)
    assert table.lookup("my-claude").thinking == ()
    assert table.lookup("gpt5", "gpt-5-mini") is None  # matched by the name the client asked for
    assert table.lookup("local-llm") == Caps(family="configured", max_tokens=4096, top_p=False)
    entry = CapabilityTable("openai", overrides.then("*", {"sampling_together": False}))
    assert entry.lookup("anything").sampling_together is False
    assert parse_overrides('{"x": {"top_p": 1}}').items == (("x", (("top_p", 1.0),)),)
    for bad, message in (({"x": {"top_q": 1}}, ".x.top_q: unknown capability"),
                         ({"x": {"thinking": "adaptive"}}, ".x.thinking: expected a list"),
                         ({"x": {"like": "nope"}}, ".x.like: no family 'nope'"),
                         ("[1]", "expected an object")):
        with pytest.raises(ValueError, match=message.replace(".", r"\.", 1)):
            parse_overrides(bad)


def test_a_bad_setting_stops_start_up_naming_its_key(tmp_path):
    env = {"MODEL_CAPABILITIES": '{"gpt-5*": {"top_p": "never"}}'}
    with pytest.raises(SettingsError, match=r"MODEL_CAPABILITIES\.gpt-5\*\.top_p: expected true, false"):
        load_settings({}, environ=env)
    config = tmp_path / "config.yaml"
    config.write_text("models:\n  - {name: x, backend: openai, base_url: 'http://h/v1', capabilities: {max_tokens: 0}}\n")
    with pytest.raises(SettingsError, match=r"models\[0\]\.capabilities\.max_tokens: expected a positive integer"):
        load_settings({}, environ={"CONFIG_PATH": str(config)})


def test_refused_param_reads_argo_and_provider_errors():
    body = {"temperature": 0.5, "top_p": 0.9, "messages": [], "max_tokens": 4}
    for (status, error) in (argo_rules.refusal("openai", {"model": "gpt5", "temperature": 0.5}),
                            argo_rules.refusal("anthropic", {"model": "claudeopus47", "max_tokens": 5,
                                                             "temperature": 0.5})):
        assert status == 400 and refused_param(body, json.dumps(error)) == "temperature"
    both = argo_rules.refusal("anthropic", {"model": "claudesonnet45", "max_tokens": 5, "temperature": 1, "top_p": 1})
    assert refused_param(body, json.dumps(both[1])) == "top_p"


@pytest.mark.parametrize("model,asked", [
    ("claudeopus46", {"thinking": {"type": "enabled", "budget_tokens": 9}}),  # quoted inside ARGO's quoting
    ("claudeopus46", {"thinking": {"type": "adaptive", "budget_tokens": 9}}),  # thinking.adaptive.budget_tokens: ...
    ("claudeopus45", {"thinking": {"type": "adaptive"}}),
    ("claudeopus47", {"thinking": {"type": "disabled"}}),
    ("claudeopus47", {"output_config": {"effort": "minimal"}}),  # output_config.effort: Input should be ...
])
def test_refused_param_reads_argo_claude_refusals_as_they_come_on_the_wire(model, asked):
    """The answer's bytes are JSON: ARGO's message quotes the provider's error, so its quotes arrive escaped
    (the retry read none of ARGO's thinking or effort refusals, only the repr a test had made of them)."""
    status, error = argo_rules.refusal("anthropic", {"model": model, "max_tokens": 5, **asked})
    body = {"messages": [], "max_tokens": 5, **asked}
    assert status == 400 and refused_param(body, json.dumps(error)) == next(iter(asked))
    assert refused_param({"messages": [], "max_tokens": 5}, json.dumps(error)) is None  # only what the body holds
    assert refused_param(body, "max_tokens is required") is None  # never the limit, the model or the messages
    assert refused_param(body, "'messages' must not be empty") is None
    assert refused_param({**body, "thinking": {}}, "Could not reach https://thinking.example.com: timeout") is None


@pytest.mark.parametrize("model", sorted(argo_rules.CLAUDE_PROBED | argo_rules.GPT5 | argo_rules.GEMINI_ONE_LIMIT
                                          | {"claudesonnet4", "claudeopus4", "claudesonnet37"}))
def test_what_the_table_adapts_argo_takes(model):
    """Every probed ARGO model takes the agents' request shapes once the table has adapted them (and refuses
    some of them as sent: the fake is strict)."""
    endpoint = "anthropic" if model.startswith("claude") else "openai"
    shape = MESSAGES if endpoint == "anthropic" else CHAT
    requests = [copy.deepcopy(CLAUDE_CODE), {"temperature": 0.2, "top_p": 0.9, "messages": []},
                {"thinking": {"type": "adaptive", "budget_tokens": 5}, "output_config": {"effort": "xhigh"},
                 "max_tokens": 5, "messages": []},
                {"max_tokens": 9, "max_completion_tokens": 9, "reasoning_effort": "high", "messages": []},
                {"thinking": {"type": "disabled"}, "max_tokens": 5, "messages": []},
                {"thinking": {"type": "enabled", "budget_tokens": 31999}, "max_tokens": 16000, "messages": []}]
    refused_as_sent = 0
    for body in requests:
        body["model"] = model
        refused_as_sent += argo_rules.refusal(endpoint, body) is not None
        adapt_request(body, ARGO.lookup(model), shape)
        assert argo_rules.refusal(endpoint, body) is None, body
    assert refused_as_sent >= 1


def test_the_shipped_table_parses_and_names_each_family_once():
    names = [f.caps.family for f in builtin_table()]
    assert len(names) == len(set(names)) and all(f.match for f in builtin_table())


def test_which_backend_a_family_applies_to_is_the_providers_data():
    """The lookup (pipeline/capabilities.py) and the table's reader name no provider, and the shared table has no
    entry for one backend (issue 37): a provider's own families come from its record (ARGO's:
    providers/argo/capabilities.yaml)."""
    import re
    from pathlib import Path

    from argoproxy import providers
    from argoproxy.config import model_families
    from argoproxy.pipeline import capabilities

    for path in (capabilities.__file__, model_families.__file__):
        source = Path(path).read_text()
        for name in providers.names():
            assert not re.search(rf"\b{name}\b", source, re.IGNORECASE), (path, name)
    assert "where:" not in model_families.TABLE_FILE.read_text()
    argo = [f.caps.family for f in model_families.families_for("argo")]
    assert argo[0] == "claude-opus-4.7 (ARGO)" and "gemini-2.5 (ARGO)" in argo
    assert not any("(ARGO)" in f.caps.family for f in model_families.families_for("openai"))
    names = [f.caps.family for f in model_families.all_families()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("kind, budget, effort", [
    ("enabled", 1024, "low"), ("enabled", 4095, "low"), ("enabled", 4096, "medium"), ("enabled", 16383, "medium"),
    ("enabled", 16384, "high"), ("enabled", None, "medium"), ("adaptive", None, "medium"),
    ("disabled", None, "none"), ("other", None, None), (None, None, None)])
def test_a_doors_thinking_switch_as_reasoning_effort(kind, budget, effort):
    """docs/client-apis.md's table: the effort a thinking switch and budget stand for."""
    assert thinking_effort(kind, budget) == effort
