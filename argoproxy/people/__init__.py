"""People: who signed in with the organization's OpenID provider (argoproxy/signin/), recorded at their first
sign-in and updated at each; which of them are admins; which teams they belong to (a team names the provider's
groups whose members belong to it, and its leads by email); and whether they are disabled.

- person.py: what a person is (Person) and their stable id (from the provider's issuer and subject).
- argo_user.py: the shape of an ARGO username (a person's or a key's), checked wherever one comes in.
- membership.py: what a sign-in's claims make of a person (their groups, admin by OIDC_ADMIN_GROUPS or a
  verified ADMIN_EMAILS address), their teams, the teams they lead, and when one counts as inactive.

The records live in the key store (SQLite or Redis: argoproxy/teamkeys/, whose people_cli.py is `cot-proxy people
list|disable|enable`); a key's owner is a person's id.

May import: the shared modules, config.
"""

from argoproxy.people.person import Person, person_id

__all__ = ["Person", "person_id"]
