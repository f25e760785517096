"""A remote MCP server's check of the bearer tokens it gets, as a resource server under a real authorization server
does it (RFC 9068's JWT access tokens): the signature against the issuer's JWKS (fetched from its metadata), RS256
only, `typ: at+jwt`, the issuer, the audience exactly the server's URL, `exp` with no leeway, a `sub`. What it holds
is the person (`sub`) a token is for; a token that does not hold is not in it, and why is counted in `refused`.

It stands in FakeRemote's `people` (tests/fakes/fake_mcp_http.py: token -> person), whose `in` and `get` are all
the server asks of it, so the fake records each call under the person its token proves."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Iterator, Mapping

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet


class JwtBearers(Mapping[str, str]):
    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer, self.audience = issuer, audience
        self.refused: Counter[str] = Counter()  # why tokens were refused: expired, audience, signature, ...
        self.lock = threading.Lock()
        self._keys: KeySet | None = None

    def key_set(self) -> KeySet:
        if self._keys is None:
            found = requests.get(self.issuer + "/.well-known/openid-configuration", timeout=5).json()
            self._keys = KeySet.import_key_set(requests.get(found["jwks_uri"], timeout=5).json())
        return self._keys

    def person(self, token: str) -> str | None:
        """The `sub` of a token that holds, else None (and why, counted)."""
        try:
            decoded = jwt.decode(token, self.key_set(), algorithms=["RS256"])
        except (JoseError, ValueError, TypeError):
            return self._refuse("signature")
        if decoded.header.get("typ") != "at+jwt":
            return self._refuse("typ")
        claims = decoded.claims
        if claims.get("iss") != self.issuer:
            return self._refuse("issuer")
        if claims.get("aud") not in (self.audience, [self.audience]):
            return self._refuse("audience")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
            return self._refuse("expired")
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and sub else self._refuse("sub")

    def _refuse(self, why: str) -> None:
        with self.lock:
            self.refused[why] += 1
        return None

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self.person(token) is not None

    def get(self, token: str, default: Any = None) -> Any:  # type: ignore[override]
        found = self.person(token) if isinstance(token, str) else None
        return default if found is None else found

    def __getitem__(self, token: str) -> str:
        found = self.person(token)
        if found is None:
            raise KeyError("a token that does not hold")
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0
