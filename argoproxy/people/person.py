"""What a person is: the record the key store keeps of someone who signed in (argoproxy/signin/)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def person_id(issuer: str, subject: str) -> str:
    """A person's stable id: the provider's pair (issuer, subject) names them for good (an email may change
    hands), hashed to a short, URL-safe token."""
    return "p-" + hashlib.sha256(f"{issuer}\x1f{subject}".encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(frozen=True)
class Person:
    id: str
    subject: str
    issuer: str
    email: str = ""
    email_verified: bool = False
    name: str = ""
    groups: tuple[str, ...] = ()
    admin: bool = False  # set by an admin, or by OIDC_ADMIN_GROUPS / ADMIN_EMAILS at sign-in
    disabled: float = 0.0  # epoch seconds it was disabled; 0.0: enabled
    first_seen: float = 0.0
    last_seen: float = 0.0  # the last sign-in
    argo_user: str = ""  # their ARGO username (people/argo_user.py): an admin's, or OIDC_ARGO_USER_CLAIM's; "": none
