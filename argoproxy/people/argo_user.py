"""A person's or a key's ARGO username (docs/backends/argo-per-person.md): the shape ARGO takes,
checked wherever a name comes in (an admin's `--argo-user`, the console's `argo_user`, the OIDC_ARGO_USER_CLAIM
claim at sign-in), so that nothing else is ever sent to ARGO as `user`."""

from __future__ import annotations

import re
from typing import Any, Mapping

MOST = 64  # characters: an ANL domain username or a service account's name is far shorter
# Letters, digits, '.', '_', '-', beginning with a letter or digit: no space (ARGO refuses one), no '@' (an
# email is not an ANL username: a claim that names one is refused, not sent).
SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SHARED = "cels"  # ARGO's shared account, never anyone's own (argo-proxy refuses it too)


def parse_argo_user(text: str, what: str = "--argo-user") -> str:
    """An ARGO username as given by an admin; "none" or "" clears it ("")."""
    name = text.strip()
    if name.lower() in ("", "none"):
        return ""
    return checked(name, what)


def checked(name: str, what: str) -> str:
    """`name` when ARGO would take it as a username; else a ValueError naming `what`."""
    if len(name) > MOST or not SHAPE.fullmatch(name):
        raise ValueError(f"{what}: {name[:MOST]!r} is not an ARGO username (1-{MOST} letters, digits, '.', '_' "
                         "or '-', beginning with a letter or digit)")
    if name.lower() == SHARED:
        raise ValueError(f"{what}: {SHARED!r} is ARGO's shared account, not a person's username")
    return name


def claimed(claims: Mapping[str, Any], claim: str) -> str:
    """The ARGO username the provider gives in `claim` ("" when it gives none); a ValueError when it gives
    something ARGO would not take."""
    if not claim or claims.get(claim) in (None, ""):
        return ""
    value = claims[claim]
    if not isinstance(value, str):
        raise ValueError(f"OIDC_ARGO_USER_CLAIM: the claim {claim!r} is a {type(value).__name__}, not a string")
    return checked(value, f"OIDC_ARGO_USER_CLAIM ({claim})")
