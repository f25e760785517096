"""Observers read frozen records of a call (pipeline/call_records.py), never the live Plan, Outcome or Exchange:
every observer the proxy registers takes a CallStart and a CallEnd (a stream's observer its CallStart), the
observers' packages read no `.plan` or `.outcome` and import none of the live records, and the records are
frozen, made as the call is sent and as it ends."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import msgspec
import pytest

from argoproxy.config.settings import load_settings
from argoproxy.edge.http_objects import Request
from argoproxy.pipeline.call_records import CallEnd, CallStart
from argoproxy.serve.proxy import build_proxy
from argoproxy.teamkeys import service as team_keys
from argoproxy.tracing import tracer as tracing
from tests.fakes.fake_upstream import FakeUpstream, sse_chunks
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.source_tree import parsed

ROOT = Path(__file__).resolve().parents[2] / "argoproxy"
# The observers' own packages: every module in them reads a call only through its records
OBSERVER_PACKAGES = ("observe", "tracing", "spend", "admission")
# Observers that live beside other work in their module (a team key's admission reads the request it admits)
OBSERVER_FUNCTIONS = {"teamkeys/service.py": ("observe", "spent_of")}
LIVE_FIELDS = {"plan", "outcome"}  # a Call's mutable phases
LIVE_RECORDS = {"Plan", "Outcome", "DeploymentExchange"}

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def live_reads(tree: ast.AST) -> list[str]:
    """Where `tree` reads a call's live phases or imports the live records: one line each."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in LIVE_FIELDS:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("argoproxy.pipeline"):
            if node.module == "argoproxy.pipeline.exchange":
                found.append(f"line {node.lineno}: imports {node.module}")
            found.extend(f"line {node.lineno}: imports {alias.name}" for alias in node.names
                         if alias.name in LIVE_RECORDS)
    return found


def test_the_live_reads_check_finds_them():
    assert live_reads(ast.parse("def observe(call): return call.plan.model, call.outcome.status")) == [
        "line 1: .plan", "line 1: .outcome"]
    assert live_reads(ast.parse("from argoproxy.pipeline.call import Call, Plan")) == ["line 1: imports Plan"]
    assert live_reads(ast.parse("def observe(start, end): return start.model, end.status")) == []


def test_the_observers_packages_never_read_the_live_call():
    """observe/, tracing/, spend/ and admission/ read a call's start and end records; the tracer's attempt hooks
    read the start record the exchange made as it sent."""
    found = {}
    for package in OBSERVER_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            reads = live_reads(parsed(path))
            if reads:
                found[str(path.relative_to(ROOT))] = reads
    for module, names in OBSERVER_FUNCTIONS.items():
        tree = ast.parse((ROOT / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in names:
                reads = live_reads(node)
                if reads:
                    found[f"{module}:{node.name}"] = reads
    assert found == {}


def hinted(function: typing.Callable[..., object]) -> list[object]:
    """The types a function's parameters are annotated with, in order."""
    hints = typing.get_type_hints(function)
    return [hints.get(name) for name in inspect.signature(function).parameters]


def test_every_observer_the_proxy_registers_takes_the_frozen_records(tmp_path, monkeypatch):
    """With every observer on (DEBUG line, journals, key_limits, team keys, metrics, traces, status page), each one
    registered is annotated (CallStart, CallEnd), and the stream observers (CallStart)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setattr(tracing.Sdk, "_instance", None)
        settings = load_settings({}, environ={
            "HOME": str(tmp_path), "FAST_PATH": "off", "TARGET_BASE_URL": "http://upstream.test/v1/",
            "DEBUG": "true", "LOG_DIR": str(tmp_path / "logs"), "TRACING": "on", "STATUS_PAGE": "true",
            "KEY_LIMITS": '{"TEAM_A_KEY": {"rpm": 100}}', "TEAM_A_KEY": "sk-team-a", "ENABLE_AUTH": "true",
            "API_KEY_SECRET": "sk-admin-0123456789", "KEYS_DB": str(tmp_path / "keys.db")})
        answers = build_proxy(settings, FakeUpstream()).gateway.answers
        owners = {getattr(observer, "__self__", None).__class__.__name__ if hasattr(observer, "__self__")
                  else observer.__module__ for observer in answers.observers}
        assert owners == {"argoproxy.observe.logs", "argoproxy.observe.journal", "KeyLimiter", "TeamKeys",
                          "Metrics", "Tracing", "StatusPage"}, owners
        # Team keys declare what they read of the records as protocols of their own (teamkeys/ imports nothing
        # of pipeline/): the records must have every member those protocols name.
        records = ([CallStart, CallEnd], [team_keys.Started, team_keys.Ended])
        for observer in answers.observers:
            assert hinted(observer) in records, observer
        assert answers.stream_hooks and all(hinted(hook) == [CallStart] for hook in answers.stream_hooks)
    assert hinted(team_keys.spent_of) == [team_keys.Ended]
    for protocol, record in ((team_keys.Started, CallStart), (team_keys.Ended, CallEnd)):
        members = {name for name in vars(protocol) if not name.startswith("_")}
        assert members and members <= set(record.__struct_fields__), (protocol, members)


def test_the_records_are_frozen_and_made_as_the_call_is_sent_and_ends(make):
    door, up, calls = make()
    up.reply({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                           "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    answer = door.handle(Request.of("POST", "/v1/chat/completions", CHAT))
    assert answer.status_code == 200, answer.get_data()
    (start, end), = calls
    assert (start.kind, start.model, start.upstream_model, start.client_stream) == ("chat", "gpt-4o", "gpt-4o", False)
    assert (end.status, end.upstream_status, end.usage["completion_tokens"]) == (200, 200, 1)
    assert end.used is not None and end.used.output == 1 and end.bytes_out == len(answer.get_data())
    for record, field in ((start, "model"), (end, "status")):
        with pytest.raises(AttributeError):
            setattr(record, field, None)
        assert not hasattr(record, "plan") and not hasattr(record, "outcome")
    assert isinstance(start, msgspec.Struct) and start.__struct_config__.frozen
    assert end.__struct_config__.frozen


def test_a_stream_observer_is_handed_the_start_and_counted_out_by_the_end(make):
    """The streams in flight (metrics): a stream's observer gets its start as its answer starts; the end record
    says its answer was relayed, so the gauge goes back down without the observer keeping the call."""
    door, up, calls = make()
    handed: list[CallStart] = []
    door.gateway.answers.stream_hooks.append(handed.append)
    up.stream(sse_chunks(["Hel", "lo"]))
    answer = door.handle(Request.of("POST", "/v1/chat/completions", {**CHAT, "stream": True}))
    body = b"".join(answer.response)
    assert b"[DONE]" in body
    (start, end), = calls
    assert handed == [start] and start.client_stream and start.upstream_stream
    assert end.relayed and end.first_byte_at is not None and end.bytes_out == len(body)
