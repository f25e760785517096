"""A person connects to a per_user MCP server from the console (mcp/connect_flow.py, oauth_discovery.py): discovery
(RFC 9728 from the server's 401, then RFC 8414 with its issuer checked), dynamic registration (RFC 7591), the code
flow with PKCE and `resource` (RFC 8707), RFC 9207's `iss`, the flow single use and the person's own. The server and
its authorization server are `responses` mocks: every HTTP exchange is checked as sent."""

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from argoproxy.config.mcp_servers import McpServer, McpServers
from argoproxy.errors import ProxyError
from argoproxy.mcp import connection_end
from argoproxy.mcp.connect_flow import ConnectPages
from argoproxy.mcp.connections import Connections
from argoproxy.teamkeys.credential_store import SQLiteCredentials
from argoproxy.mcp.credential_vault import Tokens, Vault

MCP = "https://tools.example.com/mcp"
PRM = "https://tools.example.com/.well-known/oauth-protected-resource/mcp"
ISSUER = "https://as.example.com"
ANN, BOB = "person-ann", "person-bob"
PUBLIC = "https://llm.example.com"


def as_metadata(**more):
    return {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorize", "token_endpoint": ISSUER + "/token",
            "registration_endpoint": ISSUER + "/register", "authorization_response_iss_parameter_supported": True,
            **more}


@pytest.fixture
def remote():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.post(MCP, status=401, headers={"WWW-Authenticate": f'Bearer resource_metadata="{PRM}", scope="repo"'})
        mocked.get(PRM, json={"resource": MCP, "authorization_servers": [ISSUER], "scopes_supported": ["repo"]})
        mocked.get(ISSUER + "/.well-known/oauth-authorization-server", json=as_metadata())
        mocked.post(ISSUER + "/register", status=201, json={"client_id": "registered-client"})
        mocked.post(ISSUER + "/token", json={"access_token": "ann-access", "refresh_token": "ann-refresh",
                                             "expires_in": 3600, "token_type": "Bearer"})
        yield mocked


@pytest.fixture
def pages(tmp_path):
    people = {"cookie-ann": ANN, "cookie-bob": BOB}
    connections = Connections(SQLiteCredentials(str(tmp_path / "keys.db")), lambda: Vault(b"k" * 32))
    return ConnectPages(McpServers([McpServer("gh", url=MCP, auth="per_user")]), connections, PUBLIC,
                        lambda headers: people.get(headers.get("Cookie", "")))


def begin(pages, cookie="cookie-ann"):
    answer = pages.answer("gh", False, "GET", "", {"Cookie": cookie})
    assert answer.status_code == 303
    location = answer.headers["Location"]
    return location, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def back(pages, query, cookie="cookie-ann"):
    text = "&".join(f"{k}={v}" for k, v in query.items())
    return pages.answer("gh", True, "GET", text, {"Cookie": cookie})


