"""Access tokens at /mcp (docs/mcp-auth.md): a bearer that is no proxy key is checked as the issuer's access token
for this resource and becomes a KeyRecord, as a key of the person's own would be: named `oauth:<email>`, owned by
the person, with their team's limits and tool globs.

A JWT is verified with joserfc against the issuer's JWKS (signature, issuer, audience, expiry, not before); any
other token is asked of the issuer's introspection endpoint (RFC 7662, Authlib, the proxy's client credentials),
and the answer kept by the token's digest (bounded) until min(its expiry, INTROSPECTED_SECONDS). Its audience must
name `<PUBLIC_URL>/mcp` or the server called (`<PUBLIC_URL>/mcp/<server>`, RFC 8707), its scopes MCP_OAUTH_SCOPES,
and its `sub` a person who signed in, is enabled and has a team."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any, Callable, Mapping

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jws, jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from argoproxy.errors import ProxyError
from argoproxy.people import Person, person_id
from argoproxy.people.membership import refusal, teams_of
from argoproxy.signin.provider import TIMEOUT, OpenIdProvider, unavailable, unreachable
from argoproxy.signin.resource import ProtectedResource
from argoproxy.signin.tokens import LEEWAY
from argoproxy.teamkeys.lookup_cache import LRU
from argoproxy.teamkeys.records import KeyRecord, digest

log = logging.getLogger("cot_proxy")
# Asymmetric algorithms only: an HMAC one would take the public JWKS as its secret; `none` is never allowed.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
INTROSPECTED_SECONDS = 60.0  # an introspection answer is kept this long at most (a revoked token: accepted so long)
INTROSPECTED_ENTRIES = 4096
RECORD_SECONDS = 0.5  # a person's record is read again after this (as a team key's: teamkeys/service.py)
MOST_TOKEN = 16 * 1024  # a bearer longer than this is no access token
MOST_ANSWER = 64 * 1024
ACCESS_TYPES = frozenset({"", "bearer", "access_token", "dpop"})  # token_type an introspection may name


class AccessTokens:
    def __init__(self, resource: ProtectedResource, provider: OpenIdProvider, store: Any, client: tuple[str, str],
                 default_team: str = "", inactive_days: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.resource, self.provider, self.store, self.client = resource, provider, store, client
        self.default_team, self.inactive_days, self.clock = default_team, inactive_days, clock
        self._introspected: LRU[tuple[dict[str, Any], float]] = LRU(INTROSPECTED_ENTRIES)
        self._records: LRU[tuple[KeyRecord, float]] = LRU(INTROSPECTED_ENTRIES)  # by person id, RECORD_SECONDS
        self._key_set: tuple[dict[str, Any], KeySet] | None = None  # the JWKS as read, and as imported
        self._lock = threading.Lock()
        self.introspections = 0  # answers asked of the issuer (tests count them)
        self.own_keys: Callable[[], KeySet] | None = None  # the proxy's, when it issues tokens too (authserver/)

    def challenge(self, path: str) -> ProxyError:
        """The 401 of a call at /mcp with no credentials: where the metadata is, which scopes to ask."""
        return ProxyError(401, f"Missing credentials: send a proxy key, or an access token for "
                               f"{self.resource.resource(path)} from {self.resource.issuer}, as `Authorization: "
                               f"Bearer`.", code="missing_api_key",
                          headers={"WWW-Authenticate": self.resource.challenge(path)})

    def record(self, headers: Mapping[str, str], path: str) -> KeyRecord:
        """The KeyRecord the request's bearer token makes at `path` (`mcp` or `mcp/<server>`), else a 401 or 403."""
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
            raise self.invalid(path, f"the token does not hold ({type(exc).__name__})") from None
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
        """The issuer's answer for an opaque token, kept until min(its exp, INTROSPECTED_SECONDS) by its digest."""
        key, now = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest(), self.clock()
        held = self._introspected.get(key)
        if held is None or held[1] <= now:
            answer = self.ask_issuer(token)
            held = (answer, min(expiry(answer), now + INTROSPECTED_SECONDS))
            with self._lock:
                self._introspected.put(key, held)
        answer = held[0]
        if answer.get("active") is not True:
            raise self.invalid(path, "the issuer says the token is not active (expired, revoked or unknown)")
        if not answer_holds(answer, now, self.resource.issuer):
            raise self.invalid(path, "the issuer's answer for the token does not hold (expiry, type, issuer or sub)")
        return answer

    def ask_issuer(self, token: str) -> dict[str, Any]:
        endpoint = self.provider.endpoint("introspection_endpoint")
        if endpoint is None:
            raise unavailable("offers no introspection_endpoint for tokens that are not JWTs")
        client_id, secret = self.client
        self.introspections += 1
        try:
            with OAuth2Session(client_id, secret, token_endpoint_auth_method="client_secret_basic") as session:
                got = session.introspect_token(endpoint, token=token, token_type_hint="access_token", timeout=TIMEOUT)
                body = got.content[:MOST_ANSWER + 1]
                answer = got.json() if got.status_code == 200 and len(body) <= MOST_ANSWER else None
        except requests.RequestException as exc:
            raise unavailable(unreachable(exc, "introspection endpoint ")) from None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise unavailable("introspection endpoint sent no JSON object")
        return answer

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
    except (JoseError, ValueError, UnicodeError):
        return ""
    return str(claims.get("iss", "")) if isinstance(claims, dict) else ""


def expiry(answer: Mapping[str, Any]) -> float:
    """An introspection answer's `exp` (none: never)."""
    exp = answer.get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else float("inf")


def answer_holds(answer: Mapping[str, Any], now: float, issuer: str) -> bool:
    """An active answer names an access token of this issuer, for a subject, not expired."""
    iss = answer.get("iss")
    return (expiry(answer) + LEEWAY > now and str(answer.get("token_type", "")).lower() in ACCESS_TYPES
            and (iss is None or str(iss).rstrip("/") == issuer.rstrip("/")) and isinstance(answer.get("sub"), str))


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
    threading.Thread(target=lambda: log.info(describe_issuer(provider, settings.mcp_oauth_server)),
                     name="mcp-oauth-issuer", daemon=True).start()
    return resource.answer
