"""People, console sessions and sign-in flows in the SQLite key store (SQLiteKeyStore has these methods): a
person's record (argoproxy/people/), each console session by the digest of its cookie's value, and each sign-in
under way by the digest of its `state` (single use, short-lived). A key's owner and a team's groups and leads are
columns of their own tables (ADDED_FOR_PEOPLE)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from argoproxy.people import Person

PEOPLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id TEXT PRIMARY KEY, subject TEXT NOT NULL, issuer TEXT NOT NULL, email TEXT NOT NULL,
    email_verified INTEGER NOT NULL, name TEXT NOT NULL, groups_list TEXT NOT NULL, admin INTEGER NOT NULL,
    admin_set INTEGER NOT NULL, disabled REAL NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS people_email ON people (email COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS console_sessions (
    digest TEXT PRIMARY KEY, person TEXT NOT NULL, csrf TEXT NOT NULL, created REAL NOT NULL, used REAL NOT NULL,
    id_token TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_person ON console_sessions (person);
CREATE TABLE IF NOT EXISTS signin_flows (
    digest TEXT PRIMARY KEY, browser TEXT NOT NULL, nonce TEXT NOT NULL, verifier TEXT NOT NULL,
    created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS signin_flows_created ON signin_flows (created);
"""
ADDED_FOR_PEOPLE = (("keys", "owner", "TEXT NOT NULL DEFAULT ''"), ("teams", "member_groups", "TEXT NOT NULL DEFAULT ''"),
                    ("teams", "leads", "TEXT NOT NULL DEFAULT ''"), ("people", "argo_user", "TEXT NOT NULL DEFAULT ''"),
                    ("keys", "argo_user", "TEXT NOT NULL DEFAULT ''"))
OWNER_OF = "p.disabled, p.last_seen, p.argo_user"  # a key's owner's state, read beside the key (LEFT JOIN people p)
_PERSON = ("id, subject, issuer, email, email_verified, name, groups_list, admin, disabled, first_seen, "
           "last_seen, argo_user")
SEP = "\x1f"  # between a person's groups: a group's name may hold a comma
FLOW_SECONDS = 600.0  # a sign-in started and not finished within this is gone
# Sign-ins under way at once, at most: anyone may begin one (GET /ui/auth/login needs no key), so beyond this the
# oldest is dropped; a flood of them neither fills the disk nor slows each write (its deletes use an index).
MOST_FLOWS = 10_000


@dataclass(frozen=True)
class ConsoleSession:
    """A console session as stored: the person's id, its CSRF token, when it began and was last used, and the ID
    token the provider gave (its end-session endpoint's id_token_hint)."""
    person: str
    csrf: str
    created: float
    used: float
    id_token: str = ""


@dataclass(frozen=True)
class SignInFlow:
    """A sign-in under way: the digest of the browser's cookie it is bound to, its nonce and PKCE verifier."""
    browser: str
    nonce: str
    verifier: str
    created: float


