"""Access tokens at /mcp, in-process (argoproxy/signin/access_tokens.py, resource.py; the wire is in
tests/integration/test_mcp_oauth.py): what a JWT must hold beyond what that test signs (an HMAC algorithm over the
public key refused), the introspection answer kept by digest, bounded, until min(exp, the TTL) and refused unless
it is an active access token of this issuer; the person's record; the metadata routes' classification."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest
import responses as responses_lib
from joserfc import jwt
from joserfc.jwk import RSAKey

from argoproxy.edge.classify import standard_table
from argoproxy.edge.paths import canonical
from argoproxy.errors import ProxyError
from argoproxy.people import Person, person_id
from argoproxy.signin import access_tokens, introspection
from argoproxy.signin.access_tokens import AccessTokens
from argoproxy.signin.resource import ProtectedResource, describe_issuer
from argoproxy.teamkeys.records import TeamRecord

ISSUER, PUBLIC = "https://login.example.com", "https://llm.example.com"
INTROSPECT = ISSUER + "/token/introspection"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
NOW = 1_800_000_000.0
ALICE = Person(person_id(ISSUER, "sub-alice"), "sub-alice", ISSUER, email="alice@example.com", groups=("eng",),
               last_seen=NOW)


class Provider:
    issuer = ISSUER

    def document(self) -> dict:
        return {"issuer": ISSUER, "introspection_endpoint": INTROSPECT}

    def endpoint(self, name: str) -> str | None:
        return self.document().get(name)

    def keys(self, fresh: bool = False) -> dict:
        return {"keys": [KEY.as_dict(private=False)]}


class Store:
    def person(self, pid: str) -> Person | None:
        return ALICE if pid == ALICE.id else None

    def teams(self) -> list[TeamRecord]:
        return [TeamRecord("eng", tools=("git__*",), groups=("eng",), tool_rpm=5)]


def tokens(clock: list[float] | None = None) -> AccessTokens:
    now = clock or [NOW]
    resource = ProtectedResource(PUBLIC, ISSUER, ("mcp",), ("git",))
    return AccessTokens(resource, Provider(), Store(), ("cot-proxy", "secret"),  # type: ignore[arg-type]
                        clock=lambda: now[0])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(**changes) -> dict:
    return {"iss": ISSUER, "sub": "sub-alice", "aud": PUBLIC + "/mcp", "exp": int(NOW) + 300, "scope": "mcp", **changes}


def test_a_jwt_becomes_its_persons_key_with_their_teams_limits():
    record = tokens().record(bearer(jwt.encode({"alg": "RS256", "kid": "k1"}, claims(), KEY)), "mcp/git")
    assert (record.name, record.owner, record.team) == ("oauth:alice@example.com", ALICE.id, "eng")
    assert record.allowed_tools == (("git__*",),) and record.tool_windows is not None
    assert record.refusal(NOW) is None


def test_an_hmac_token_keyed_with_the_public_key_is_refused():
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing = f'{part(json.dumps({"alg": "HS256", "kid": "k1"}).encode())}.{part(json.dumps(claims()).encode())}'
    mac = hmac.new(KEY.as_pem(private=False), signing.encode(), hashlib.sha256).digest()  # (joserfc makes none)
    forged = f"{signing}.{part(mac)}"
    with pytest.raises(ProxyError) as refused:
        tokens().record(bearer(forged), "mcp")
    assert refused.value.status == 401 and 'error="invalid_token"' in refused.value.headers["WWW-Authenticate"]


def test_a_jwt_whose_claims_nest_past_the_recursion_limit_is_a_401():
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = part(json.dumps({"alg": "RS256", "kid": "k1"}).encode())
    deep = f'{header}.{part(b"[" * 3000 + b"]" * 3000)}.{part(b"sig")}'
    with pytest.raises(ProxyError) as refused:
        tokens().record(bearer(deep), "mcp")
    assert refused.value.status == 401 and refused.value.code == "invalid_token"


class NoIntrospection(Provider):
    def document(self) -> dict:
        return {"issuer": ISSUER}


def test_an_opaque_token_where_the_issuer_offers_no_introspection_is_a_401_not_a_502():
    resource = ProtectedResource(PUBLIC, ISSUER, ("mcp",), ("git",))
    checker = AccessTokens(resource, NoIntrospection(), Store(), ("cot-proxy", "secret"))  # type: ignore[arg-type]
    with pytest.raises(ProxyError) as refused:
        checker.record(bearer("opaque"), "mcp")
    assert refused.value.status == 401 and "offers no introspection" in refused.value.message
    assert 'error="invalid_token"' in refused.value.headers["WWW-Authenticate"]


def test_the_challenge_names_the_servers_metadata_and_the_scopes():
    challenge = tokens().challenge("mcp/git")
    assert challenge.status == 401 and challenge.headers["WWW-Authenticate"] == (
        f'Bearer resource_metadata="{PUBLIC}/.well-known/oauth-protected-resource/mcp/git", scope="mcp"')


def test_a_token_too_long_or_in_another_header_asks_nothing_of_the_issuer():
    checker = tokens()
    for headers in (bearer("x" * 20000), {"Api-Key": "opaque"}, {"Authorization": "Basic abc"}):
        with pytest.raises(ProxyError) as refused:
            checker.record(headers, "mcp")
        assert refused.value.status == 401
    assert checker.introspections == 0


@responses_lib.activate
def test_introspection_is_kept_until_the_ttl_or_the_tokens_expiry():
    responses_lib.post(INTROSPECT, json={"active": True, "iss": ISSUER, "token_type": "Bearer", **claims()})
    clock = [NOW]
    checker = tokens(clock)
    for _ in range(3):
        assert checker.record(bearer("opaque-1"), "mcp").owner == ALICE.id
    assert len(responses_lib.calls) == 1
    assert responses_lib.calls[0].request.headers["Authorization"].startswith("Basic ")  # the proxy's client
    clock[0] += introspection.INTROSPECTED_SECONDS + 1
    checker.record(bearer("opaque-1"), "mcp")
    assert len(responses_lib.calls) == 2
    clock[0] = NOW + 301 + access_tokens.LEEWAY  # past its exp: asked again, and refused on the answer's exp
    with pytest.raises(ProxyError):
        checker.record(bearer("opaque-1"), "mcp")
    assert len(responses_lib.calls) == 3


def issuer_knows(good: str) -> None:
    """The introspection endpoint: `good` is an active access token of alice's, any other is not."""
    def answer(request):
        active = parse_qs(request.body)["token"] == [good]
        body = {"active": True, "iss": ISSUER, "token_type": "Bearer", **claims()} if active else {"active": False}
        return 200, {}, json.dumps(body)
    responses_lib.add_callback(responses_lib.POST, INTROSPECT, callback=answer)


