"""`/admin/v1/audit`: the audit log (teamkeys/audit.py), newest first, 50 a page (?cursor= the `next` of the page
before)."""

from __future__ import annotations

from argoproxy.console.admin_call import AdminCall, not_allowed
from argoproxy.console.paging import PAGE, listed
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError


def serve(call: AdminCall) -> Answer:
    if call.rest or call.method != "GET":
        raise not_allowed("/admin/v1/audit", "GET")
    call.scope.require_admin("read the audit log")
    cursor = call.params("cursor").get("cursor", "")
    try:
        entries = call.store.audit(cursor, PAGE + 1)
    except ValueError as exc:
        raise ProxyError(400, str(exc), param="cursor", code="invalid_cursor") from None
    shown = entries[:PAGE]
    return Answer.json(listed([e.as_json() for e in shown], shown[-1].cursor if len(entries) > PAGE else None))
