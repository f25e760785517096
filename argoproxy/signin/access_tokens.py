"""Access tokens at /mcp (docs/mcp-auth.md): a bearer that is no proxy key is checked as the issuer's access token
for this resource and becomes a KeyRecord, as a key of the person's own would be: named `oauth:<email>`, owned by
the person, with their team's limits and tool globs.

A JWT is verified with joserfc against the issuer's JWKS (signature, issuer, audience, expiry, not before); any
other token is asked of the issuer's introspection endpoint (introspection.py: RFC 7662, its answers kept, its
calls bounded per worker). Its audience must name `<PUBLIC_URL>/mcp` or the server called
(`<PUBLIC_URL>/mcp/<server>`, RFC 8707), its scopes MCP_OAUTH_SCOPES, and its `sub` a person who signed in, is
enabled and has a team; a refusal says which of these failed, never quoting the token."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Mapping

from joserfc import jws, jwt
from joserfc.errors import (BadSignatureError, ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError,
                            MissingAlgorithmError, MissingClaimError, MissingKeyError, UnsupportedAlgorithmError)
from joserfc.jwk import KeySet

from argoproxy.errors import ProxyError
from argoproxy.people import Person, person_id
from argoproxy.people.membership import refusal, teams_of
from argoproxy.signin.introspection import Introspection, expiry
from argoproxy.signin.provider import OpenIdProvider
from argoproxy.signin.resource import ProtectedResource
from argoproxy.signin.tokens import LEEWAY
from argoproxy.teamkeys.lookup_cache import LRU
from argoproxy.teamkeys.records import KeyRecord, digest

log = logging.getLogger("cot_proxy")
# Asymmetric algorithms only: an HMAC one would take the public JWKS as its secret; `none` is never allowed.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
RECORD_ENTRIES = 4096
RECORD_SECONDS = 0.5  # a person's record is read again after this (as a team key's: teamkeys/service.py)
MOST_TOKEN = 16 * 1024  # a bearer longer than this is no access token
ACCESS_TYPES = frozenset({"", "bearer", "access_token", "dpop"})  # token_type an introspection may name


class AccessTokens:
    def __init__(self, resource: ProtectedResource, provider: OpenIdProvider, store: Any, client: tuple[str, str],
                 default_team: str = "", inactive_days: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.resource, self.provider, self.store, self.client = resource, provider, store, client
        self.default_team, self.inactive_days, self.clock = default_team, inactive_days, clock
        self.introspection = Introspection(provider, client, clock)
        self._records: LRU[tuple[KeyRecord, float]] = LRU(RECORD_ENTRIES)  # by person id, RECORD_SECONDS
        self._key_set: tuple[dict[str, Any], KeySet] | None = None  # the JWKS as read, and as imported
        self._lock = threading.Lock()
        self.own_keys: Callable[[], KeySet] | None = None  # the proxy's, when it issues tokens too (authserver/)

    def challenge(self, path: str) -> ProxyError:
        """The 401 of a call at /mcp with no credentials: where the metadata is, which scopes to ask (a 404 for a
        server that is not one)."""
        self.resource.served(path)
        return ProxyError(401, f"Missing credentials: send a proxy key, or an access token for "
                               f"{self.resource.resource(path)} from {self.resource.issuer}, as `Authorization: "
                               f"Bearer`.", code="missing_api_key",
                          headers={"WWW-Authenticate": self.resource.challenge(path)})

    def record(self, headers: Mapping[str, str], path: str) -> KeyRecord:
        """The KeyRecord the request's bearer token makes at `path` (`mcp` or `mcp/<server>`), else a 401 or 403
        (a 404 for a server that is not one: nothing asked of the issuer for it)."""
        self.resource.served(path)
        scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MOST_TOKEN:
            raise self.invalid(path, "send the key or the access token as `Authorization: Bearer`")
        claims = self.jwt_claims(token, path) if token.count(".") == 2 else self.introspected(token, path)
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not {self.resource.resource("mcp"), self.resource.resource(path)}.intersection(audiences):
            raise self.invalid(path, f"the token was not issued for {self.resource.resource(path)} (its audience)")
        scopes = claims.get("scope")
        held = set(scopes.split()) if isinstance(scopes, str) else set()
        if not held.issuperset(self.resource.scopes):
            raise ProxyError(403, f"The access token lacks the scope {' '.join(self.resource.scopes)!r}.",
                             code="insufficient_scope",
                             headers={"WWW-Authenticate": self.resource.challenge(path, "insufficient_scope")})
        return self.person_record(str(claims["sub"]))

    # ---------------------------------------------------------------- the token's claims
    def jwt_claims(self, token: str, path: str) -> dict[str, Any]:
        """The claims of a JWT the issuer signed, or the proxy itself (its `iss` PUBLIC_URL: authserver/)."""
        ours = self.own_keys if unverified_issuer(token) == self.resource.public_url else None
        issuer = self.resource.public_url if ours else self.provider.document()["issuer"]
        try:
            decoded = jwt.decode(token, ours(), algorithms=ALGORITHMS) if ours else self.issuers_jwt(token)
            jwt.JWTClaimsRegistry(now=int(self.clock()), leeway=LEEWAY, iss={"essential": True, "value": issuer},
                                  sub={"essential": True}, exp={"essential": True},
                                  aud={"essential": True}).validate(decoded.claims)
        except (JoseError, ValueError, TypeError) as exc:
            raise self.invalid(path, jwt_refusal(exc, issuer)) from None
        return dict(decoded.claims)

    def issuers_jwt(self, token: str) -> Any:
        try:
            return jwt.decode(token, self.key_set(False), algorithms=ALGORITHMS)
        except InvalidKeyIdError:  # the issuer rotated its keys
            return jwt.decode(token, self.key_set(True), algorithms=ALGORITHMS)

    def key_set(self, fresh: bool) -> KeySet:
        """The issuer's JWKS, imported once for each time the provider reads it (an import costs milliseconds)."""
        keys, held = self.provider.keys(fresh), self._key_set
        if held is None or held[0] is not keys:
            held = self._key_set = (keys, KeySet.import_key_set(keys))  # type: ignore[arg-type]
        return held[1]

    def introspected(self, token: str, path: str) -> dict[str, Any]:
        """The issuer's answer for an opaque token (introspection.py: kept, and bounded per worker)."""
        if self.provider.endpoint("introspection_endpoint") is None:  # no way to check it: it cannot be good here
            raise self.invalid(path, "the token is no JWT, and the issuer offers no introspection to check others")
        answer = self.introspection.answer(token)
        if answer.get("active") is not True:
            raise self.invalid(path, "the issuer says the token is not active (expired, revoked or unknown)")
        why = answer_refusal(answer, self.clock(), self.resource.issuer)
        if why:
            raise self.invalid(path, why)
        return answer

    @property
    def introspections(self) -> int:
        """Answers asked of the issuer (tests count them)."""
        return self.introspection.calls

    # ---------------------------------------------------------------- the person
    def person_record(self, subject: str) -> KeyRecord:
        """The person the token names, as a key of theirs: their team's limits and tool globs; read again after
        RECORD_SECONDS (a disabled person or a changed team reaches the worker as a key's revocation does)."""
        pid, now = person_id(self.resource.issuer, subject), self.clock()
        held = self._records.get(pid)
        if held is not None and now - held[1] < RECORD_SECONDS:
            return held[0]
        record = self.read_record(pid)
        with self._lock:
            self._records.put(pid, (record, now))
        return record

    def read_record(self, pid: str) -> KeyRecord:
        person: Person | None = self.store.person(pid)
        if person is None:
            raise forbidden(f"The person this token names has not signed in to the proxy yet: sign in once at "
                            f"{self.resource.public_url}/ui/auth/login.")
        why = refusal(person, self.clock(), self.inactive_days)
        if why:
            raise forbidden(f"The person this token names is {why}.")
        teams = {t.name: t for t in self.store.teams()}
        mine = teams_of(person, teams.values(), self.default_team)
        if not mine:
            raise forbidden(f"{person.email or person.id} belongs to no team: an admin adds their group to one "
                            f"(docs/console.md), or sets OIDC_DEFAULT_TEAM.")
        team = teams[mine[0]]
        name = "oauth:" + (person.email or person.id)
        record = KeyRecord(name[:128], digest("oauth:" + person.id), "oauth", team=team.name, team_record=team,
                           owner=person.id, owner_seen=person.last_seen, owner_argo_user=person.argo_user)
        team_refusal = record.refusal(self.clock())
        if team_refusal:
            raise forbidden(team_refusal.replace("This API key's", "The token's"))
        return record

    def invalid(self, path: str, why: str) -> ProxyError:
        return ProxyError(401, f"Invalid API key or access token: {why}.", code="invalid_token",
                          headers={"WWW-Authenticate": self.resource.challenge(path, "invalid_token")})