@responses_lib.activate
def test_the_introspection_caches_are_bounded_and_junk_pushes_out_no_good_token(monkeypatch):
    monkeypatch.setattr(introspection, "REFUSED_ENTRIES", 8)
    issuer_knows("good")
    clock = [NOW]
    checker = tokens(clock)
    checker.introspection.budget = introspection.OutboundBudget(clock=lambda: clock[0])
    assert checker.record(bearer("good"), "mcp").owner == ALICE.id
    for n in range(50):
        clock[0] += 0.1  # within the rate: every junk token asked once
        with pytest.raises(ProxyError) as refused:
            checker.record(bearer(f"junk-{n}"), "mcp")
        assert refused.value.status == 401
    assert len(checker.introspection._refused) == 8 and checker.introspections == 51
    assert checker.record(bearer("good"), "mcp").owner == ALICE.id  # still kept: not asked again
    with pytest.raises(ProxyError):
        checker.record(bearer("junk-49"), "mcp")  # refused, kept: not asked again either
    assert checker.introspections == 51


@responses_lib.activate
def test_a_flood_of_distinct_junk_tokens_costs_at_most_the_budgets_calls():
    issuer_knows("good")
    clock = [NOW]
    checker = tokens(clock)
    checker.introspection.budget = introspection.OutboundBudget(clock=lambda: clock[0])
    assert checker.record(bearer("good"), "mcp").owner == ALICE.id
    statuses = []
    for second in range(3):
        for n in range(200):
            try:
                checker.record(bearer(f"junk-{second}-{n}"), "mcp")
            except ProxyError as refused:
                statuses.append(refused.status)
                if refused.status == 503:
                    assert refused.headers["Retry-After"] == "1" and refused.code == "introspection_busy"
            assert checker.record(bearer("good"), "mcp").owner == ALICE.id  # the cached one, all along
        clock[0] += 1
    bound = introspection.BURST + 2 * introspection.RATE  # the burst (the good one's call in it), two seconds' refill
    assert checker.introspections == bound and len(responses_lib.calls) == bound
    assert statuses.count(401) == bound - 1 and statuses.count(503) == 600 - (bound - 1)


