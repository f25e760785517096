"""`/admin/v1/keys`: list (GET, 50 a page by name; ?team=), create (POST: `name` and the `keys create` options as
fields; the key itself is in this answer only), one key (GET /keys/NAME), update (PATCH /keys/NAME) and revoke
(DELETE /keys/NAME): the `keys` command's store methods, in force on every worker and replica as its are."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from argoproxy.config.listener import generate_key
from argoproxy.console.admin_call import AdminCall, no_such, not_allowed
from argoproxy.console.fields import KEY_FIELDS, changes, name_of
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
    rows = (r for r in call.store.records() if team is None or r.team == team)
    shown, after = page(rows, lambda r: r.name, params.get("cursor", ""))
    return Answer.json(listed([key_json(r, now) for r in shown], after))


def create(call: AdminCall) -> Answer:
    body = call.body()
    name = name_of(body, "key")
    fields = changes(body, KEY_FIELDS, ignore=frozenset({"name"}))
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
    fields = changes(call.body(), KEY_FIELDS)
    if not fields:
        raise ProxyError(400, "Nothing to change: give one of " + ", ".join(sorted(KEY_FIELDS)) + ".",
                         code="nothing_to_change")
    try:
        done = call.store.update(name, fields)
    except TeamError as exc:
        raise ProxyError(409, str(exc), param="team", code="no_such_team") from None
    if not done:
        raise no_such("active key", name)
    call.audit("keys.update", name, fields)
    return Answer.json(key_json(find(call, name), time.time()))


def revoke(call: AdminCall, name: str) -> Answer:
    if not call.store.revoke(name):
        raise no_such("active key", name)
    call.audit("keys.revoke", name, {})
    return Answer.json(key_json(find(call, name), time.time()))


def find(call: AdminCall, name: str) -> KeyRecord:
    found: KeyRecord | None = next((r for r in call.store.records() if r.name == name), None)
    if found is None:
        raise no_such("key", name)
    return found


def key_json(r: KeyRecord, now: float) -> dict[str, Any]:
    """A key as the console shows it (never the key: its first characters only)."""
    state = "revoked" if r.revoked else "expired" if r.expires and r.expires <= now else "active"
    return {"name": r.name, "prefix": r.prefix, "owner": getattr(r, "owner", ""), "team": r.team, "state": state,
            "models": list(r.models), "tools": list(r.tools), "rpm": r.rpm, "tpm": r.tpm,
            "budget": str(r.budget) if r.budget else None, "budget_usd": str(r.budget_usd) if r.budget_usd else None,
            "max_parallel": r.max_parallel, "tool_rpm": r.tool_rpm, "tool_parallel": r.tool_parallel,
            "priority": r.priority, "expires": r.expires or None, "created": r.created, "revoked": r.revoked or None}
