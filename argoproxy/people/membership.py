"""What a sign-in's claims make of a person, and what a person belongs to: their teams (by the provider's groups,
else OIDC_DEFAULT_TEAM), the teams they lead (by a verified email), whether they are an admin, and when one not
seen at sign-in for OIDC_INACTIVE_DAYS counts as disabled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Protocol

from argoproxy.people.person import Person, person_id

MAX_GROUPS = 256  # a provider's groups claim can be long; what is kept of it is bounded
MAX_TEXT = 256  # an email, a name or a group's name, at most (characters)
DAY = 86400.0


class Teamlike(Protocol):
    """What membership reads of a team (argoproxy/teamkeys/records.py: TeamRecord)."""
    name: str
    groups: tuple[str, ...]
    leads: tuple[str, ...]


@dataclass(frozen=True)
class AdminRule:
    """OIDC_ADMIN_GROUPS and ADMIN_EMAILS (an email counts only where the provider says it is verified)."""
    groups: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()

    @classmethod
    def of(cls, groups: Iterable[str], emails: Iterable[str]) -> "AdminRule":
        return cls(frozenset(groups), frozenset(e.strip().lower() for e in emails if e.strip()))

    def admits(self, person: Person) -> bool:
        return bool(self.groups.intersection(person.groups)) or (
            person.email_verified and person.email.lower() in self.emails)


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def groups_of(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """The groups a provider names in `claim` (a list of strings, or one string); anything else: none."""
    value = claims.get(claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(g[:MAX_TEXT] for g in value[:MAX_GROUPS] if isinstance(g, str) and g))


def person_of_claims(claims: Mapping[str, Any], issuer: str, groups_claim: str, now: float) -> Person:
    """The person an ID token's verified claims describe, as of this sign-in (admin and disabled are the store's)."""
    subject = _text(claims.get("sub"))
    return Person(person_id(issuer, subject), subject, issuer, email=_text(claims.get("email")).strip(),
                  email_verified=claims.get("email_verified") is True, name=_text(claims.get("name")),
                  groups=groups_of(claims, groups_claim), first_seen=now, last_seen=now)


def teams_of(person: Person, teams: Iterable[Teamlike], default_team: str = "") -> tuple[str, ...]:
    """The teams a person belongs to: those naming one of their groups, else OIDC_DEFAULT_TEAM (when it exists),
    else none (they sign in, and hold no key until one is given)."""
    teams = list(teams)
    mine = tuple(t.name for t in teams if set(t.groups).intersection(person.groups))
    if mine:
        return mine
    return (default_team,) if default_team and any(t.name == default_team for t in teams) else ()


def teams_led(person: Person, teams: Iterable[Teamlike]) -> frozenset[str]:
    """The teams whose leads name the person's email, where the provider says it is verified."""
    if not person.email_verified or not person.email:
        return frozenset()
    email = person.email.lower()
    return frozenset(t.name for t in teams if email in (lead.lower() for lead in t.leads))


def inactive(person: Person, now: float, days: float) -> bool:
    """Not seen at sign-in for `days` (0: never counts as inactive)."""
    return bool(days) and bool(person.last_seen) and now - person.last_seen > days * DAY


def refusal(person: Person | None, now: float, days: float) -> str | None:
    """Why a person's keys and sessions are not accepted now, or None."""
    if person is None:
        return None
    if person.disabled:
        return "disabled"
    if inactive(person, now, days):
        return f"not signed in for more than {days:g} days (OIDC_INACTIVE_DAYS)"
    return None
