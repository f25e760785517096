"""Who is calling the console: a Principal. THE ONE PLACE THE SIGN-IN MERGE REPLACES: issue 71's sign-in
(argoproxy/signin/principal.py) provides `Principal` and `principal_of` with these names and fields, a console
session too; until then the admin key as `Authorization: Bearer` is the only principal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from argoproxy.edge.auth import presented_keys

if TYPE_CHECKING:
    from argoproxy.edge.auth import Auth
    from argoproxy.edge.http_objects import Request


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin_key" | "session"
    person: Any = None  # argoproxy.people.Person once sign-in is merged; None for the admin key
    admin: bool = False
    leads: frozenset[str] = frozenset()  # team names the person leads
    csrf: str | None = None  # the session's CSRF token; None for the admin key sent as Authorization: Bearer


ADMIN_KEY = Principal("admin_key", admin=True)


def principal_of(request: Request, auth: Auth) -> Principal | None:
    """The admin key (API_KEY_SECRET / API_KEY_FILE / the generated one) as `Authorization: Bearer`, compared in
    constant time over every admin key (edge/auth.py's AcceptedKeys); None otherwise. A team key is never one."""
    bearer = presented_keys(request.headers, key_headers=())
    admin_key = auth.admin_key
    if admin_key is None or not bearer:
        return None
    return ADMIN_KEY if admin_key.accepts(bearer[0]) else None