class PeopleRows:
    """SQLiteKeyStore's people, sessions and flows (its `_write` and `_read`)."""

    def _write(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # ------------------------------------------------------------ people
    def people(self) -> list[Person]:
        return [_person_of(row) for row in self._read(f"SELECT {_PERSON} FROM people ORDER BY email, id")]

    def person(self, person_id: str) -> Person | None:
        rows = self._read(f"SELECT {_PERSON} FROM people WHERE id = ?", (person_id,))
        return _person_of(rows[0]) if rows else None

    def person_by_email(self, email: str) -> Person | None:
        """The person of that email (any case); of several, the one seen last."""
        rows = self._read(f"SELECT {_PERSON} FROM people WHERE email = ? COLLATE NOCASE ORDER BY last_seen DESC "
                          "LIMIT 1", (email.strip(),))
        return _person_of(rows[0]) if rows else None

    def signed_in(self, person: Person, rule_admin: bool) -> Person:
        """Record a sign-in: what the provider says now (email, name, groups); admin when `rule_admin`
        (OIDC_ADMIN_GROUPS, ADMIN_EMAILS) or an admin made them one; disabled and first seen as they were; their
        ARGO username the provider's (OIDC_ARGO_USER_CLAIM) when it gives one, else as it was."""
        with self._write() as db:
            db.execute(f"INSERT INTO people ({_PERSON}, admin_set) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, 0) "
                       "ON CONFLICT (id) DO UPDATE SET "
                       "email = excluded.email, email_verified = excluded.email_verified, name = excluded.name, "
                       "groups_list = excluded.groups_list, admin = excluded.admin OR admin_set, "
                       "last_seen = excluded.last_seen, "
                       "argo_user = CASE WHEN excluded.argo_user = '' THEN argo_user ELSE excluded.argo_user END",
                       (person.id, person.subject, person.issuer, person.email, int(person.email_verified),
                        person.name, SEP.join(person.groups), int(rule_admin), person.first_seen, person.last_seen,
                        person.argo_user))
            row = db.execute(f"SELECT {_PERSON} FROM people WHERE id = ?", (person.id,)).fetchone()
        return _person_of(row)

    def set_person_disabled(self, person_id: str, disabled: bool, now: float) -> bool:
        """Disable (every console session of theirs ends; their keys are refused at their next look-up) or
        enable a person, their last sign-in counted from now (OIDC_INACTIVE_DAYS); False: no such person."""
        with self._write() as db:
            done = db.execute("UPDATE people SET disabled = ?, last_seen = CASE WHEN ? THEN last_seen ELSE ? END "
                              "WHERE id = ?", (now if disabled else 0.0, disabled, now, person_id))
            if disabled:
                db.execute("DELETE FROM console_sessions WHERE person = ?", (person_id,))
            return bool(done.rowcount > 0)

    def set_person_admin(self, person_id: str, admin: bool) -> bool:
        with self._write() as db:
            done = db.execute("UPDATE people SET admin = ?, admin_set = ? WHERE id = ?",
                              (int(admin), int(admin), person_id))
            return bool(done.rowcount > 0)

    def set_person_argo_user(self, person_id: str, argo_user: str) -> bool:
        """An admin's: the ARGO username their requests carry ("": none); False: no such person."""
        with self._write() as db:
            done = db.execute("UPDATE people SET argo_user = ? WHERE id = ?", (argo_user, person_id))
            return bool(done.rowcount > 0)

    # ------------------------------------------------------------ console sessions
    def create_session(self, digest: str, session: ConsoleSession) -> None:
        with self._write() as db:
            db.execute("INSERT INTO console_sessions VALUES (?, ?, ?, ?, ?, ?)", (
                digest, session.person, session.csrf, session.created, session.used, session.id_token))

    def console_session(self, digest: str) -> ConsoleSession | None:
        rows = self._read("SELECT person, csrf, created, used, id_token FROM console_sessions WHERE digest = ?",
                          (digest,))
        return ConsoleSession(*rows[0]) if rows else None

    def touch_session(self, digest: str, now: float) -> None:
        with self._write() as db:
            db.execute("UPDATE console_sessions SET used = ? WHERE digest = ?", (now, digest))

    def end_session(self, digest: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM console_sessions WHERE digest = ?", (digest,))

    # ------------------------------------------------------------ sign-in flows
    def save_flow(self, digest: str, flow: SignInFlow) -> None:
        with self._write() as db:
            db.execute("DELETE FROM signin_flows WHERE created < ?", (flow.created - FLOW_SECONDS,))
            db.execute("INSERT OR REPLACE INTO signin_flows VALUES (?, ?, ?, ?, ?)",
                       (digest, flow.browser, flow.nonce, flow.verifier, flow.created))
            db.execute("DELETE FROM signin_flows WHERE rowid <= (SELECT max(rowid) FROM signin_flows) - ?",
                       (MOST_FLOWS,))

    def take_flow(self, digest: str, now: float) -> SignInFlow | None:
        """The flow of that state, taken once (a replayed callback finds none); None when gone or too old."""
        with self._write() as db:
            row = db.execute("DELETE FROM signin_flows WHERE digest = ? RETURNING browser, nonce, verifier, created",
                             (digest,)).fetchone()
        flow = SignInFlow(*row) if row else None
        return flow if flow is not None and now - flow.created <= FLOW_SECONDS else None


def _person_of(row: tuple[Any, ...]) -> Person:
    pid, subject, issuer, email, verified, name, groups, admin, disabled, first, last, argo_user = row
    return Person(pid, subject, issuer, email, bool(verified), name, tuple(g for g in groups.split(SEP) if g),
                  bool(admin), float(disabled), float(first), float(last), argo_user or "")