def test_introspections_in_flight_are_bounded():
    import threading
    budget = introspection.OutboundBudget(rate=1000, burst=1000, in_flight=2)
    entered, release = threading.Semaphore(0), threading.Event()

    def call() -> None:
        with budget.call():
            entered.release()
            release.wait(10)
    held = [threading.Thread(target=call) for _ in range(2)]
    for thread in held:
        thread.start()
        assert entered.acquire(timeout=10)
    with pytest.raises(ProxyError) as busy:
        with budget.call():
            pass
    assert busy.value.status == 503
    release.set()
    for thread in held:
        thread.join(10)
    with budget.call():  # the slots given back
        pass


@pytest.mark.parametrize("answer", [
    {"active": False},
    {"active": "true", **claims()},  # a string is no `true`
    {"active": True, **claims(), "token_type": "refresh_token"},
    {"active": True, **claims(), "iss": "https://evil.example.com"},
    {"active": True, **claims(aud="https://llm.example.com/other")},
    {"active": True, **claims(scope="openid")},
    {"active": True, **{k: v for k, v in claims().items() if k != "sub"}},
    {"active": True, **claims(sub="sub-nobody")},
])
@responses_lib.activate
def test_an_introspected_token_that_does_not_hold_is_refused(answer):
    responses_lib.post(INTROSPECT, json=answer)
    with pytest.raises(ProxyError) as refused:
        tokens().record(bearer("opaque"), "mcp")
    assert refused.value.status in (401, 403) and "opaque" not in refused.value.message


@responses_lib.activate
def test_an_issuer_that_cannot_answer_is_a_502_of_its_own_shape():
    responses_lib.post(INTROSPECT, body="<html>", status=500)
    with pytest.raises(ProxyError) as failed:
        tokens().record(bearer("opaque"), "mcp")
    assert failed.value.status == 502 and failed.value.code == "signin_provider_unavailable"


def test_the_metadata_routes_are_the_proxys_own_and_open():
    from argoproxy.edge.auth import OPEN_KINDS
    table = standard_table(True, ("*",))
    base = ".well-known/oauth-protected-resource"
    for path, canonical_path in ((base, base), ("/.WELL-KNOWN/oauth-protected-resource/MCP", base + "/mcp"),
                                 (f"/{base}/mcp/Git", base + "/mcp/Git")):
        route = table.classify(canonical("/" + path.lstrip("/")))
        assert (route.kind, route.family, route.path) == ("oauth_resource", "own", canonical_path)
    assert "oauth_resource" in OPEN_KINDS
    for other in ("/.well-known/oauth-protected-resource/other", "/.well-known/oauth-protected-resource/mcp/a/b"):
        assert table.classify(canonical(other)).kind != "oauth_resource"


def test_an_unknown_servers_metadata_is_a_404():
    resource = ProtectedResource(PUBLIC, ISSUER, ("mcp",), ("git",))
    req = SimpleNamespace(target="/.well-known/oauth-protected-resource/mcp/nosuch")
    with pytest.raises(ProxyError) as missing:
        resource.answer("oauth_resource", "", req)  # type: ignore[arg-type]
    assert missing.value.status == 404


def test_the_start_up_line_says_what_the_issuer_lacks():
    bare = SimpleNamespace(issuer=ISSUER, document=lambda: {"issuer": ISSUER})
    said = describe_issuer(bare)  # type: ignore[arg-type]
    assert "neither dynamic client registration nor Client ID Metadata Documents" in said
    cimd = SimpleNamespace(issuer=ISSUER, document=lambda: {"client_id_metadata_document_supported": True})
    assert "(Client ID Metadata Documents)" in describe_issuer(cimd)  # type: ignore[arg-type]


def test_a_person_disabled_is_refused_once_their_record_is_read_again():
    clock = [NOW]
    checker = tokens(clock)
    token = bearer(jwt.encode({"alg": "RS256", "kid": "k1"}, claims(), KEY))
    assert checker.record(token, "mcp").owner == ALICE.id
    checker.store = SimpleNamespace(person=lambda pid: dataclasses.replace(ALICE, disabled=NOW), teams=Store().teams)
    assert checker.record(token, "mcp").owner == ALICE.id  # within RECORD_SECONDS: the record held
    clock[0] += access_tokens.RECORD_SECONDS
    with pytest.raises(ProxyError) as refused:
        checker.record(token, "mcp")
    assert refused.value.status == 403 and "disabled" in refused.value.message


def test_without_sign_in_the_metadata_is_a_404(tmp_path, monkeypatch):
    from tests.unit.mcp.test_mount import mcp_app
    client = mcp_app(tmp_path, monkeypatch).test_client()
    for path in ("", "/mcp", "/mcp/git"):
        answer = client.get("/.well-known/oauth-protected-resource" + path)
        assert answer.status_code == 404 and "OIDC_ISSUER" in answer.get_json()["error"]["message"]
