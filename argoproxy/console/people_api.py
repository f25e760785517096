"""`/admin/v1/people`: the people who signed in (GET, 50 a page by email; GET /people/ID: one, by id or email), and
an admin's changes: POST /people/ID/disable (their keys and console sessions stop within a second, as `people
disable`'s), /enable, and PATCH /people/ID {"admin": true|false, "argo_user": NAME|""} (their ARGO username:
docs/backends/argo-per-person.md); /people/ID/connections, the per_user MCP servers they connected and an admin's
revocation of them (connections_api.py). A lead lists the people of the teams they lead;
a person is their own (/admin/v1/me)."""

from __future__ import annotations

import time
from typing import Any

from argoproxy.console.admin_call import AdminCall, no_such, not_allowed
from argoproxy.console.connections_api import of_person
from argoproxy.console.fields import argo_user_field, invalid
from argoproxy.console.paging import listed, page
from argoproxy.edge.http_objects import Answer
from argoproxy.people import Person
from argoproxy.people.membership import teams_of


def serve(call: AdminCall) -> Answer:
    if not call.rest:
        if call.method != "GET":
            raise not_allowed("/admin/v1/people", "GET")
        return list_people(call)
    person = find(call, call.rest[0])
    if len(call.rest) == 1:
        if call.method == "GET":
            return Answer.json(person_json(person, call))
        if call.method == "PATCH":
            return patch(call, person)
        raise not_allowed("/admin/v1/people/ID", "GET, PATCH")
    if len(call.rest) >= 2 and call.rest[1] == "connections":
        return of_person(call, person, call.rest[2:])
    if len(call.rest) != 2 or call.rest[1] not in ("disable", "enable"):
        raise no_such("person", "/".join(call.rest))
    if call.method != "POST":
        raise not_allowed(f"/admin/v1/people/ID/{call.rest[1]}", "POST")
    return set_disabled(call, person, call.rest[1] == "disable")


def list_people(call: AdminCall) -> Answer:
    if not call.scope.admin and not call.scope.leads:
        call.scope.require_admin("list people")
    params = call.params("cursor")
    teams = call.store.teams()
    rows = (p for p in call.store.people() if call.scope.sees_person(p, teams, call.default_team))
    shown, after = page(sorted(rows, key=sort_key), sort_key, params.get("cursor", ""))
    return Answer.json(listed([person_json(p, call, teams) for p in shown], after))


def sort_key(person: Person) -> str:
    return f"{person.email.lower()}\x1f{person.id}"


def find(call: AdminCall, named: str) -> Person:
    """A person by id or email, if the caller sees them; else not found (whether or not they exist)."""
    person: Person | None = call.store.person(named) or (
        call.store.person_by_email(named.strip().lower()) if "@" in named else None)
    if person is None or not call.scope.sees_person(person, call.store.teams(), call.default_team):
        raise no_such("person", named)
    return person


def patch(call: AdminCall, person: Person) -> Answer:
    """An admin's changes: `admin`, `argo_user` (a person may set neither of their own)."""
    body = call.body()
    unknown = sorted(set(body) - {"admin", "argo_user"})
    if unknown or not body:
        raise invalid("This takes `admin` (true or false) and `argo_user` (an ARGO username, or \"\" for none).",
                      (unknown or ["admin"])[0][:100], "unknown_field" if unknown else "invalid_value")
    call.scope.require_admin("make a person an admin" if "admin" in body else "set a person's ARGO username")
    if "admin" in body and not isinstance(body["admin"], bool):
        raise invalid("`admin` is true or false.", "admin", "invalid_value")
    argo_user = argo_user_field(body["argo_user"]) if "argo_user" in body else None  # both checked, then written
    if "admin" in body:
        call.store.set_person_admin(person.id, body["admin"])
        call.audit("people.admin", person.email or person.id, {"admin": body["admin"]})
    if argo_user is not None:
        call.store.set_person_argo_user(person.id, argo_user)
        call.audit("people.argo_user", person.email or person.id, {"argo_user": argo_user})
    return Answer.json(person_json(call.store.person(person.id), call))


def set_disabled(call: AdminCall, person: Person, disabled: bool) -> Answer:
    call.scope.require_admin(f"{'disable' if disabled else 'enable'} a person")
    call.store.set_person_disabled(person.id, disabled, time.time())
    call.audit("people.disable" if disabled else "people.enable", person.email or person.id, {})
    return Answer.json(person_json(call.store.person(person.id), call))


def person_json(p: Person, call: AdminCall, teams: list[Any] | None = None) -> dict[str, Any]:
    teams = call.store.teams() if teams is None else teams
    return {"id": p.id, "email": p.email, "name": p.name, "groups": list(p.groups), "admin": p.admin,
            "state": "disabled" if p.disabled else "active", "disabled": p.disabled or None,
            "teams": list(teams_of(p, teams, call.default_team)), "first_seen": p.first_seen,
            "last_seen": p.last_seen, "argo_user": p.argo_user}