def unverified_issuer(token: str) -> str:
    """A JWT's `iss`, read before its signature is checked: only to pick the keys that check it."""
    try:
        claims = json.loads(jws.extract_compact(token.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeError, RecursionError):  # RecursionError: claims nested a thousand deep
        return ""
    return str(claims.get("iss", "")) if isinstance(claims, dict) else ""


def answer_refusal(answer: Mapping[str, Any], now: float, issuer: str) -> str | None:
    """Why an active answer does not name an access token of this issuer for a subject, not expired; or None."""
    kind, iss = str(answer.get("token_type", "")).lower(), answer.get("iss")
    if expiry(answer) + LEEWAY <= now:
        return "the issuer's answer says the token has expired"
    if kind not in ACCESS_TYPES:
        return f"the issuer says it is a {kind[:40]!r}, not an access token"
    if iss is not None and str(iss).rstrip("/") != issuer.rstrip("/"):
        return f"the issuer's answer names another issuer than {issuer}"
    if not isinstance(answer.get("sub"), str):
        return "the issuer's answer names no subject (sub)"
    return None


def jwt_refusal(exc: Exception, issuer: str) -> str:
    """What is wrong with a JWT that joserfc refused, in words (the token itself never quoted)."""
    if isinstance(exc, ExpiredTokenError):
        return "the token has expired"
    if isinstance(exc, MissingClaimError):
        return f"the token lacks the claim {exc.claim!r}"
    if isinstance(exc, ClaimError):
        return {"iss": f"the token's issuer is not {issuer}", "nbf": "the token is not valid yet (nbf)",
                "iat": "the token's issue time (iat) is not a time in the past"}.get(
            exc.claim, f"the token's claim {exc.claim!r} does not hold")
    if isinstance(exc, (UnsupportedAlgorithmError, MissingAlgorithmError)):
        return "the token's algorithm is not accepted here (asymmetric ones only: RS*, PS*, ES*, EdDSA)"
    if isinstance(exc, (BadSignatureError, InvalidKeyIdError, MissingKeyError)):
        return "the token's signature does not verify with the issuer's keys (its JWKS)"
    return "the token is no JWT that can be read (three base64url parts: header, claims, signature)"


def forbidden(message: str) -> ProxyError:
    return ProxyError(403, message, type="permission_error", code="access_denied")


def protect_mcp(settings: Any, provider: OpenIdProvider, store: Any, auth: Any) -> Callable[..., Any]:
    """/mcp as a protected resource (sign-in on, `mcp_servers` set): access tokens accepted there (`auth`'s), what
    the issuer offers MCP clients said once, beside start-up; the metadata route's answer (404 without servers)."""
    from argoproxy.config.signin_settings import client_secret
    from argoproxy.signin.resource import describe_issuer, resource_off
    if not settings.mcp_servers:
        return resource_off
    resource = ProtectedResource(settings.public_url, settings.oidc_issuer, tuple(settings.mcp_oauth_scopes.split()),
                                 tuple(s.name for s in settings.mcp_servers))
    auth.access_tokens = AccessTokens(resource, provider, store, (settings.oidc_client_id, client_secret(settings)),
                                      settings.oidc_default_team, settings.oidc_inactive_days)
    threading.Thread(target=lambda: log.info(describe_issuer(provider, settings.mcp_oauth_server,
                                                             resource.resource("mcp"))),
                     name="mcp-oauth-issuer", daemon=True).start()
    return resource.answer
