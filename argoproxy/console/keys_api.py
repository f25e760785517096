"""`/admin/v1/keys`: list (GET, 50 a page by name; ?team=), create (POST: `name` and the `keys create` options as
fields, `owner` an email; the key itself is in this answer only), one key (GET /keys/NAME), update (PATCH
/keys/NAME; `argo_user`, the ARGO username its requests carry, an admin's only) and revoke (DELETE /keys/NAME):
the `keys` command's store methods, in force on every worker and replica as its are. A person sees and changes the keys their role gives (roles.py): a key they make is theirs, in one of
their teams, within its limits (within_team.py); another's is not found."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from argoproxy.config.listener import generate_key
from argoproxy.console.admin_call import AdminCall, no_such, not_allowed
from argoproxy.console.fields import KEY_FIELDS, argo_user_field, changes, name_of
from argoproxy.console.key_owner import KEEP, owner_and_team
from argoproxy.console.paging import listed, page
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import KeyExists, TeamError


def serve(call: AdminCall) -> Answer:
    if not call.rest:
        if call.method == "GET":
            return list_keys(call)
        if call.method == "POST":
            return create(call)
        raise not_allowed("/admin/v1/keys", "GET, POST")
    if len(call.rest) != 1:
        raise no_such("key", "/".join(call.rest))
    name = call.rest[0]
    if call.method == "GET":
        return Answer.json(key_json(find(call, name), time.time()))
    if call.method == "PATCH":
        return update(call, name)
    if call.method == "DELETE":
        return revoke(call, name)
    raise not_allowed("/admin/v1/keys/NAME", "GET, PATCH, DELETE")


def list_keys(call: AdminCall) -> Answer:
    params = call.params("cursor", "team")
    now, team = time.time(), params.get("team")
    scope = call.scope
    rows = (r for r in call.store.records() if (team is None or r.team == team) and scope.sees_key(r))
    shown, after = page(rows, lambda r: r.name, params.get("cursor", ""))
    emails = {p.id: p.email for p in call.store.people()} if any(r.owner for r in shown) else {}
    return Answer.json(listed([{**key_json(r, now), "owner_email": emails.get(r.owner, "")} for r in shown], after))


def create(call: AdminCall) -> Answer:
    body = call.body()
    name = name_of(body, "key")
    fields = changes(body, KEY_FIELDS, ignore=frozenset({"name", "owner", "argo_user"}))
    fields.update(owner_and_team(call, body.get("owner", KEEP), fields))
    fields.update(argo_user(call, body))
    key = generate_key()
    record = dataclasses.replace(KeyRecord(name, digest(key), key[:12], created=time.time()), **fields)
    try:
        call.store.create(record)
    except (KeyExists, TeamError) as exc:
        raise ProxyError(409, str(exc), param="name" if isinstance(exc, KeyExists) else "team",
                         code="key_exists" if isinstance(exc, KeyExists) else "no_such_team") from None
    call.audit("keys.create", name, fields)
    answer = Answer.json({"key": key, "record": key_json(record, time.time()),
                          "note": "The key is shown only in this answer: the store keeps its hash."}, 201)
    return answer


def update(call: AdminCall, name: str) -> Answer:
    body = call.body()
    fields = changes(body, KEY_FIELDS, ignore=frozenset({"owner", "argo_user"}))
    if not fields and "owner" not in body and "argo_user" not in body:
        raise ProxyError(400, "Nothing to change: give one of " + ", ".join(sorted(KEY_FIELDS | {"owner", "argo_user"}))
                         + ".", code="nothing_to_change")
    record = find(call, name, "active key")
    fields.update(owner_and_team(call, body.get("owner", KEEP), fields, record))
    fields.update(argo_user(call, body))
    try:
        done = call.store.update(name, fields)
    except TeamError as exc:
        raise ProxyError(409, str(exc), param="team", code="no_such_team") from None
    if not done:
        raise no_such("active key", name)
    call.audit("keys.update", name, fields)
    return Answer.json(key_json(find(call, name), time.time()))


def argo_user(call: AdminCall, body: dict[str, Any]) -> dict[str, str]:
    """The key's own ARGO username, when the body gives one ("": none): an admin's to set, never a person's (it
    names whom ARGO counts the requests to)."""
    if "argo_user" not in body:
        return {}
    call.scope.require_admin("set a key's ARGO username")
    return {"argo_user": argo_user_field(body["argo_user"])}


def revoke(call: AdminCall, name: str) -> Answer:
    find(call, name, "active key")
    if not call.store.revoke(name):
        raise no_such("active key", name)
    call.audit("keys.revoke", name, {})
    return Answer.json(key_json(find(call, name), time.time()))


def find(call: AdminCall, name: str, what: str = "key") -> KeyRecord:
    """The key of that name the caller may see (another person's: not found, as one that does not exist)."""
    found: KeyRecord | None = next((r for r in call.store.records() if r.name == name), None)
    if found is None or not call.scope.sees_key(found):
        raise no_such(what, name)
    return found


def key_json(r: KeyRecord, now: float) -> dict[str, Any]:
    """A key as the console shows it (never the key: its first characters only)."""
    state = "revoked" if r.revoked else "expired" if r.expires and r.expires <= now else "active"
    return {"name": r.name, "prefix": r.prefix, "owner": getattr(r, "owner", ""), "team": r.team, "state": state,
            "models": list(r.models), "tools": list(r.tools), "rpm": r.rpm, "tpm": r.tpm,
            "budget": str(r.budget) if r.budget else None, "budget_usd": str(r.budget_usd) if r.budget_usd else None,
            "max_parallel": r.max_parallel, "tool_rpm": r.tool_rpm, "tool_parallel": r.tool_parallel,
            "priority": r.priority, "expires": r.expires or None, "created": r.created, "revoked": r.revoked or None,
            "argo_user": r.argo_user}
