"""Console sessions: an opaque random id in a cookie (HttpOnly, SameSite=Lax, Path=/, Secure and `__Host-` named
under an https PUBLIC_URL), kept in the key store by its SHA-256 (any replica serves it; the store never holds the
id), with an idle and an absolute lifetime (CONSOLE_SESSION_IDLE, CONSOLE_SESSION_MAX) and a CSRF token each. A
session whose person is disabled, gone or inactive (OIDC_INACTIVE_DAYS) is no session."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping


from argoproxy.people import Person
from argoproxy.people.membership import refusal
from argoproxy.teamkeys.people_rows import ConsoleSession

TOUCH_SECONDS = 60.0  # a session's last use is written at most this often (one write a minute, not one a request)
MOST_COOKIE = 16384  # a Cookie header longer than this is not read (Gunicorn takes 8,190 bytes a header)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Cookies:
    """The cookies' names and flags: `secure` under an https PUBLIC_URL (then `__Host-` names, which a browser
    takes only from a secure origin, with Path=/ and no Domain: no sibling site can plant them)."""
    secure: bool

    @property
    def session(self) -> str:
        return ("__Host-" if self.secure else "") + "cot_console"

    @property
    def flow(self) -> str:
        return ("__Host-" if self.secure else "") + "cot_signin"

    @property
    def after(self) -> str:
        """Where a sign-in goes when it is done: an MCP client's authorization request (authserver/pages.py)."""
        return ("__Host-" if self.secure else "") + "cot_after"

    # Werkzeug's cookie functions are imported where used: the door and what runs behind it import no Flask or
    # Werkzeug (tests/unit/test_gateway.py), and a proxy without sign-in never reads a console cookie.
    def read(self, headers: Mapping[str, str], name: str) -> str:
        from werkzeug.http import parse_cookie
        raw = headers.get("Cookie", "")
        return str(parse_cookie(raw).get(name, "")) if raw and len(raw) <= MOST_COOKIE else ""

    def set(self, name: str, value: str, max_age: float) -> str:
        from werkzeug.http import dump_cookie
        return dump_cookie(name, value, max_age=int(max_age), path="/", secure=self.secure, httponly=True,
                           samesite="Lax")

    def clear(self, name: str) -> str:
        from werkzeug.http import dump_cookie
        return dump_cookie(name, "", max_age=0, path="/", secure=self.secure, httponly=True, samesite="Lax")


@dataclass(frozen=True)
class Live:
    """A session found valid now: its person and CSRF token, its digest and the ID token (logout's hint)."""
    person: Person
    csrf: str
    digest: str
    id_token: str


class ConsoleSessions:
    def __init__(self, store: Any, cookies: Cookies, idle: float, most: float, inactive_days: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.cookies, self.idle, self.most = store, cookies, idle, most
        self.inactive_days, self.clock = inactive_days, clock

    def begin(self, person: Person, id_token: str) -> str:
        """A new session for `person`: the Set-Cookie value carrying its id."""
        session_id, now = secrets.token_urlsafe(32), self.clock()
        self.store.create_session(digest(session_id), ConsoleSession(person.id, secrets.token_urlsafe(32), now, now,
                                                                     id_token))
        return self.cookies.set(self.cookies.session, session_id, self.most)

    def of(self, headers: Mapping[str, str]) -> Live | None:
        """The live session the request's cookie names, else None (expired ones are removed)."""
        session_id = self.cookies.read(headers, self.cookies.session)
        if not session_id:
            return None
        key, now = digest(session_id), self.clock()
        session = self.store.console_session(key)
        if session is None:
            return None
        if now - session.created > self.most or now - session.used > self.idle:
            self.store.end_session(key)
            return None
        person = self.store.person(session.person)
        if person is None or refusal(person, now, self.inactive_days):
            return None
        if now - session.used > TOUCH_SECONDS:
            self.store.touch_session(key, now)
        return Live(person, session.csrf, key, session.id_token)

    def end(self, live: Live) -> str:
        """End the session: the Set-Cookie value that clears its cookie."""
        self.store.end_session(live.digest)
        return self.cookies.clear(self.cookies.session)


def csrf_header(headers: Mapping[str, str]) -> str:
    """The X-CSRF-Token header's value in any case: the server's headers are title-cased (X-Csrf-Token), a test's
    as written."""
    return next((value.strip() for name, value in headers.items() if name.lower() == "x-csrf-token"), "")


def csrf_holds(live: Live, presented: str) -> bool:
    return bool(presented) and hmac.compare_digest(live.csrf.encode(), presented.encode("utf-8", "surrogatepass"))
