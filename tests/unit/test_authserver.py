"""The proxy as MCP clients' authorization server, in-process (argoproxy/authserver/; the wire and the official
SDK are in tests/integration/test_mcp_authserver.py): registration's bounds, the authorization request's checks
(redirect URI, PKCE S256, resource), the consent's CSRF token, codes and refresh tokens taken once (a replay refused,
its family revoked), the proxy's JWTs accepted at /mcp for their resource only and not once expired, McpClient ID
Metadata Documents (client_id, size, redirects, private addresses), the grant store on SQLite and Redis."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import responses as responses_lib
from joserfc import jwt

from argoproxy.authserver import cimd
from argoproxy.authserver.cimd import Documents
from argoproxy.authserver.decision import Decision
from argoproxy.authserver.grant_store import RedisGrants, SQLiteGrants
from argoproxy.authserver.pages import AuthServerPages
from argoproxy.authserver.registration import MOST_CLIENTS
from argoproxy.edge.classify import standard_table
from argoproxy.edge.http_objects import Request
from argoproxy.edge.paths import canonical
from argoproxy.errors import ProxyError
from argoproxy.people.membership import person_of_claims
from argoproxy.signin.access_tokens import AccessTokens
from argoproxy.signin.resource import ProtectedResource
from argoproxy.signin.sessions import ConsoleSessions, Cookies
from argoproxy.teamkeys.records import TeamRecord
from argoproxy.teamkeys.store import SQLiteKeyStore

ISSUER, PUBLIC = "https://login.example.com", "https://llm.example.com"
REDIRECT = "http://127.0.0.1:33418/callback"
DOC_URL = "https://app.example.net/oauth/client.json"


class Provider:
    issuer = ISSUER

    def __init__(self, document: dict | None = None) -> None:
        self.said = document or {"issuer": ISSUER}

    def document(self) -> dict:
        return self.said


@pytest.fixture
def world(tmp_path):
    store = SQLiteKeyStore(tmp_path / "keys.db")
    store.create_team(TeamRecord("eng", tools=("fake__*",), groups=("eng",)))
    person = store.signed_in(person_of_claims({"sub": "sub-alice", "email": "alice@example.com", "groups": ["eng"]},
                                              ISSUER, "groups", 0), rule_admin=False)
    sessions = ConsoleSessions(store, Cookies(secure=True), 3600, 86400, 0)
    cookie = sessions.begin(person, "")
    session_id = cookie.split(";")[0].split("=", 1)[1]
    resource = ProtectedResource(PUBLIC, ISSUER, ("mcp",), ("fake", "other"))
    grants = SQLiteGrants(str(tmp_path / "keys.db"))
    documents = Documents("mcp", resolver=lambda host, port: ["93.184.216.34"])
    pages = AuthServerPages(PUBLIC, "mcp", Decision("proxy", Provider()), grants, store, sessions, resource.resources,
                            documents=documents)
    tokens = AccessTokens(resource, Provider(), store, ("cot-proxy", ""))  # type: ignore[arg-type]
    tokens.own_keys = pages.key.key_set
    resource.proxy_issues = lambda: True
    csrf = store.console_session(hashlib.sha256(session_id.encode()).hexdigest()).csrf
    return SimpleNamespace(store=store, pages=pages, kinds=pages.kinds(), person=person, grants=grants,
                           cookie={"Cookie": f"__Host-cot_console={session_id}"}, csrf=csrf, tokens=tokens,
                           resource=resource)


def ask(world, kind: str, method: str, target: str, body: bytes | dict | None = None, headers: dict | None = None):
    """One request to a route of the authorization server: (status, headers, body as JSON or text)."""
    req = Request.of(method, target, body, headers)
    try:
        got = world.kinds[kind](kind, target.partition("?")[2], req)
    except ProxyError as err:
        return err.status, {}, {"error": err.code, "message": err.message}
    data = got.get_data()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data.decode()
    return got.status_code, dict(got.headers), parsed


def register(world, **metadata):
    body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "Test client",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"], **metadata}
    return ask(world, "oauth_register", "POST", "/oauth/register", body)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def auth_params(client_id: str, challenge: str, **more) -> dict:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "st-1",
            "code_challenge": challenge, "code_challenge_method": "S256", "resource": PUBLIC + "/mcp", **more}


def approve(world, params: dict, decision: str = "approve", csrf: str | None = None):
    form = urlencode({**params, "csrf": world.csrf if csrf is None else csrf, "decision": decision}).encode()
    return ask(world, "oauth_authorize", "POST", "/oauth/authorize", form,
               {**world.cookie, "Content-Type": "application/x-www-form-urlencoded"})


def code_for(world, client_id: str, verifier_challenge: tuple[str, str], **more) -> str:
    status, headers, body = approve(world, auth_params(client_id, verifier_challenge[1], **more))
    assert status == 303, body
    back = parse_qs(urlsplit(headers["Location"]).query)
    assert back["iss"] == [PUBLIC] and back["state"] == ["st-1"]  # RFC 9207
    return back["code"][0]


def token(world, **form):
    return ask(world, "oauth_token", "POST", "/oauth/token", urlencode(form).encode(),
               {"Content-Type": "application/x-www-form-urlencoded"})


def redeem(world, client_id: str, code: str, verifier: str, **more):
    return token(world, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, client_id=client_id,
                 code_verifier=verifier, **more)


@pytest.fixture
def client(world) -> str:
    status, _, body = register(world)
    assert status == 201 and "client_secret" not in body, body
    return str(body["client_id"])


# ---------------------------------------------------------------- the whole flow, and the token at /mcp
def test_a_registered_client_gets_a_token_the_resource_takes_as_its_person(world, client):
    status, headers, page = ask(world, "oauth_authorize", "GET",
                                "/oauth/authorize?" + urlencode(auth_params(client, pkce()[1])), None, world.cookie)
    assert status == 200 and "Test client" in page and world.csrf in page and PUBLIC + "/mcp" in page
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    verifier = pkce()
    status, _, got = redeem(world, client, code_for(world, client, verifier), verifier[0])
    assert status == 200 and got["token_type"] == "Bearer" and got["expires_in"] == 300, got
    claims = jwt.decode(got["access_token"], world.pages.key.key_set()).claims
    assert (claims["iss"], claims["aud"], claims["sub"], claims["scope"]) == (PUBLIC, PUBLIC + "/mcp", "sub-alice", "mcp")
    record = world.tokens.record({"Authorization": "Bearer " + got["access_token"]}, "mcp")
    assert (record.owner, record.team) == (world.person.id, "eng")


def test_without_a_session_the_person_signs_in_first_and_comes_back(world, client):
    query = urlencode(auth_params(client, pkce()[1]))
    status, headers, _ = ask(world, "oauth_authorize", "GET", "/oauth/authorize?" + query)
    assert status == 303 and headers["Location"] == "/ui/auth/login"
    from argoproxy.signin.pages import after_signin
    held = headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert after_signin(held) == "/oauth/authorize?" + query
    for bad in ("L2V2aWwuZXhhbXBsZQ==", base64.urlsafe_b64encode(b"/oauth/authorize?x\r\nSet-Cookie: a=b").decode(),
                "!!", ""):
        assert after_signin(bad) == "/ui"  # only this proxy's authorization path


def test_the_metadata_and_the_keys(world):
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
    status, _, meta = ask(world, "oauth_server_metadata", "GET", "/.well-known/oauth-authorization-server")
    assert status == 200 and meta["issuer"] == PUBLIC and meta["code_challenge_methods_supported"] == ["S256"]
    AuthorizationServerMetadata(meta).validate()
    assert ask(world, "oauth_jwks", "GET", "/oauth/jwks")[2]["keys"][0]["alg"] == "ES256"
    assert "d" not in ask(world, "oauth_jwks", "GET", "/oauth/jwks")[2]["keys"][0]  # the public half only
    assert world.resource.metadata("mcp")["authorization_servers"] == [PUBLIC]
    table = standard_table(False, ())
    for path, kind in (("/.well-known/oauth-authorization-server", "oauth_server_metadata"),
                       ("/.well-known/OAuth-Authorization-Server/x", "oauth_server_metadata"),
                       ("/oauth/authorize", "oauth_authorize"), ("/OAUTH/token", "oauth_token"),
                       ("/oauth/register", "oauth_register"), ("/oauth/jwks", "oauth_jwks")):
        assert table.classify(canonical(path)).kind == kind


def test_the_start_up_line_says_who_issues_the_tokens():
    from argoproxy.signin.resource import describe_issuer
    offered = Provider({"issuer": ISSUER, "registration_endpoint": ISSUER + "/reg"})
    assert "the proxy is the authorization server for MCP clients (MCP_OAUTH_SERVER=auto)" in describe_issuer(
        Provider(), "auto")  # type: ignore[arg-type]
    assert "(MCP_OAUTH_SERVER=proxy)" in describe_issuer(offered, "proxy")  # type: ignore[arg-type]
    assert "registered there by hand" in describe_issuer(Provider(), "issuer")  # type: ignore[arg-type]
    assert "MCP clients sign in at" in describe_issuer(offered, "auto")  # type: ignore[arg-type]
    said = describe_issuer(offered, "auto", "https://proxy.example.org/mcp")  # type: ignore[arg-type]
    assert "carry the audience https://proxy.example.org/mcp (" in said  # the value to set up there, not a name


def test_off_unless_the_proxy_is_the_authorization_server(world, tmp_path):
    offered = Provider({"issuer": ISSUER, "registration_endpoint": ISSUER + "/reg"})
    assert Decision("auto", offered).serves() is False and Decision("auto", Provider()).serves() is True
    assert Decision("issuer", Provider()).serves() is False
    pages = AuthServerPages(PUBLIC, "mcp", Decision("auto", offered), world.grants, world.store,
                            world.pages.sessions, world.resource.resources)
    with pytest.raises(ProxyError) as err:
        pages.kinds()["oauth_jwks"]("oauth_jwks", "", Request.of("GET", "/oauth/jwks"))
    assert err.value.status == 404


# ---------------------------------------------------------------- registration
@pytest.mark.parametrize("metadata, error", [
    ({"redirect_uris": ["http://evil.example.com/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
    ({"redirect_uris": []}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://a.example.com/" + "x" * 3000]}, "invalid_redirect_uri"),
    ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
    ({"client_name": "x" * 5000}, "invalid_client_metadata")])
def test_a_registration_is_refused_when_it_breaks_a_bound(world, metadata, error):
    status, _, body = register(world, **metadata)
    assert status == 400 and body["error"] == error, body


def test_an_oversize_or_broken_registration_and_the_cap(world, monkeypatch):
    status, _, body = ask(world, "oauth_register", "POST", "/oauth/register", b"{" + b" " * 20000 + b"}")
    assert status == 400 and "larger" in body["error_description"]
    assert ask(world, "oauth_register", "POST", "/oauth/register", b"[1")[2]["error"] == "invalid_client_metadata"
    monkeypatch.setattr("argoproxy.authserver.registration.MOST_CLIENTS", 2)
    assert register(world)[0] == 201 and register(world)[0] == 201
    status, _, body = register(world)
    assert status == 429 and body["error"] == "temporarily_unavailable" and MOST_CLIENTS == 10_000


DEEP = b"[" * 5000 + b"]" * 5000  # nested past json's recursion limit, within every size bound


def test_a_registration_nested_past_the_recursion_limit_is_refused_not_a_500(world):
    status, _, body = ask(world, "oauth_register", "POST", "/oauth/register", DEEP)
    assert status == 400 and body["error"] == "invalid_client_metadata", body


def test_a_client_not_yet_approved_is_kept_an_hour_an_approved_one_90_days(world, client):
    """A flood of registrations fills MOST_CLIENTS for an hour past its end, not for 90 days."""
    def life() -> float:
        row = world.grants._conn().execute("SELECT expires FROM oauth_grants WHERE name = ?",
                                           ("client:" + client,)).fetchone()
        return float(row[0]) - time.time()
    assert 3500 < life() <= 3600
    code_for(world, client, pkce())
    assert life() > 89 * 86400


def test_a_token_request_not_sent_as_a_form_is_refused_in_oauths_shape(world):
    not_utf8 = {"Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}  # Authlib's ValueError
    for body, headers in ((b'{"grant_type": "authorization_code"}', {"Content-Type": "application/json"}),
                          (b"code=" + b"x" * 20000, {"Content-Type": "application/x-www-form-urlencoded"}),
                          (b"grant_type=authorization_code&code=x", not_utf8)):
        status, _, got = ask(world, "oauth_token", "POST", "/oauth/token", body, headers)
        assert status == 400 and got["error"] == "invalid_request", got


@pytest.mark.parametrize("public, mode, refused", [
    ("https://llm.example.com", "proxy", ""), ("http://localhost:8000", "proxy", ""), ("http://llm.example.com", "auto", ""),
    ("http://llm.example.com", "proxy", "MCP_OAUTH_SERVER: proxy needs an https PUBLIC_URL"),
    ("https://llm.example.com", "sometimes", "MCP_OAUTH_SERVER")])
def test_the_proxy_as_authorization_server_needs_tls_or_loopback(public, mode, refused):
    from argoproxy.config.settings import SettingsError, load_settings
    given = {"OIDC_ISSUER": ISSUER, "OIDC_CLIENT_ID": "cot-proxy", "ENABLE_AUTH": "true", "API_KEY_SECRET": "k" * 20,
             "PUBLIC_URL": public, "MCP_OAUTH_SERVER": mode, "TARGET_BASE_URL": "http://127.0.0.1:9/v1"}
    if not refused:
        assert load_settings({}, given).mcp_oauth_server == mode
        return
    with pytest.raises(SettingsError) as err:
        load_settings({}, given)
    assert str(err.value).startswith(refused) and "\n" not in str(err.value)


def test_a_confidential_client_authenticates_with_its_secret(world):
    status, _, reg = register(world, token_endpoint_auth_method="client_secret_basic")
    assert status == 201 and reg["client_secret"]
    verifier = pkce()
    code = code_for(world, reg["client_id"], verifier)
    assert redeem(world, reg["client_id"], code, verifier[0])[0] == 401  # no secret: invalid_client
    code = code_for(world, reg["client_id"], verifier)
    basic = base64.b64encode(f"{reg['client_id']}:{reg['client_secret']}".encode()).decode()
    status, _, got = ask(world, "oauth_token", "POST", "/oauth/token", urlencode(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
         "code_verifier": verifier[0]}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"})
    assert status == 200 and "access_token" in got


# ---------------------------------------------------------------- the authorization request
@pytest.mark.parametrize("change, redirected, error", [
    ({"redirect_uri": "http://127.0.0.1:33418/other"}, False, "invalid_request"),
    ({"redirect_uri": 'http://127.0.0.1:33418/"x\\y'}, False, "invalid_request"),  # Authlib's ValueError: not a 500
    ({"response_type": "c\u00f6de"}, False, "invalid_request"),
    ({"client_id": "mcp-nobody"}, False, "invalid_client"),
    ({"code_challenge": None, "code_challenge_method": None}, True, "invalid_request"),
    ({"code_challenge_method": "plain"}, True, "invalid_request"),
    ({"resource": "https://elsewhere.example.com/mcp"}, True, "invalid_target"),
    ({"resource": PUBLIC + "/mcp/nosuch"}, True, "invalid_target"),
    ({"response_type": "token"}, True, "unsupported_response_type")])
def test_a_bad_authorization_request_is_refused(world, client, change, redirected, error):
    params = {k: v for k, v in {**auth_params(client, pkce()[1]), **change}.items() if v is not None}
    status, headers, body = ask(world, "oauth_authorize", "GET", "/oauth/authorize?" + urlencode(params), None,
                                world.cookie)
    if redirected:  # the redirect URI was checked: the error goes to the client, with iss
        assert status == 303, body
        back = parse_qs(urlsplit(headers["Location"]).query)
        assert headers["Location"].startswith(REDIRECT) and back["error"] == [error] and back["iss"] == [PUBLIC]
    else:  # never to a URI not registered
        assert status == 400 and body["error"] == error, body


def test_approval_needs_the_sessions_csrf_token_and_deny_says_so(world, client):
    params = auth_params(client, pkce()[1])
    assert approve(world, params, csrf="forged")[0] == 403
    assert approve(world, params, csrf="")[0] == 403
    status, headers, _ = approve(world, params, decision="deny")
    assert status == 303 and parse_qs(urlsplit(headers["Location"]).query)["error"] == ["access_denied"]


# ---------------------------------------------------------------- the token endpoint
def test_a_wrong_verifier_a_replayed_code_and_another_clients_code_are_refused(world, client):
    verifier = pkce()
    code = code_for(world, client, verifier)
    status, _, body = redeem(world, client, code, pkce()[0])
    assert status == 400 and body["error"] == "invalid_grant"
    code = code_for(world, client, verifier)
    first = redeem(world, client, code, verifier[0])
    assert first[0] == 200
    status, _, body = redeem(world, client, code, verifier[0])
    assert status == 400 and body["error"] == "invalid_grant" and "used already" in body["error_description"]
    status, _, body = token(world, grant_type="refresh_token", refresh_token=first[2]["refresh_token"], client_id=client)
    assert status == 400 and "revoked" in body["error_description"]  # what the replayed code gave is revoked
    other = register(world)[2]["client_id"]
    code = code_for(world, client, verifier)
    status, _, body = redeem(world, other, code, verifier[0])
    assert status == 400 and "another client" in body["error_description"]
    code = code_for(world, client, verifier)
    status, _, body = redeem(world, client, code, "")
    assert status == 400 and "code_verifier" in body["error_description"]
    code = code_for(world, client, verifier)
    assert redeem(world, client, code, verifier[0], resource=PUBLIC + "/mcp/fake")[2]["error"] == "invalid_target"


def test_refresh_tokens_rotate_and_a_replayed_one_revokes_its_family(world, client):
    verifier = pkce()
    first = redeem(world, client, code_for(world, client, verifier), verifier[0])[2]
    status, _, second = token(world, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id=client)
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    status, _, body = token(world, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id=client)
    assert status == 400 and "used already" in body["error_description"]
    status, _, body = token(world, grant_type="refresh_token", refresh_token=second["refresh_token"], client_id=client)
    assert status == 400 and "revoked" in body["error_description"]  # the family went with the replay


def test_a_token_for_one_server_is_refused_at_another_and_none_once_expired(world, client):
    verifier = pkce()
    got = redeem(world, client, code_for(world, client, verifier, resource=PUBLIC + "/mcp/fake"), verifier[0])[2]
    headers = {"Authorization": "Bearer " + got["access_token"]}
    assert world.tokens.record(headers, "mcp/fake").owner == world.person.id
    for path in ("mcp/other", "mcp"):
        with pytest.raises(ProxyError) as err:
            world.tokens.record(headers, path)
        assert err.value.status == 401
    world.tokens.clock = lambda: 10**10  # long past its exp
    with pytest.raises(ProxyError) as err:
        world.tokens.record(headers, "mcp/fake")
    assert err.value.status == 401


def test_a_disabled_person_gets_no_token(world, client):
    verifier = pkce()
    code = code_for(world, client, verifier)
    world.store.set_person_disabled(world.person.id, True, 1.0)
    status, _, body = redeem(world, client, code, verifier[0])
    assert status == 400 and body["error"] == "invalid_grant"


# ---------------------------------------------------------------- Client ID Metadata Documents
def document(**changes) -> dict:
    return {"client_id": DOC_URL, "client_name": "Doc client", "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none", **changes}


@responses_lib.activate
def test_a_metadata_document_names_its_client(world):
    responses_lib.get(DOC_URL, json=document())
    verifier = pkce()
    status, _, got = redeem(world, DOC_URL, code_for(world, DOC_URL, verifier), verifier[0])
    assert status == 200 and "access_token" in got


@pytest.mark.parametrize("case", ["mismatch", "oversize", "redirect", "secret", "private", "http", "deep"])
@responses_lib.activate
def test_a_bad_metadata_document_is_refused(world, case, monkeypatch):
    url = DOC_URL if case != "http" else "http://app.example.net/client.json"
    if case == "mismatch":
        responses_lib.get(DOC_URL, json=document(client_id="https://other.example.net/client.json"))
    elif case == "oversize":
        responses_lib.get(DOC_URL, json=document(client_name="x" * 20000))
    elif case == "redirect":
        responses_lib.get(DOC_URL, status=302, headers={"Location": "http://169.254.169.254/"})
    elif case == "secret":
        responses_lib.get(DOC_URL, json=document(token_endpoint_auth_method="client_secret_basic"))
    elif case == "deep":
        responses_lib.get(DOC_URL, body=DEEP)
    elif case == "private":
        world.pages.documents.resolver = lambda host, port: ["93.184.216.34", "10.0.0.7"]
    params = auth_params(url, pkce()[1])
    status, _, body = ask(world, "oauth_authorize", "GET", "/oauth/authorize?" + urlencode(params), None,
                          world.cookie)
    assert status == 400 and body["error"] == "invalid_client", body
    assert (case != "private") or not responses_lib.calls  # a private address is never asked


@responses_lib.activate
def test_a_document_host_that_turns_private_between_the_check_and_the_fetch_is_refused(world, monkeypatch):
    responses_lib.get(DOC_URL, json=document())
    monkeypatch.setattr(cimd, "peer_address", lambda got: "10.0.0.7")  # the name's answer changed (rebinding)
    params = auth_params(DOC_URL, pkce()[1])
    status, _, body = ask(world, "oauth_authorize", "GET", "/oauth/authorize?" + urlencode(params), None, world.cookie)
    assert status == 400 and "non-public" in body["message"], body


class Dripping:
    """A document's answer that sends one byte a read, each a second later (the clock below): endless."""
    status_code = 200

    def __init__(self, clock: list[float]) -> None:
        self.clock, self.raw = clock, self

    def read1(self, most: int, decode_content: bool = True) -> bytes:
        self.clock[0] += 1.0
        return b" "

    read = read1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def test_a_document_dripped_a_byte_at_a_time_is_refused_within_the_fetchs_seconds():
    clock = [0.0]
    session = SimpleNamespace(get=lambda *a, **k: Dripping(clock), trust_env=True)
    documents = Documents("mcp", resolver=lambda host, port: ["93.184.216.34"], session=session,  # type: ignore[arg-type]
                          clock=lambda: clock[0])
    with pytest.raises(cimd.DocumentRefused, match="not sent within 5 seconds"):
        documents.client(DOC_URL)
    assert clock[0] <= cimd.FETCH_SECONDS + 2


