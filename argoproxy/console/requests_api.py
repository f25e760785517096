"""`/admin/v1/requests`: the request log (argoproxy/requestlog/), newest first, 50 a page after a keyset cursor,
filtered by `person` (an email), `key`, `model`, `status`, `door`, `session` and the time (`from`, `to`: epoch
seconds or ISO 8601, UTC unless it says); `/admin/v1/requests/ID`: one request's row and its journal line (the
bodies where the journal kept them). An admin reads every request; anyone else the requests of the keys their role
sees (roles.py), their own when they name no key or person; another's is not found."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from argoproxy.console.admin_call import AdminCall, no_such, not_allowed
from argoproxy.console.usage_api import person_seen
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.requestlog import Filters, detail, page
from argoproxy.requestlog.rows import LogRow

PARAMS = ("person", "key", "model", "status", "door", "session", "from", "to", "cursor")


def serve(call: AdminCall) -> Answer:
    if call.method != "GET":
        raise not_allowed("/admin/v1/requests", "GET")
    if not call.rest:
        return listed(call)
    if len(call.rest) != 1:
        raise no_such("request", "/".join(call.rest))
    found = detail(call.store, call.rest[0][:128])
    if found is None or not sees(call, LogRow(**found["row"])):
        raise no_such("request", call.rest[0])
    return Answer.json(found)


def listed(call: AdminCall) -> Answer:
    params = call.params(*PARAMS)
    try:
        found = page(call.store, filters_of(call, params), params.get("cursor"), 50)
    except ValueError as exc:
        raise ProxyError(400, str(exc), param="cursor", code="invalid_cursor") from None
    return Answer.json({"data": [r.as_dict() for r in found.rows], "next": found.cursor})


def filters_of(call: AdminCall, params: dict[str, str]) -> Filters:
    scope = call.scope
    key, person = params.get("key"), params.get("person")
    owner = person_seen(call, person) if person is not None else None
    if key is not None and not scope.admin and not any(r.name == key and scope.sees_key(r)
                                                       for r in call.store.records()):
        raise ProxyError(404, "No key of that name that you may see.", param="key", code="key_not_found")
    if not scope.admin and key is None and owner is None:
        owner = scope.person_id  # their own requests
    status = params.get("status")
    if status is not None and not (status.isdigit() and len(status) == 3):
        raise ProxyError(400, "status is an HTTP status, three digits.", param="status", code="invalid_value")
    return Filters(owner=owner, key=key, model=params.get("model"), status=int(status) if status else None,
                   door=params.get("door"), session=params.get("session"), since=when(params, "from"),
                   until=when(params, "to"))


def when(params: dict[str, str], name: str) -> float | None:
    text = params.get(name)
    if text is None:
        return None
    try:
        at = float(text)
    except ValueError:
        at = iso_time(text, name)
    if not math.isfinite(at):
        raise ProxyError(400, f"{name} is a time: epoch seconds or ISO 8601.", param=name, code="invalid_value")
    return at


def iso_time(text: str, name: str) -> float:
    try:
        parsed = datetime.fromisoformat(text[:64])
    except ValueError:
        raise ProxyError(400, f"{name} is a time: epoch seconds or ISO 8601.", param=name,
                         code="invalid_value") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def sees(call: AdminCall, row: LogRow) -> bool:
    scope = call.scope
    if scope.admin or (scope.person_id and row.owner == scope.person_id):
        return True
    record: Any = next((r for r in call.store.records() if r.name == row.key), None)
    return record is not None and scope.sees_key(record)
