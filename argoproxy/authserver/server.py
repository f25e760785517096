"""Authlib's OAuth 2.0 authorization server, as its authors intend it to be used, wired to the proxy: the
authorization code grant with PKCE (S256 only, always), the refresh token grant with rotation, JWT access tokens
(RFC 9068) signed with the proxy's key, RFC 9207's `iss` on every authorization response, and RFC 8707's `resource`
(`<PUBLIC_URL>/mcp` or `<PUBLIC_URL>/mcp/NAME`) as each token's audience.

Codes and refresh tokens live in the grant store by their SHA-256, so any replica redeems them. Each is taken in
one step (the store's `swap` leaves a tombstone naming its family): a code or a rotated refresh token presented
again is refused as such, and the family of tokens it began is revoked (its refresh tokens stop working; its access
tokens live out their ACCESS_SECONDS)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oauth2.rfc9207 import IssuerParameter

from argoproxy.authserver.clients import AUTH_METHODS, McpClient
from argoproxy.authserver.grant_store import GrantStore
from argoproxy.authserver.oauth_requests import Reply
from argoproxy.authserver.signing_key import ALGORITHM, SigningKey
from argoproxy.people.membership import refusal

CODE_SECONDS = 60.0  # an authorization code is redeemed within this, once
USED_SECONDS = 600.0  # a used code's tombstone is kept this long (its replay is recognised)
ROTATED_SECONDS = 86400.0  # a rotated refresh token's (one a client refreshing every ACCESS_SECONDS leaves 288 a day)
ACCESS_SECONDS = 300  # an access token's life
REFRESH_SECONDS = 30 * 86400.0  # a refresh token's, unused
CLIENT_SECONDS = 90 * 86400.0  # a registered client's, from its registration or its last sign-in


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class InvalidTarget(OAuth2Error):  # type: ignore[misc]
    """RFC 8707: the `resource` asked is not one this server issues tokens for."""
    error = "invalid_target"


@dataclass(frozen=True)
class Holder:
    """Who a grant is for: the person (their id and their subject at OIDC_ISSUER, a token's `sub`), the resource
    (the token's audience) and the family of tokens one approval began."""
    person: str
    subject: str
    resource: str
    family: str

    def get_user_id(self) -> str:
        return self.subject


@dataclass(frozen=True)
class Grant:
    """A code's or a refresh token's record: Authlib's AuthorizationCodeMixin and TokenMixin."""
    client_id: str
    redirect_uri: str
    scope: str
    holder: Holder
    code_challenge: str = ""
    code_challenge_method: str = ""

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def check_client(self, client: McpClient) -> bool:
        return bool(client.client_id == self.client_id)

    def to_json(self) -> str:
        return json.dumps({"client_id": self.client_id, "redirect_uri": self.redirect_uri, "scope": self.scope,
                           "holder": self.holder.__dict__, "code_challenge": self.code_challenge,
                           "code_challenge_method": self.code_challenge_method})

    @classmethod
    def from_json(cls, text: str) -> "Grant":
        fields = json.loads(text)
        return cls(**{**fields, "holder": Holder(**fields["holder"])})


class S256Always(CodeChallenge):  # type: ignore[misc]
    """PKCE on every authorization request, S256 only (OAuth 2.1; MCP's authorization specification)."""
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 (plain is not accepted).")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        self.request.resource = self.server.resource_asked(self.request.payload.datalist.get("resource", []),
                                                           redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        holder: Holder = request.user
        grant = Grant(request.client.client_id, data["redirect_uri"], request.scope, holder,
                      data["code_challenge"], data["code_challenge_method"])
        self.server.grants.put("code:" + digest(code), grant.to_json(), CODE_SECONDS)

    def query_authorization_code(self, code: str, client: McpClient) -> Grant | None:
        held = self.server.take("code:" + digest(code), USED_SECONDS)
        if held is None:
            raise InvalidGrantError("The code is unknown or expired (codes live 60 seconds).")
        grant = Grant.from_json(held)
        if grant.client_id != client.client_id:
            raise InvalidGrantError("The code was issued to another client.")
        asked = self.request.payload.datalist.get("resource", [])
        if asked and asked != [grant.holder.resource]:
            raise InvalidTarget("The resource differs from the one the code was issued for.")
        return grant

    def delete_authorization_code(self, authorization_code: Grant) -> None:
        pass  # taken when it was read: a second redemption finds its tombstone

    def authenticate_user(self, authorization_code: Grant) -> Holder:
        server: McpAuthorizationServer = self.server
        return server.live_holder(authorization_code.holder)


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh token is used once

    def authenticate_refresh_token(self, refresh_token: str) -> Grant:
        held = self.server.take("refresh:" + digest(refresh_token), ROTATED_SECONDS)
        if held is None:
            raise InvalidGrantError("The refresh token is unknown or expired.")
        grant = Grant.from_json(held)
        if self.server.revoked(grant.holder.family):
            raise InvalidGrantError("The refresh token was revoked (a token of its family was replayed).")
        return grant

    def authenticate_user(self, refresh_token: Grant) -> Holder:
        server: McpAuthorizationServer = self.server
        return server.live_holder(refresh_token.holder)

    def revoke_old_credential(self, refresh_token: Grant) -> None:
        pass  # taken when it was read


class JwtAccessTokens(JWTBearerTokenGenerator):  # type: ignore[misc]
    """JWT access tokens (RFC 9068): the resource asked as `aud`, the person's subject at OIDC_ISSUER as `sub`."""

    def __init__(self, issuer: str, key: SigningKey) -> None:
        super().__init__(issuer, alg=ALGORITHM, refresh_token_generator=lambda **_: secrets.token_urlsafe(32),
                         expires_generator=ACCESS_SECONDS)
        self.signing_key = key

    def get_jwks(self) -> Any:
        return self.signing_key.key()

    def get_audiences(self, client: McpClient, user: Holder, scope: str) -> str:
        return user.resource


class ProxyIssuer(IssuerParameter):  # type: ignore[misc]
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


class McpAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's server with the proxy's clients, grants and answers."""

    def __init__(self, issuer: str, resources: Callable[[], frozenset[str]], grants: GrantStore, people: Any,
                 query_client: Callable[[str], McpClient | None], key: SigningKey, scope: str,
                 inactive_days: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(scopes_supported=scope.split())
        self.issuer, self.resources, self.grants, self.people = issuer, resources, grants, people
        self._query_client, self.inactive_days, self.clock = query_client, inactive_days, clock
        self.register_token_generator("default", JwtAccessTokens(issuer, key))
        self.register_grant(CodeGrant, [S256Always(required=True)])
        self.register_grant(RefreshGrant)
        self.issuer_parameter = ProxyIssuer(issuer)
        self.register_extension(lambda server: self.issuer_parameter(server))

    # ------------------------------------------------------------ Authlib's framework hooks
    def query_client(self, client_id: str) -> McpClient | None:
        return self._query_client(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        if "refresh_token" in token:
            grant = Grant(request.client.client_id, "", token.get("scope", ""), request.user)
            self.grants.put("refresh:" + digest(token["refresh_token"]), grant.to_json(), REFRESH_SECONDS)

    def create_oauth2_request(self, request: Any) -> Any:
        return request  # pages.py makes Authlib's requests from the proxy's (oauth_requests.py)

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Reply:
        return Reply(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    # ------------------------------------------------------------ the proxy's rules
    def resource_asked(self, asked: list[str], redirect_uri: str) -> str:
        """RFC 8707's `resource`: none (then /mcp), or one of the resources served; else invalid_target."""
        if not asked:
            return f"{self.issuer}/mcp"
        if len(asked) > 1 or asked[0] not in self.resources():
            raise InvalidTarget(f"resource must be {self.issuer}/mcp or {self.issuer}/mcp/NAME of a server here.",
                                redirect_uri=redirect_uri)
        return asked[0]

    def take(self, name: str, keep: float) -> str | None:
        """A code's or a refresh token's record, taken once: presented again, its family is revoked and the answer
        says so."""
        held = self.grants.swap(name, json.dumps({"used": True}), keep)
        if held is None:
            return None
        if json.loads(held).get("used"):
            family = json.loads(held).get("family", "")
            if family:
                self.grants.put("family:" + family, "revoked", REFRESH_SECONDS)
            kind = name.partition(":")[0]
            raise InvalidGrantError(f"The {'code' if kind == 'code' else 'refresh token'} was used already: the "
                                    f"tokens it gave are revoked; sign in again.")
        grant = Grant.from_json(held)
        self.grants.put(name, json.dumps({"used": True, "family": grant.holder.family}), keep)
        return held

    def revoked(self, family: str) -> bool:
        return self.grants.get("family:" + family) is not None

    def live_holder(self, holder: Holder) -> Holder:
        """The grant's person, still allowed (not disabled, gone or inactive)."""
        person = self.people.person(holder.person)
        if person is None or refusal(person, self.clock(), self.inactive_days):
            raise InvalidGrantError("The person this grant is for may no longer sign in.")
        return holder
