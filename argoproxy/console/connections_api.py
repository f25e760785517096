"""People's connections to the per-person MCP servers (docs/mcp-credentials.md), as the console shows and ends them.
`/admin/v1/me/connections` (GET): the caller's own, one row a per-person server: an `auth: per_user` one connected or
not, since when, until when its access token holds and whether it renews; an `auth: token_exchange` one marked as
such. DELETE `/admin/v1/me/connections/NAME`: their Disconnect (a session's change: its CSRF token and Origin, as
every change). `/admin/v1/people/ID/connections` (GET): the ones a person holds; DELETE it, or
`.../connections/NAME`, an admin's revocation, audited. Never a token: the rows come from mcp/connection_states.py
through AdminCall.connections (None without a per-person server: the rows' names, from the store alone)."""

from __future__ import annotations

from typing import Any

from argoproxy.console.admin_call import AdminCall, no_such, not_allowed
from argoproxy.edge.http_objects import Answer
from argoproxy.people import Person
from argoproxy.teamkeys.credential_store import credentials_of


def mine(call: AdminCall, rest: tuple[str, ...]) -> Answer:
    """/admin/v1/me/connections[/NAME]: a person's own (the admin key, no person, holds none)."""
    person, states = call.principal.person, call.connections
    if not rest:
        if call.method != "GET":
            raise not_allowed("/admin/v1/me/connections", "GET")
        return Answer.json({"data": states.of(person.id) if states is not None and person is not None else []})
    if len(rest) != 1:
        raise no_such("connection", "/".join(rest))
    if call.method != "DELETE":
        raise not_allowed("/admin/v1/me/connections/NAME", "DELETE")
    name = rest[0]
    if states is None or person is None or name not in {row["server"] for row in states.of(person.id)
                                                        if row["auth"] == "per_user"}:
        raise no_such("connection", name)
    gone = states.forget(person.id, name)
    call.audit("connections.disconnect", person.email or person.id, {"server": name})
    return Answer.json({"server": name, "disconnected": bool(gone)})


def of_person(call: AdminCall, person: Person, rest: tuple[str, ...]) -> Answer:
    """/admin/v1/people/ID/connections[/NAME]: whoever sees the person reads them; an admin revokes."""
    if len(rest) > 1:
        raise no_such("connection", "/".join(rest))
    if call.method == "GET" and not rest:
        return Answer.json({"data": held(call, person)})
    if call.method != "DELETE":
        raise not_allowed("/admin/v1/people/ID/connections", "GET, DELETE")
    call.scope.require_admin("revoke a person's MCP connections")
    server = rest[0] if rest else None
    if server is not None and server not in {row["server"] for row in held(call, person)}:
        raise no_such("connection", server)
    gone = call.connections.forget(person.id, server) if call.connections is not None \
        else credentials_of(call.store).delete(person.id, server)
    call.audit("people.connections.revoke", person.email or person.id,
               {"revoked": gone, **({"server": server} if server else {})})
    return Answer.json({"revoked": gone})


def held(call: AdminCall, person: Person) -> list[dict[str, Any]]:
    if call.connections is not None:
        rows: list[dict[str, Any]] = call.connections.held(person.id)
        return rows
    return [{"server": name} for name in credentials_of(call.store).servers(person.id)]
