"""`auth: token_exchange` (mcp/token_exchange.py): the person's provider token exchanged by RFC 8693 at OIDC_ISSUER
for one with the server's audience; only the exchanged token is handed on, a proxy key is never sent to the
provider, and a refusal names no token. The provider is a `responses` mock: each exchange is checked as sent."""

from urllib.parse import parse_qs

import pytest
import responses

from argoproxy.config.mcp_servers import McpServer, McpServers
from argoproxy.mcp.connections import Connections
from argoproxy.mcp.credential_vault import Vault
from argoproxy.mcp.person_tokens import PersonTokens, caller, provider_token
from argoproxy.mcp.token_exchange import TokenExchange
from argoproxy.teamkeys.credential_store import SQLiteCredentials

ISSUER = "https://login.example.com"
JIRA = McpServer("jira", url="https://jira.example.com/mcp", auth="token_exchange", scopes=("read",))
SUBJECT = "ann-provider-token-0123456789"
MESSAGE = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "x"}}


@pytest.fixture
def tokens(tmp_path):
    connections = Connections(SQLiteCredentials(str(tmp_path / "keys.db")), lambda: Vault(b"k" * 32))
    exchange = TokenExchange(ISSUER, "proxy", lambda: "proxy-secret")
    return PersonTokens(McpServers([JIRA]), connections, "https://llm.example.com", exchange)


@pytest.fixture
def provider():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.get(ISSUER + "/.well-known/oauth-authorization-server", status=404)
        mocked.get(ISSUER + "/.well-known/openid-configuration", json={
            "issuer": ISSUER, "authorization_endpoint": ISSUER + "/auth", "token_endpoint": ISSUER + "/token"})
        yield mocked


def as_ann(tokens, subject=SUBJECT):
    person, presented = caller.set("person-ann"), provider_token.set(subject)
    try:
        return tokens.fields("jira", MESSAGE)
    finally:
        caller.reset(person)
        provider_token.reset(presented)


def test_the_persons_token_is_exchanged_for_the_servers_and_only_that_is_handed_on(tokens, provider):
    provider.post(ISSUER + "/token", json={"access_token": "jira-audience-token", "expires_in": 300,
                                           "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                                           "token_type": "Bearer"})
    assert as_ann(tokens) == {"person": "person-ann", "token": "jira-audience-token"}
    sent = {k: v[0] for k, v in parse_qs(provider.calls[-1].request.body).items()}
    assert sent["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert sent["subject_token"] == SUBJECT and sent["resource"] == sent["audience"] == JIRA.url
    assert sent["scope"] == "read" and provider.calls[-1].request.headers["Authorization"].startswith("Basic ")
    assert as_ann(tokens)["token"] == "jira-audience-token"  # kept until near its expiry: asked once
    assert sum(c.request.url.endswith("/token") for c in provider.calls) == 1


def test_without_a_provider_token_a_refusal_or_the_original_back_nothing_is_handed_on(tokens, provider):
    refused = as_ann(tokens, subject="")["refused"]  # a proxy key: nothing to exchange, nothing sent
    assert refused["error"]["code"] == -32600 and "not with a proxy key" in refused["error"]["message"]
    assert not provider.calls
    provider.post(ISSUER + "/token", status=400, json={"error": "invalid_target",
                                                      "error_description": f"no audience for {SUBJECT}"})
    refused = as_ann(tokens)["refused"]
    assert "invalid_target" in refused["error"]["message"] and SUBJECT not in str(refused)
    provider.replace(responses.POST, ISSUER + "/token", json={"access_token": SUBJECT, "token_type": "Bearer"})
    refused = as_ann(tokens)["refused"]
    assert "would not exchange" in refused["error"]["message"] and SUBJECT not in str(refused)
