"""Whose a key is and which team it is in, as the caller's role allows (roles.py). An admin names any owner by email
(`owner`: null or "none" for a service key) and any team. A person's key is theirs, in one of their teams (one
team: that; two: the one the body names), within the team's limits (within_team.py); a lead may make one for a
person of a team they lead. Anything else is refused (403) and nothing is made."""

from __future__ import annotations

import dataclasses
from typing import Any

from argoproxy.console.admin_call import AdminCall
from argoproxy.console.fields import invalid
from argoproxy.console.within_team import check_within
from argoproxy.errors import ProxyError
from argoproxy.people.membership import teams_of
from argoproxy.teamkeys.cli import owner_id
from argoproxy.teamkeys.records import KeyRecord

KEEP = object()  # the body names no owner


def owner_and_team(call: AdminCall, owner: Any, fields: dict[str, Any],
                   record: KeyRecord | None = None) -> dict[str, Any]:
    """The owner and team the key gets (KeyRecord's fields), checked against the caller's role."""
    if call.scope.admin:
        return {} if owner is KEEP else {"owner": owner_by_email(call, owner)}
    if record is not None and owner is not KEEP and owner_by_email(call, owner) != record.owner:
        raise forbidden("Only an admin may give a key to another person.", "owner")
    owner_id_ = record.owner if record is not None else own_or_members(call, owner)
    if record is not None and "team" not in fields:
        team = record.team  # the key's, which the caller sees (roles.py)
    else:
        team = team_for(call, owner_id_, fields.get("team"))
    limits = call.store.team(team) if team else None
    if limits is not None:
        check_within(dataclasses.replace(record or KeyRecord("", "", ""), **{**fields, "team": team}), limits)
    return {"owner": owner_id_, "team": team}


def owner_by_email(call: AdminCall, email: Any) -> str:
    if email is None or (isinstance(email, str) and email.strip().lower() in ("", "none")):
        return ""
    if not isinstance(email, str):
        raise invalid("`owner` is a person's email (or null for a service key).", "owner", "invalid_value")
    try:
        return owner_id(call.store, email)
    except ValueError as exc:
        raise invalid(str(exc), "owner", "no_such_person") from None


def own_or_members(call: AdminCall, owner: Any) -> str:
    """A key a person makes is theirs; a lead's may be a person's of a team they lead."""
    scope = call.scope
    if owner is KEEP or owner is None:
        return scope.person_id
    try:
        wanted = owner_by_email(call, owner)
    except ProxyError:  # no such person: refused as another's is (whether one exists is not said)
        wanted = ""
    if not wanted or (wanted != scope.person_id and not lead_of(call, wanted)):
        raise forbidden("A key you make is yours: only an admin, or the lead of that person's team, may make one for "
                        "another person.", "owner")
    return wanted


def lead_of(call: AdminCall, person_id: str) -> tuple[str, ...]:
    """The teams the caller leads that the person belongs to."""
    person = call.store.person(person_id) if person_id else None
    if person is None:
        return ()
    return tuple(t for t in teams_of(person, call.store.teams(), call.default_team) if t in call.scope.leads)


def team_for(call: AdminCall, owner: str, asked: str | None) -> str:
    """The key's team: the one asked for, if the owner's and the caller's; else the owner's only one."""
    scope = call.scope
    allowed = scope.key_teams() if owner == scope.person_id else lead_of(call, owner)
    if not allowed:
        raise forbidden("You belong to no team, so you cannot make a key: an admin or a team's lead can add you (a "
                        "team's groups, or OIDC_DEFAULT_TEAM).", "team", "no_team")
    if asked is None:
        if len(allowed) > 1:
            raise invalid(f"You belong to more than one team: name the key's `team`, one of {', '.join(allowed)}.",
                          "team", "team_required")
        return allowed[0]
    if asked not in allowed:
        raise forbidden(f"The key's team is one of yours: {', '.join(allowed)}.", "team", "team_not_allowed")
    return asked


def forbidden(message: str, param: str, code: str = "owner_not_allowed") -> ProxyError:
    return ProxyError(403, message, type="permission_error", param=param, code=code)
