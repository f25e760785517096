"""`/admin/v1/me`: who the caller is (a person, or the admin key), the teams they belong to and lead, and each budget
of theirs (their keys' and their teams') with what is left of it in its current period, as admission counts it, and
their ARGO username (an admin's to set: people_api.py); /admin/v1/me/connections: their MCP connections
(connections_api.py)."""

from __future__ import annotations

import time
from typing import Any

from argoproxy.console.admin_call import AdminCall, not_allowed
from argoproxy.console.connections_api import mine
from argoproxy.console.keys_api import key_json
from argoproxy.edge.http_objects import Answer
from argoproxy.spend import dollars


def serve(call: AdminCall) -> Answer:
    if call.rest[:1] == ("connections",):
        return mine(call, call.rest[1:])
    if call.rest or call.method != "GET":
        raise not_allowed("/admin/v1/me", "GET")
    scope, now, person = call.scope, time.time(), call.principal.person
    keys = [r for r in call.store.records() if person is not None and r.owner == person.id]
    teams = [t for t in (call.store.team(n) for n in scope.key_teams()) if t is not None]
    return Answer.json({
        "kind": call.principal.kind, "admin": scope.admin, "teams": list(scope.teams), "leads": sorted(scope.leads),
        "person": None if person is None else {"id": person.id, "email": person.email, "name": person.name,
                                               "groups": list(person.groups), "argo_user": person.argo_user},
        "keys": [{**key_json(r, now), **left(call.store, r, now)} for r in keys],
        "team_budgets": [{"team": t.name, **left(call.store, t.windows, now)} for t in teams]})


def left(store: Any, record: Any, now: float) -> dict[str, Any]:
    """A budget (tokens, dollars) and what is left of it in its current period; None where there is no budget."""
    tokens = record.budget
    used = store.used_in_period(record, now) if tokens is not None and tokens.period != "hour" else None
    money = record.budget_usd
    spent = store.spent(record, now) if money is not None else None
    return {"budget_tokens": tokens.tokens if tokens else None, "budget_period": tokens.period if tokens else None,
            "tokens_used": used, "tokens_left": None if used is None or tokens is None else max(tokens.tokens - used, 0),
            "budget_usd_limit": dollars(money.nanos) if money else None,
            "budget_usd_period": money.period if money else None,
            "usd_spent": None if spent is None else dollars(spent),
            "usd_left": None if spent is None or money is None else dollars(max(money.nanos - spent, 0))}