@responses_lib.activate
def test_documents_named_by_anyone_are_fetched_within_a_bound_and_a_refused_one_is_not_fetched_again():
    """/oauth/authorize names a document before anyone signs in: the proxy must not fetch for whoever asks."""
    clock = [0.0]
    documents = Documents("mcp", resolver=lambda host, port: ["93.184.216.34"], clock=lambda: clock[0])
    urls = [f"https://app{i}.example.net/client.json" for i in range(40)]
    for url in urls:
        responses_lib.get(url, status=404)
    said = []
    for url in urls:
        with pytest.raises(cimd.DocumentRefused) as refused:
            documents.client(url)
        said.append(str(refused.value))
    assert len(responses_lib.calls) == cimd.FETCH_BURST  # the rest refused without a request
    assert sum("too many" in why for why in said) == len(urls) - cimd.FETCH_BURST
    with pytest.raises(cimd.DocumentRefused, match="answered 404"):
        documents.client(urls[0])  # refused before: answered from memory
    assert len(responses_lib.calls) == cimd.FETCH_BURST
    clock[0] += cimd.REFUSED_SECONDS + 1  # later: the budget has refilled and the refusal is forgotten
    responses_lib.replace(responses_lib.GET, urls[0], json=document(client_id=urls[0]))
    responses_lib.replace(responses_lib.GET, urls[-1], json=document(client_id=urls[-1]))
    assert documents.client(urls[0]).client_id == urls[0]
    assert documents.client(urls[-1]).client_id == urls[-1]  # over the bound once, not remembered as refused


