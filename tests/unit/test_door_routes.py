"""The door only routes (issue 70, item 2): serve/door.py hands the API routes to the sequence through its entries
and every other route family to a handler in the room that owns it, each given what it uses when serve/build.py
builds it; every answer a handler makes is recorded through the same two records (Answers.recorded: a CallStart
and a CallEnd), as the sequence's are. door.py's length and the classes' are held by test_maintainability.py."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from argoproxy.edge.http_objects import Request
from argoproxy.serve.door import Door

ROOT = Path(__file__).resolve().parents[2]
# What the door calls on the Gateway: the sequence's entries, and the call every request starts with.
SEQUENCE_ENTRIES = {"api", "relays", "relay_native", "count_tokens"}
# Where each family's handler lives (`api` and `front` go to the sequence, through the door's own two methods).
ROOMS = {"models": "argoproxy.fronts.model_listing", "state": "argoproxy.fronts.kept",
         "forward": "argoproxy.serve.upstream_routes", "backend": "argoproxy.serve.upstream_routes"}


def gateway_reaches(source: str) -> list[str]:
    """Each `self.gateway.<name>` in a source, with `()` when it is called."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and \
                node.value.attr == "gateway" and isinstance(node.value.value, ast.Name) and \
                node.value.value.id == "self":
            found.append(node.attr)
    calls = {node.func.attr for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Attribute)
             and node.func.value.attr == "gateway"}
    return sorted(f"{name}()" if name in calls else name for name in found)


def test_the_reach_check_sees_attributes_and_calls():
    assert gateway_reaches("self.gateway.answers.secrets.data(x); self.gateway.api(c, b)") == ["answers", "api()"]


def test_the_door_calls_only_the_sequences_entries():
    reached = gateway_reaches((ROOT / "argoproxy/serve/door.py").read_text())
    assert reached and all(r.endswith("()") and r[:-2] in SEQUENCE_ENTRIES for r in reached), reached


def test_each_family_is_handled_in_the_room_that_owns_it(make):
    door, _, _ = make(RESPONSES_STORE="on", FORWARD_PATHS="*")
    assert isinstance(door, Door)
    for family, room in ROOMS.items():
        handler = door.families[family]
        assert type(handler).__module__ == room, family
    assert door.families["api"].__self__ is door and door.families["front"].__self__ is door
    assert door.families["own"].__module__ == "argoproxy.serve.build"  # observe/own_pages.py, handed values


def test_each_family_records_its_call_once_with_what_was_sent(make):
    door, _, calls = make(RESPONSES_STORE="on", FORWARD_PATHS="*", LLM_PARAMS="model=pseudo,temperature=0.1")
    for method, target, status in (("GET", "/", 200), ("GET", "/v1/models", 200),
                                   ("GET", "/v1/models/pseudo", 200), ("GET", "/api/tags", 200),
                                   ("GET", "/v1/responses/resp_missing", 404), ("GET", "/v1/files", 200),
                                   ("GET", "/ui", 200), ("GET", "/ui/data", 200), ("GET", "/nowhere/at/all?x=1", 200)):
        before = len(calls)
        answer = door.handle(Request.of(method, target))
        body = answer.get_data()
        assert answer.status_code == status, (target, body[:200])
        assert len(calls) == before + 1, target
        start, end = calls[-1]
        assert (end.status, end.bytes_out) == (status, len(body)), target
        assert start.client.path == target.split("?")[0].strip("/"), target
    names = [m["id"] for m in json.loads(door.handle(Request.of("GET", "/v1/models")).get_data())["data"]]
    assert "pseudo" in names
