"""The authorization code exchanged for tokens (Authlib's OAuth2Session, PKCE S256) and the ID token verified
(joserfc, the JOSE library Authlib is built on): its signature against the provider's JWKS, its issuer, audience,
expiry, issue time and nonce, and azp where present. Nothing here parses a token by hand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from argoproxy.errors import ProxyError
from argoproxy.signin.provider import TIMEOUT, unavailable, unreachable

LEEWAY = 60  # seconds of clock skew allowed between the provider and the proxy


@dataclass(frozen=True)
class Client:
    """The proxy as the provider's client: OIDC_CLIENT_ID, its secret ("" for a public client), the scopes and
    the redirect URI <PUBLIC_URL>/ui/auth/callback."""
    client_id: str
    secret: str
    scopes: str
    redirect_uri: str

    def session(self) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.secret or None, scope=self.scopes, redirect_uri=self.redirect_uri,
                             code_challenge_method="S256",
                             token_endpoint_auth_method="client_secret_basic" if self.secret else "none")

    def authorization_url(self, endpoint: str, state: str, nonce: str, verifier: str) -> str:
        url, _ = self.session().create_authorization_url(endpoint, state=state, nonce=nonce, code_verifier=verifier,
                                                         response_mode="query")
        return str(url)

    def exchange(self, endpoint: str, code: str, verifier: str) -> dict[str, Any]:
        """The tokens the provider gives for `code` (a 401 when it refuses the code or the verifier)."""
        try:
            with self.session() as session:
                token = session.fetch_token(endpoint, grant_type="authorization_code", code=code,
                                            code_verifier=verifier, timeout=TIMEOUT)
        except OAuthError as exc:
            raise refused(f"the provider refused the code ({str(exc.error)[:100]})") from None
        except requests.RequestException as exc:
            raise unavailable(unreachable(exc, "token endpoint ")) from None
        except ValueError:  # not JSON, or no token in it
            raise unavailable("token endpoint sent no token") from None
        if not isinstance(token.get("id_token"), str):
            raise refused("the provider sent no ID token (is `openid` among OIDC_SCOPES?)")
        return dict(token)


def verified_claims(id_token: str, keys: Callable[[bool], dict[str, Any]], issuer: str, client_id: str, nonce: str,
                    now: float) -> dict[str, Any]:
    """The ID token's claims once its signature, issuer, audience, expiry and nonce hold; else a 401. `keys(fresh)`:
    the provider's JWKS (fresh: read again, for a key id it did not hold)."""
    try:
        try:
            token = jwt.decode(id_token, KeySet.import_key_set(keys(False)))  # type: ignore[arg-type]
        except InvalidKeyIdError:  # the provider rotated its keys
            token = jwt.decode(id_token, KeySet.import_key_set(keys(True)))  # type: ignore[arg-type]
        jwt.JWTClaimsRegistry(now=int(now), leeway=LEEWAY, iss={"essential": True, "value": issuer},
                              aud={"essential": True, "value": client_id}, sub={"essential": True},
                              exp={"essential": True}, iat={"essential": True},
                              nonce={"essential": True, "value": nonce}).validate(token.claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise refused(f"its ID token does not hold ({type(exc).__name__}: {str(exc)[:120]})") from None
    claims = dict(token.claims)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (azp is not None and azp != client_id) or (len(audiences) > 1 and azp is None):
        raise refused("its ID token was issued to another client (azp)")
    return claims


def refused(why: str, again: str = "/ui/auth/login") -> ProxyError:
    return ProxyError(401, f"Sign-in failed: {why}. Start again at {again}.", type="authentication_error",
                      code="signin_failed")
