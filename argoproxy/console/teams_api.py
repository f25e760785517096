"""`/admin/v1/teams`: list (GET, 50 a page by name, each with its active keys' count), create (POST: `name` and the
`teams create` options), one team (GET /teams/NAME), update (PATCH: limits, budgets, model and tool globs) and
delete (DELETE /teams/NAME, ?move_keys_out=true): the `teams` command's store methods. `groups` (the provider's
groups whose members belong to it) and `leads` (emails) are an admin's to set; a team's lead changes its limits,
budgets and globs; a person sees the teams they belong to (roles.py)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any, Mapping

from argoproxy.console.admin_call import AdminCall, no_such, not_allowed
from argoproxy.console.fields import TEAM_FIELDS, changes, invalid, name_of
from argoproxy.console.paging import listed, page
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.teamkeys.records import TeamRecord
from argoproxy.teamkeys.store import TeamError
from argoproxy.teamkeys.teams_cli import people_changes

PEOPLE_FIELDS = frozenset({"groups", "leads"})  # an admin's alone


def serve(call: AdminCall) -> Answer:
    if not call.rest:
        if call.method == "GET":
            return list_teams(call)
        if call.method == "POST":
            call.scope.require_admin("make a team")
            return create(call)
        raise not_allowed("/admin/v1/teams", "GET, POST")
    if len(call.rest) != 1:
        raise no_such("team", "/".join(call.rest))
    name = call.rest[0]
    if call.method == "GET":
        return Answer.json(team_json(find(call, name), members(call.store), time.time()))
    call.scope.require_lead(name, "change a team")
    if call.method == "PATCH":
        return update(call, name)
    if call.method == "DELETE":
        return delete(call, name)
    raise not_allowed("/admin/v1/teams/NAME", "GET, PATCH, DELETE")


def list_teams(call: AdminCall) -> Answer:
    params = call.params("cursor")
    counted, now = members(call.store), time.time()
    scope = call.scope
    shown, after = page((t for t in call.store.teams() if scope.sees_team(t.name)), lambda t: t.name,
                        params.get("cursor", ""))
    return Answer.json(listed([team_json(t, counted, now) for t in shown], after))


def create(call: AdminCall) -> Answer:
    body = call.body()
    name = name_of(body, "team")
    if name.lower() == "none":
        raise ProxyError(400, "The team name 'none' is reserved (it takes a key out of its team).", param="name",
                         code="invalid_value")
    fields = {**changes(body, TEAM_FIELDS, ignore=frozenset({"name"}) | PEOPLE_FIELDS), **people_fields(body)}
    team = dataclasses.replace(TeamRecord(name, created=time.time()), **fields)
    try:
        call.store.create_team(team)
    except TeamError as exc:
        raise ProxyError(409, str(exc), param="name", code="team_exists") from None
    call.audit("teams.create", name, fields)
    return Answer.json(team_json(team, {}, time.time()), 201)


def update(call: AdminCall, name: str) -> Answer:
    body = call.body()
    if PEOPLE_FIELDS.intersection(body):
        call.scope.require_admin("change a team's groups or leads")
    fields = {**changes(body, TEAM_FIELDS, ignore=PEOPLE_FIELDS), **people_fields(body)}
    if not fields:
        raise ProxyError(400, "Nothing to change: give one of " + ", ".join(sorted(TEAM_FIELDS | PEOPLE_FIELDS))
                         + ".", code="nothing_to_change")
    find(call, name)
    team = call.store.update_team(name, fields)
    call.audit("teams.update", name, fields)
    return Answer.json(team_json(team, members(call.store), time.time()))


def delete(call: AdminCall, name: str) -> Answer:
    call.scope.require_admin("delete a team")
    move = call.params("move_keys_out").get("move_keys_out", "false")
    if move not in ("true", "false"):
        raise ProxyError(400, "move_keys_out is true or false.", param="move_keys_out", code="invalid_value")
    find(call, name)
    try:
        moved = call.store.delete_team(name, move == "true")
    except TeamError as exc:
        raise ProxyError(409, str(exc), code="team_has_keys") from None
    call.audit("teams.delete", name, {"move_keys_out": move == "true"})
    return Answer.json({"deleted": name, "keys_moved_out": moved})


def people_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """`groups` and `leads`: lists of strings (null or [] clears one), parsed as `teams update --groups/--leads`."""
    texts: dict[str, str | None] = dict.fromkeys(PEOPLE_FIELDS)
    for name in sorted(PEOPLE_FIELDS.intersection(body)):
        value = body[name]
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise invalid(f"`{name}` must be a list of strings (or null to clear it).", name, "invalid_value")
        texts[name] = ",".join(value or []) or "none"
    try:
        return people_changes(argparse.Namespace(**texts))
    except ValueError as exc:
        raise invalid(str(exc).replace("--", ""), None, "invalid_value") from None


def find(call: AdminCall, name: str) -> TeamRecord:
    team: TeamRecord | None = call.store.team(name)
    if team is None or not call.scope.sees_team(name):
        raise no_such("team", name)
    return team


def members(store: Any) -> dict[str, int]:
    """Each team's active keys, counted."""
    counted: dict[str, int] = {}
    for key in store.records():
        if key.team and not key.revoked:
            counted[key.team] = counted.get(key.team, 0) + 1
    return counted


def team_json(t: TeamRecord, counted: dict[str, int], now: float) -> dict[str, Any]:
    return {"name": t.name, "state": "expired" if t.expires and t.expires <= now else "active",
            "keys": counted.get(t.name, 0), "models": list(t.models), "tools": list(t.tools), "rpm": t.rpm,
            "tpm": t.tpm, "budget": str(t.budget) if t.budget else None,
            "budget_usd": str(t.budget_usd) if t.budget_usd else None, "max_parallel": t.max_parallel,
            "tool_rpm": t.tool_rpm, "tool_parallel": t.tool_parallel, "priority": t.priority,
            "expires": t.expires or None, "created": t.created, "groups": list(t.groups), "leads": list(t.leads)}
