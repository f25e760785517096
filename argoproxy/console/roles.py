"""What a caller of `/admin/v1/` may see and change (Scope), the one answer every resource's module asks:
- an admin (the admin key, or a person an admin made one): everything;
- a team's lead: their own keys and usage, and their team's people, keys, usage and limits;
- a signed-in person: their own keys, usage and requests, and their teams read-only.
What is out of scope is refused 403 when the caller asked for a kind of thing their role never has (the audit log),
and 404 when it is one thing of a kind they have (another person's key), so that nothing says it exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from argoproxy.errors import ProxyError
from argoproxy.people.membership import teams_of
from argoproxy.signin.principal import Principal


@dataclass(frozen=True)
class Scope:
    principal: Principal
    person_id: str  # "" for the admin key
    teams: tuple[str, ...]  # the teams the person belongs to (their groups, else OIDC_DEFAULT_TEAM)
    leads: frozenset[str]

    @property
    def admin(self) -> bool:
        return self.principal.admin

    def key_teams(self) -> tuple[str, ...]:
        """The teams the person may make a key in: those they belong to, then those they lead."""
        return tuple(dict.fromkeys(self.teams + tuple(sorted(self.leads))))

    def sees_key(self, record: Any) -> bool:
        return self.admin or (bool(self.person_id) and record.owner == self.person_id) or \
            (bool(record.team) and record.team in self.leads)

    def sees_team(self, name: str) -> bool:
        return self.admin or name in self.leads or name in self.teams

    def sees_person(self, person: Any, teams: Iterable[Any], default_team: str) -> bool:
        """An admin sees everyone; a lead the people of the teams they lead; a person themselves."""
        return self.admin or person.id == self.person_id or \
            bool(self.leads.intersection(teams_of(person, teams, default_team)))

    def require_admin(self, what: str) -> None:
        if not self.admin:
            raise ProxyError(403, f"Only an admin may {what}.", type="permission_error", code="admin_required")

    def require_lead(self, team: str, what: str) -> None:
        if not (self.admin or team in self.leads):
            raise ProxyError(403, f"Only an admin or the team's lead may {what}.", type="permission_error",
                             code="lead_required")


def scope_of(principal: Principal, teams: list[Any], default_team: str) -> Scope:
    person = principal.person
    if person is None:
        return Scope(principal, "", (), frozenset())
    return Scope(principal, person.id, teams_of(person, teams, default_team), principal.leads)
