"""An ID token is taken only when it holds (argoproxy/signin/tokens.py, over joserfc): signed by the provider's key,
for this issuer and this client, unexpired, with the sign-in's nonce, and azp this client where present. Each
forgery below is signed in-process, as an attacker (or a careless provider) would make it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import responses as responses_lib
from joserfc import jwt
from joserfc.jwk import RSAKey

from argoproxy.errors import ProxyError
from argoproxy.signin.tokens import verified_claims

ISSUER, CLIENT, NONCE = "https://login.example.com", "cot-proxy", "nonce-1"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, another key: a forgery
NOW = time.time()


def keys(fresh: bool = False) -> dict:
    return {"keys": [KEY.as_dict(private=False)]}


def token(key=KEY, alg: str = "RS256", **changes) -> str:
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "sub-1", "exp": int(NOW) + 300, "iat": int(NOW), "nonce": NONCE,
              "email": "a@example.com"}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": "k1"}, claims, key)


def verify(id_token: str) -> dict:
    return verified_claims(id_token, keys, ISSUER, CLIENT, NONCE, NOW)


def test_a_token_that_holds_gives_its_claims():
    assert verify(token())["email"] == "a@example.com"
    assert verify(token(aud=[CLIENT, "other"], azp=CLIENT))["sub"] == "sub-1"


@pytest.mark.parametrize("forged", [
    token(OTHER),  # signed by another key
    token(exp=int(NOW) - 120),  # expired (past the minute of leeway)
    token(aud="another-client"),  # for another client
    token(iss="https://evil.example.com"),  # from another issuer
    token(nonce="another-nonce"),  # another sign-in's
    token(nonce=None),  # no nonce
    token(azp="another-client"),  # issued to another party
    token(aud=[CLIENT, "other"]),  # several audiences and no azp
    token(sub=None),  # no subject
], ids=["signature", "expired", "audience", "issuer", "nonce", "no-nonce", "azp", "audiences-without-azp", "no-sub"])
def test_a_forged_or_foreign_token_is_refused(forged):
    with pytest.raises(ProxyError) as refused:
        verify(forged)
    assert refused.value.status == 401 and refused.value.code == "signin_failed"


def test_an_hmac_token_keyed_with_the_public_key_is_refused():
    """Algorithm confusion: HS256 with the provider's public key as the secret."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = part(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    body = token().split(".")[1]  # (joserfc refuses to make such a key: the attacker signs by hand)
    mac = hmac.new(KEY.as_pem(private=False), f"{head}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{head}.{body}.{part(mac)}"
    with pytest.raises(ProxyError):
        verify(forged)


def test_an_unsigned_token_is_refused():
    header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    body = token().split(".")[1]
    with pytest.raises(ProxyError):
        verify(f"{header}.{body}.")


def test_a_rotated_key_is_fetched_again():
    asked = []

    def rotating(fresh: bool) -> dict:
        asked.append(fresh)
        return {"keys": [(KEY if fresh else OTHER).as_dict(private=False) | {"kid": "k1" if fresh else "old"}]}
    assert verified_claims(token(), rotating, ISSUER, CLIENT, NONCE, NOW)["sub"] == "sub-1"
    assert asked == [False, True]


@responses_lib.activate
def test_a_discovery_document_naming_another_issuer_is_refused_and_read_again_later():
    from argoproxy.signin.provider import DISCOVERY_PATH, OpenIdProvider
    endpoints = {"authorization_endpoint": ISSUER + "/auth", "token_endpoint": ISSUER + "/token",
                 "jwks_uri": ISSUER + "/jwks"}
    responses_lib.get(ISSUER + DISCOVERY_PATH, json={"issuer": "https://evil.example.com", **endpoints})
    provider = OpenIdProvider(ISSUER)
    with pytest.raises(ProxyError) as refused:
        provider.document()
    assert refused.value.status == 502 and refused.value.code == "signin_provider_unavailable"
    responses_lib.replace(responses_lib.GET, ISSUER + DISCOVERY_PATH, json={"issuer": ISSUER, **endpoints})
    assert provider.document()["token_endpoint"] == ISSUER + "/token"
    responses_lib.replace(responses_lib.GET, ISSUER + DISCOVERY_PATH, body="x" * (2 << 20))
    provider.forget()
    with pytest.raises(ProxyError):
        provider.document()  # over a megabyte: no provider's


@responses_lib.activate
def test_an_issuer_spelled_with_a_final_slash_is_the_same_provider():
    """Auth0's issuer is https://TENANT.auth0.com/ (with '/'), OIDC_ISSUER is kept without it: discovery at one
    well-known URL, the document taken, and its spelling the one the ID token's `iss` is checked against."""
    from argoproxy.signin.provider import DISCOVERY_PATH, OpenIdProvider
    endpoints = {"authorization_endpoint": ISSUER + "/auth", "token_endpoint": ISSUER + "/token",
                 "jwks_uri": ISSUER + "/jwks"}
    responses_lib.get(ISSUER + DISCOVERY_PATH, json={"issuer": ISSUER + "/", **endpoints})
    for configured in (ISSUER, ISSUER + "/"):
        assert OpenIdProvider(configured).document()["issuer"] == ISSUER + "/"
    said = OpenIdProvider(ISSUER).document()["issuer"]
    assert verified_claims(token(iss=ISSUER + "/"), keys, said, CLIENT, NONCE, NOW)["sub"] == "sub-1"
    responses_lib.replace(responses_lib.GET, ISSUER + DISCOVERY_PATH, json={"issuer": ISSUER + "//x", **endpoints})
    with pytest.raises(ProxyError):
        OpenIdProvider(ISSUER).document()


def test_an_unreachable_provider_is_a_502_not_a_500():
    from argoproxy.signin.provider import OpenIdProvider
    with pytest.raises(ProxyError) as refused:
        OpenIdProvider("http://127.0.0.1:9").document()
    assert refused.value.status == 502