def test_a_person_connects_and_their_tokens_are_kept_sealed(pages, remote):
    location, asked = begin(pages)
    assert location.startswith(ISSUER + "/authorize?")
    assert asked["client_id"] == "registered-client" and asked["resource"] == MCP and asked["scope"] == "repo"
    assert asked["redirect_uri"] == PUBLIC + "/ui/connect/gh/callback" and asked["code_challenge_method"] == "S256"
    registered = json.loads(remote.calls[3].request.body)
    assert registered["redirect_uris"] == [PUBLIC + "/ui/connect/gh/callback"]
    done = back(pages, {"state": asked["state"], "code": "the-code", "iss": ISSUER})
    assert done.status_code == 303 and done.headers["Location"] == "/ui"
    sent = {k: v[0] for k, v in parse_qs(remote.calls[-1].request.body).items()}
    verifier = sent["code_verifier"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == asked["code_challenge"] and sent["resource"] == MCP and sent["code"] == "the-code"
    kept = pages.connections.tokens("person-ann", "gh")
    assert (kept.access_token, kept.refresh_token, kept.client_id) == ("ann-access", "ann-refresh", "registered-client")
    assert kept.token_endpoint == ISSUER + "/token" and kept.expires_at > 0
    assert b"ann-access" not in pages.connections.store.get("person-ann", "gh")
    # the flow was single use: a replayed callback is refused
    with pytest.raises(ProxyError, match="unknown, used already"):
        back(pages, {"state": asked["state"], "code": "the-code", "iss": ISSUER})


def test_a_store_that_cannot_keep_the_tokens_is_a_clear_503_not_a_500(pages, remote, monkeypatch):
    _, asked = begin(pages)
    import sqlite3

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(pages.connections.store, "put", locked)
    with pytest.raises(ProxyError) as refused:
        back(pages, {"state": asked["state"], "code": "the-code", "iss": ISSUER})
    assert refused.value.status == 503 and refused.value.code == "mcp_store_unavailable"
    assert "OperationalError" in refused.value.message and "ann-access" not in refused.value.message


def test_another_persons_callback_a_missing_iss_and_another_issuer_are_refused(pages, remote):
    _, asked = begin(pages)
    with pytest.raises(ProxyError, match="another person's"):
        back(pages, {"state": asked["state"], "code": "c", "iss": ISSUER}, cookie="cookie-bob")
    for iss in ({}, {"iss": "https://evil.example.com"}):  # the server says it sends iss: it must, and match
        _, asked = begin(pages)
        with pytest.raises(ProxyError, match=r"another authorization server than the one asked \(iss\)"):
            back(pages, {"state": asked["state"], "code": "c", **iss})
    assert pages.connections.connected("person-ann") == [] and pages.connections.connected("person-bob") == []
    assert not any(c.request.url.endswith("/token") for c in remote.calls)


def test_metadata_for_another_issuer_or_resource_is_refused(pages, remote):
    remote.replace(responses.GET, ISSUER + "/.well-known/oauth-authorization-server",
                   json=as_metadata(issuer="https://evil.example.com"))
    with pytest.raises(ProxyError, match="names another issuer") as caught:
        begin(pages)
    assert caught.value.status == 502
    remote.replace(responses.GET, PRM, json={"resource": "https://other.example.com/mcp",
                                             "authorization_servers": [ISSUER]})
    with pytest.raises(ProxyError, match="for another resource"):
        begin(pages)


def test_not_signed_in_goes_to_sign_in_and_a_disconnect_ends_the_connection(pages, remote):
    assert pages.answer("gh", False, "GET", "", {}).headers["Location"] == "/ui/auth/login"
    pages.connections.save("person-ann", "gh", Tokens("ann-access"))
    with pytest.raises(ProxyError) as caught:
        pages.answer("gh", False, "DELETE", "", {})
    assert caught.value.status == 401 and pages.connections.connected("person-ann") == ["gh"]
    # (its CSRF token and Origin: the console's check, made where the pages are mounted: test_mcp_per_user.py)
    answer = pages.answer("gh", False, "DELETE", "", {"Cookie": "cookie-ann"})
    assert json.loads(answer.response) == {"server": "gh", "disconnected": True} and pages.connections.connected("person-ann") == []
    with pytest.raises(ProxyError) as caught:
        pages.answer("docs", False, "GET", "", {"Cookie": "cookie-ann"})
    assert caught.value.status == 404


def test_a_disconnect_revokes_both_tokens_at_the_authorization_server_and_ends_the_persons_sessions(pages, remote,
                                                                                                       caplog):
    remote.replace(responses.GET, ISSUER + "/.well-known/oauth-authorization-server",
                   json=as_metadata(revocation_endpoint=ISSUER + "/revoke"))
    remote.post(ISSUER + "/revoke", status=200)
    revoked, ended = [], []
    pages.connections.revoke = lambda tokens, secret: revoked.append(connection_end.revoke(tokens, secret))
    pages.connections.end_sessions = lambda person, servers: ended.append((person, servers))
    _, asked = begin(pages)
    back(pages, {"state": asked["state"], "code": "the-code", "iss": ISSUER})
    assert pages.connections.tokens("person-ann", "gh").revocation_endpoint == ISSUER + "/revoke"
    caplog.set_level("DEBUG")
    answer = pages.answer("gh", False, "DELETE", "", {"Cookie": "cookie-ann"})
    assert json.loads(answer.response) == {"server": "gh", "disconnected": True} and pages.connections.connected("person-ann") == []
    sent = [{k: v[0] for k, v in parse_qs(c.request.body).items()} for c in remote.calls if c.request.url.endswith(
        "/revoke")]
    assert sent == [{"token": "ann-refresh", "token_type_hint": "refresh_token", "client_id": "registered-client"},
                    {"token": "ann-access", "token_type_hint": "access_token", "client_id": "registered-client"}]
    assert revoked == [["refresh_token", "access_token"]] and ended == [("person-ann", ["gh"])]
    assert "ann-refresh" not in caplog.text and "ann-access" not in caplog.text


def test_a_revocation_refused_or_unreachable_is_best_effort_and_says_no_token(caplog):
    tokens = Tokens("ann-access", "ann-refresh", 0.0, ISSUER + "/token", ISSUER, "cot",
                    revocation_endpoint=ISSUER + "/revoke")
    caplog.set_level("INFO")
    with responses.RequestsMock() as mocked:
        mocked.post(ISSUER + "/revoke", status=503)
        mocked.post(ISSUER + "/revoke", status=307, headers={"Location": "https://evil.example.com/r"})
        assert connection_end.revoke(tokens) == []  # neither taken; the redirect not followed
        assert len(mocked.calls) == 2
    with responses.RequestsMock():  # nothing listens: refused, said by kind
        assert connection_end.revoke(tokens, "a-secret") == []
    assert connection_end.revoke(Tokens("ann-access")) == []  # no revocation_endpoint: nothing sent
    assert "HTTP 503" in caplog.text and "ConnectionError" in caplog.text
    assert "ann-" not in caplog.text and "a-secret" not in caplog.text


def test_a_registration_refused_for_the_refresh_grant_is_made_again_without_it(pages, remote):
    remote.replace(responses.POST, ISSUER + "/register", status=400, json={
        "error": "invalid_client_metadata", "error_description": "grant_types can only contain 'implicit' or "
                                                                 "'authorization_code'"})
    remote.add(responses.POST, ISSUER + "/register", status=201, json={"client_id": "no-refresh-client"})
    assert begin(pages)[1]["client_id"] == "no-refresh-client"
    asked = [json.loads(c.request.body)["grant_types"] for c in remote.calls if c.request.url.endswith("/register")]
    assert asked == [["authorization_code", "refresh_token"], ["authorization_code"]]


def test_a_token_endpoint_that_redirects_elsewhere_is_not_followed(pages, remote):
    remote.replace(responses.POST, ISSUER + "/token", status=307, headers={"Location": "https://evil.example.com/t"})
    remote.post("https://evil.example.com/t", json={"access_token": "stolen"})
    _, asked = begin(pages)
    with pytest.raises(ProxyError, match="did not give tokens for the code"):
        back(pages, {"state": asked["state"], "code": "the-code", "iss": ISSUER})
    assert not any(c.request.url.startswith("https://evil.example.com") for c in remote.calls)
    assert pages.connections.connected("person-ann") == []


# ------------------------------------------------------------ Client ID Metadata Documents (MCP's order)
METADATA_URL = PUBLIC + "/ui/connect/client-metadata.json"


def test_an_authorization_server_that_takes_metadata_documents_gets_the_documents_url_and_no_registration(pages, remote):
    remote.replace(responses.GET, ISSUER + "/.well-known/oauth-authorization-server",
                   json=as_metadata(client_id_metadata_document_supported=True))
    _, asked = begin(pages)
    assert asked["client_id"] == METADATA_URL
    assert not any(c.request.url.endswith("/register") for c in remote.calls)
    done = back(pages, {"state": asked["state"], "code": "the-code", "iss": ISSUER})
    assert done.status_code == 303
    sent = {k: v[0] for k, v in parse_qs(remote.calls[-1].request.body).items()}
    assert sent["client_id"] == METADATA_URL and "client_secret" not in sent  # a public client: PKCE alone
    assert pages.connections.tokens("person-ann", "gh").client_id == METADATA_URL  # its refreshes name it too


def test_the_metadata_document_is_served_to_anyone_and_names_itself_and_the_callbacks(pages):
    answer = pages.answer("client-metadata.json", False, "GET", "", {})  # no session, no key
    document = json.loads(answer.response[0] if isinstance(answer.response, list) else answer.response)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    assert document["client_id"] == METADATA_URL and document["redirect_uris"] == [PUBLIC + "/ui/connect/gh/callback"]
    assert document["token_endpoint_auth_method"] == "none" and "client_secret" not in document
    assert document["grant_types"] == ["authorization_code", "refresh_token"] and document["client_name"]
    assert "max-age" in answer.headers["Cache-Control"]
    for method, callback in (("DELETE", False), ("GET", True)):
        with pytest.raises(ProxyError) as caught:
            pages.answer("client-metadata.json", callback, method, "", {})
        assert caught.value.status in (404, 405)


def test_a_pre_registered_client_comes_first_and_an_http_public_url_registers_instead(tmp_path, remote):
    remote.replace(responses.GET, ISSUER + "/.well-known/oauth-authorization-server",
                   json=as_metadata(client_id_metadata_document_supported=True))
    connections = Connections(SQLiteCredentials(str(tmp_path / "keys.db")), lambda: Vault(b"k" * 32))
    people = {"cookie-ann": ANN}.get
    pre = ConnectPages(McpServers([McpServer("gh", url=MCP, auth="per_user", client_id="given")]), connections,
                       PUBLIC, lambda headers: people(headers.get("Cookie", "")))
    assert begin(pre)[1]["client_id"] == "given"
    plain = ConnectPages(McpServers([McpServer("gh", url=MCP, auth="per_user")]), connections,
                         "http://llm.example.com", lambda headers: people(headers.get("Cookie", "")))
    assert begin(plain)[1]["client_id"] == "registered-client"  # a document's URL must be https: not offered
    with pytest.raises(ProxyError) as caught:
        plain.answer("client-metadata.json", False, "GET", "", {})
    assert caught.value.status == 404


def test_one_registration_serves_every_per_user_server_behind_its_authorization_server(tmp_path, remote):
    connections = Connections(SQLiteCredentials(str(tmp_path / "keys.db")), lambda: Vault(b"k" * 32))
    two = ConnectPages(McpServers([McpServer("gh", url=MCP, auth="per_user"),
                                   McpServer("gh2", url=MCP, auth="per_user")]), connections, PUBLIC,
                       lambda headers: ANN)
    begin(two)
    registered = json.loads(next(c for c in remote.calls if c.request.url.endswith("/register")).request.body)
    assert registered["redirect_uris"] == [PUBLIC + "/ui/connect/gh/callback", PUBLIC + "/ui/connect/gh2/callback"]
    assert registered["application_type"] == "web"
