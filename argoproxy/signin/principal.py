"""Who a console or `/admin/v1/` request is: the admin key (API_KEY_SECRET, API_KEY_FILE, the generated one) sent
as `Authorization: Bearer`, or a live console session; None otherwise. A team key is never a principal. With auth
off the proxy has no keys and everyone is its admin, as the status page has always been."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from argoproxy.edge.auth import presented_keys
from argoproxy.people import Person
from argoproxy.people.membership import teams_led

if TYPE_CHECKING:
    from argoproxy.edge.auth import Auth
    from argoproxy.edge.http_objects import Request
    from argoproxy.signin.sessions import ConsoleSessions


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin_key" | "session"
    person: Person | None  # None for the admin key
    admin: bool
    leads: frozenset[str]  # the names of the teams the person leads
    csrf: str | None  # the session's CSRF token, which every change must carry; None for the admin key

    @classmethod
    def admin_key(cls) -> "Principal":
        return cls("admin_key", None, True, frozenset(), None)


def principal_of(request: Request, auth: Auth, sessions: ConsoleSessions | None = None) -> Principal | None:
    """The admin key as `Authorization: Bearer` (no other spelling: a browser cannot be made to send it), else the
    console session the request's cookie names (sessions: the app's, `auth.sessions`, unless given; None when
    sign-in is off)."""
    sessions = sessions if sessions is not None else auth.sessions
    if not auth.enabled:
        return Principal.admin_key()
    bearer = presented_keys({"Authorization": request.headers.get("Authorization", "")}, key_headers=())
    if auth.admin_key is not None and any(auth.admin_key.accepts(key) for key in bearer):
        return Principal.admin_key()
    live = sessions.of(request.headers) if sessions is not None else None
    if live is None:
        return None
    person = live.person
    return Principal("session", person, person.admin, teams_led(person, sessions.store.teams()) if sessions else
                     frozenset(), live.csrf)
