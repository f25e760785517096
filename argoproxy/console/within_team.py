"""A key a person (not an admin) makes or changes stays within its team's limits: each limit the team sets, the key
may narrow and never widen (a rate, a count, a budget, an expiry, a glob the team's globs cover). A team's limits bind
its keys anyway (they are shared); this refuses the key that claims more, with the field named (a 400)."""

from __future__ import annotations

from datetime import datetime, timezone
from fnmatch import fnmatchcase
from typing import Any

from argoproxy.console.fields import LIMITS
from argoproxy.errors import ProxyError

COUNTS = ("rpm", "tpm", "max_parallel", "tool_rpm", "tool_parallel")


def check_within(key: Any, team: Any) -> None:
    """Refuse the key (a KeyRecord, as it would be) at its first limit beyond `team`'s, by the field's name."""
    for name in LIMITS:
        if beyond(name, getattr(key, name), team):
            raise ProxyError(400, f"`{name}` is beyond your team {team.name!r}'s limit ({shown(name, team)}); a key "
                                  "of yours may narrow its team's limits, never widen them.", param=name,
                             code="beyond_team_limit")


def beyond(name: str, value: Any, team: Any) -> bool:
    limit: Any = getattr(team, name, None)
    if name in COUNTS:
        return bool(limit) and value > limit  # 0 on the key: no cap of its own, the team's binds
    if name == "priority":
        return bool(value > (limit or 0))
    if name in ("budget", "budget_usd"):
        amount = "tokens" if name == "budget" else "nanos"
        return limit is not None and value is not None and getattr(value, amount) > getattr(limit, amount)
    if name == "expires":
        return bool(limit) and bool(value) and value > limit  # never on the key: the team's expiry ends it
    if name in ("models", "tools"):  # none on the key: the team's globs alone
        return bool(limit) and not all(any(fnmatchcase(g, t) for t in limit) for g in value)
    return False


def shown(name: str, team: Any) -> str:
    limit: Any = getattr(team, name, None)
    if name in ("models", "tools"):
        return ",".join(limit)
    if name == "expires":
        return datetime.fromtimestamp(limit, timezone.utc).strftime("%Y-%m-%d")
    return str(limit or 0)