def test_only_public_addresses_are_documents_hosts():
    assert cimd.public("93.184.216.34") and not any(
        cimd.public(a) for a in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fd00::1", "192.168.1.1"))


# ---------------------------------------------------------------- the store, on SQLite and Redis
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_grant_store_takes_once_and_counts_live_clients(kind, request, tmp_path):
    now = [1000.0]
    if kind == "redis":
        from argoproxy.teamkeys.redis_store import connect
        grants = RedisGrants(connect(request.getfixturevalue("redis_url")), clock=lambda: now[0])
    else:
        grants = SQLiteGrants(str(tmp_path / "g.db"), clock=lambda: now[0])
    grants.put("code:a", "A", 60)
    assert grants.swap("code:a", "used", 60) == "A" and grants.swap("code:a", "used", 60) == "used"
    assert grants.swap("code:made-up", "used", 60) is None and grants.get("code:made-up") is None  # no row left
    name = f"added:{kind}"  # the server's own names (signing_key) stay out of the shared Redis
    assert grants.add(name, "k1", 60) and not grants.add(name, "k2", 60)
    assert grants.get(name) == "k1"
    before = grants.count("client:")  # (the module's Redis may hold the replicas' test's)
    grants.put("client:x", "{}", 10)
    grants.put("client:y", "{}", 100)
    assert grants.count("client:") == before + 2
    now[0] += 50
    if kind == "sqlite":
        assert grants.get("client:x") is None
    assert grants.count("client:") == before + 1


def test_two_replicas_on_redis_share_codes_refresh_tokens_and_the_key(world, redis_url):
    """A code issued by one replica is redeemed at the other, once; the other's key set verifies the token."""
    from argoproxy.teamkeys.redis_store import connect
    replicas = [AuthServerPages(PUBLIC, "mcp", Decision("proxy", Provider()), RedisGrants(connect(redis_url)),
                                world.store, world.pages.sessions, world.resource.resources) for _ in range(2)]
    one, two = (SimpleNamespace(**{**vars(world), "pages": r, "kinds": r.kinds()}) for r in replicas)
    client = register(one)[2]["client_id"]
    verifier = pkce()
    code = code_for(one, client, verifier)
    status, _, got = redeem(two, client, code, verifier[0])
    assert status == 200, got
    assert jwt.decode(got["access_token"], replicas[0].key.key_set()).claims["sub"] == "sub-alice"
    status, _, again = token(one, grant_type="refresh_token", refresh_token=got["refresh_token"], client_id=client)
    assert status == 200 and again["refresh_token"] != got["refresh_token"], again
    assert redeem(one, client, code, verifier[0])[0] == 400  # taken once, whichever replica is asked
    status, _, body = token(two, grant_type="refresh_token", refresh_token=again["refresh_token"], client_id=client)
    assert status == 400 and "revoked" in body["error_description"]  # the replay revoked the family on both


def test_the_consent_page_shows_a_lookalike_host_in_its_ascii_form():
    from argoproxy.authserver.pages import shown_host
    assert shown_host("https://аpple.com/cb") == "xn--pple-43d.com"  # a Cyrillic 'а': not apple.com
    assert shown_host("https://аpple.com:8443/cb") == "xn--pple-43d.com:8443"
    assert shown_host("http://127.0.0.1:9000/cb") == "127.0.0.1:9000"
    assert shown_host("https://app.example.net/cb").isascii()
