"""/mcp as an OAuth 2.1 protected resource (issue 72, item 1; docs/mcp-auth.md) against the real OpenID provider
(npm's oidc-provider as the authorization server: dynamic registration, resource indicators, JWT access tokens for
MCP clients, opaque ones for the proxy's own client, introspection, revocation): the metadata documents, the
challenge, JWTs accepted as their person with their team's tool globs and tool rate, bad ones refused (audience,
expiry, issuer, forged, `alg: none`), opaque tokens by introspection (cached), revoked or unknown ones refused, a
disabled person and a person with no team refused, proxy keys beside tokens; and the official MCP SDK's OAuth
client signing in through /mcp with no key. One provider and one proxy for the module."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import RSAKey

from argoproxy.teamkeys import people_cli, teams_cli
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_mcp_gateway import INIT, SERVERS, send
from tests.integration.test_signin import cli, proxy_on
from tests.integration.test_team_keys import create
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, sign_in, signin_settings, through_provider
from tests.polling import poll
from tests.proxy_process import ProxyProcess, free_port

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")

ADMIN = "admin-key-for-mcp-oauth-tests"
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "fake__echo", "arguments": {"text": "x"}}}


@pytest.fixture(scope="module")
def world() -> Iterator[SimpleNamespace]:
    """Teams: eng (alice, bob; fake__echo and fake__whoami), sales (erin; fake__echo, 2 tool calls a minute);
    carol belongs to none; dave is disabled. Each signed in once, so the proxy knows them."""
    port = free_port()
    public = f"http://localhost:{port}"
    provider = OidcProvider(public, resources={f"{public}/mcp": "mcp", f"{public}/mcp/fake": "mcp"},
                            opaque_clients=(CLIENT_ID,)).start()
    folder = Path(tempfile.mkdtemp(prefix="cot_proxy_mcp_oauth_"))
    db = folder / "keys.db"
    cli(teams_cli, db, "create", "eng", "--groups", "eng", "--tools", "fake__echo,fake__whoami")
    cli(teams_cli, db, "create", "sales", "--groups", "sales", "--tools", "fake__echo", "--tool-rpm", "2")
    team_key = create(db, "svc", "--team", "eng")
    proxy: ProxyProcess | None = None
    try:
        with FakeOpenAI() as fake:
            proxy = proxy_on(port, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                             KEYS_DB=str(db), MCP_SERVERS=SERVERS, WORKERS="1", **signin_settings(provider, public))
            for login in ("alice", "carol", "dave", "erin"):
                assert sign_in(requests.Session(), public, login).status_code == 303
            cli(people_cli, db, "disable", "dave@example.com")
            yield SimpleNamespace(provider=provider, public=public, proxy=proxy, db=db, team_key=team_key)
    finally:
        if proxy is not None:
            proxy.stop()
        provider.stop()
        shutil.rmtree(folder, ignore_errors=True)


def signed(world: SimpleNamespace, login: str = "alice", key: RSAKey | None = None, **claims: Any) -> str:
    """An access token as the provider signs one (its own key unless `key`), for `login`, with `claims` over the
    defaults."""
    now = int(time.time())
    body = {"iss": world.provider.issuer, "sub": f"sub-{login}", "aud": world.public + "/mcp", "iat": now,
            "exp": now + 300, "scope": "mcp", "client_id": "some-client", **claims}
    return jwt.encode({"alg": "RS256", "kid": "test-key", "typ": "at+jwt"}, body, key or world.provider.key)


SENT: list[str] = []  # every token sent: none may appear in the proxy's log


def bearer(token: str) -> dict[str, str]:
    SENT.append(token)
    return {"Authorization": f"Bearer {token}"}


def call(world: SimpleNamespace, token: str, path: str = "/mcp", body: dict[str, Any] = INIT) -> tuple[int, dict, Any]:
    return send(world.proxy, "POST", path, body=body, headers=bearer(token))


def tool_call(world: SimpleNamespace, token: str, name: str, path: str = "/mcp") -> Any:
    """A session opened with the token, then one tool call in it: the call's JSON-RPC answer."""
    status, headers, _ = call(world, token, path)
    assert status == 200
    session = {**bearer(token), "Mcp-Session-Id": headers["Mcp-Session-Id"]}
    send(world.proxy, "POST", path, body={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    body = {**CALL, "params": {"name": name, "arguments": {"text": "x"}}}
    return send(world.proxy, "POST", path, body=body, headers=session)[2]


# ---------------------------------------------------------------- the metadata and the challenge
def test_the_metadata_documents_are_served_without_a_key(world):
    for path, resource in (("", "/mcp"), ("/mcp", "/mcp"), ("/MCP/fake", "/mcp/fake")):
        got = requests.get(f"{world.public}/.well-known/oauth-protected-resource{path}", timeout=10)
        assert got.status_code == 200, got.text
        assert got.json() == {"resource": world.public + resource, "authorization_servers": [world.provider.issuer],
                              "scopes_supported": ["mcp"], "bearer_methods_supported": ["header"],
                              "resource_name": "cot_proxy MCP gateway" + (": fake" if "fake" in path else "")}
    nosuch = requests.get(f"{world.public}/.well-known/oauth-protected-resource/mcp/nosuch", timeout=10)
    assert nosuch.status_code == 404 and "nosuch" in nosuch.json()["error"]["message"]
    for path in ("/mcp/fake/more", "/other"):  # no metadata's: a key needed, as on any other path
        assert requests.get(f"{world.public}/.well-known/oauth-protected-resource{path}", timeout=10).status_code == 401


def test_a_call_without_credentials_gets_the_challenge(world):
    status, headers, body = send(world.proxy, "POST", body=INIT)
    assert status == 401, body
    assert headers["WWW-Authenticate"] == (f'Bearer resource_metadata="{world.public}/.well-known/'
                                           f'oauth-protected-resource/mcp", scope="mcp"')
    status, headers, _ = send(world.proxy, "POST", "/mcp/fake", body=INIT)
    assert status == 401 and "oauth-protected-resource/mcp/fake" in headers["WWW-Authenticate"]



def test_an_unknown_server_is_a_404_not_a_challenge_naming_metadata_that_is_not_there(world):
    before = world.provider.introspections()
    for headers in ({}, bearer("an-opaque-token-for-nosuch"), bearer(signed(world))):
        status, got, body = send(world.proxy, "POST", "/mcp/nosuch", body=INIT, headers=headers)
        assert status == 404 and "WWW-Authenticate" not in got and "'nosuch'" in body["error"]["message"], body
    assert world.provider.introspections() == before  # nothing asked of the issuer for a server that is not one


# ---------------------------------------------------------------- JWT access tokens
def test_a_jwt_is_its_persons_and_their_teams_tool_globs_hold(world):
    token = signed(world)
    echoed = tool_call(world, token, "fake__echo")
    assert "result" in echoed and not echoed["result"].get("isError"), echoed
    refused = tool_call(world, token, "fake__add")
    assert refused["error"]["code"] == -32602 and "not allowed" in refused["error"]["message"]
    # the per-server resource takes a token for it, and one for the whole of /mcp
    assert call(world, signed(world, aud=world.public + "/mcp/fake"), "/mcp/fake")[0] == 200
    assert call(world, token, "/mcp/fake")[0] == 200


def test_a_teams_tool_rate_holds_for_a_token(world):
    token = signed(world, "erin")
    answers = [tool_call(world, token, "fake__echo") for _ in range(3)]
    assert all("result" in a for a in answers[:2]), answers
    assert "error" in answers[2] and "tool" in answers[2]["error"]["message"].lower(), answers[2]


@pytest.mark.parametrize("case", ["audience", "server", "expired", "issuer", "forged", "none", "scope", "not yet"])
def test_a_bad_jwt_is_refused(world, case):
    other = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    now = int(time.time())
    token = {"audience": lambda: signed(world, aud="http://localhost:1/mcp"),
             "server": lambda: signed(world, aud=world.public + "/mcp/other"),  # another server's, sent to fake
             "expired": lambda: signed(world, exp=now - 600, iat=now - 900),
             "issuer": lambda: signed(world, iss="http://127.0.0.1:1"),
             "forged": lambda: signed(world, key=other),
             "none": lambda: unsigned(world),
             "scope": lambda: signed(world, scope="openid email"),
             "not yet": lambda: signed(world, nbf=now + 600)}[case]()
    status, headers, body = call(world, token, "/mcp/fake" if case == "server" else "/mcp")
    if case == "scope":
        assert status == 403 and 'error="insufficient_scope"' in headers["WWW-Authenticate"], body
        return
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"], (status, body)
    assert token not in json.dumps(body)
    said = {"audience": "was not issued for", "server": "was not issued for", "expired": "has expired",
            "issuer": "issuer is not", "forged": "signature does not verify", "none": "algorithm is not accepted",
            "not yet": "not valid yet"}[case]
    assert body["error"]["message"].startswith("Invalid API key or access token: ") and said in body["error"]["message"]


def unsigned(world: SimpleNamespace) -> str:
    """`alg: none`: an attacker's token, spelled by hand (no library makes one)."""
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    claims = {"iss": world.provider.issuer, "sub": "sub-alice", "aud": world.public + "/mcp",
              "exp": int(time.time()) + 300, "scope": "mcp"}
    return f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part(claims)}."


def test_a_disabled_person_or_one_without_a_team_or_unknown_is_refused(world):
    for login, said in (("dave", "disabled"), ("carol", "no team"), ("bob", "not signed in")):
        status, _, body = call(world, signed(world, login))
        assert status == 403 and said in body["error"]["message"], (login, body)
        # MCP's own shape, as /mcp's other errors: a JSON-RPC error (what an MCP client shows), the code in `data`
        assert (body["jsonrpc"], body["id"], body["error"]["code"]) == ("2.0", None, -32600), body
        assert body["error"]["data"]["code"] == "access_denied", body


def test_the_mcp_sdk_shows_a_refused_persons_reason(world):
    """The SDK reads a JSON-RPC error in a 4xx's body, and only that: the OpenAI-shaped body /mcp used to send for
    a person it refuses reached a person as "Server returned an error response", with no reason."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    async def run() -> str:
        async with httpx2.AsyncClient(headers=bearer(signed(world, "bob")), timeout=30) as http:
            async with streamable_http_client(world.public + "/mcp", http_client=http) as streams:
                async with mcp.ClientSession(*streams) as session:
                    try:
                        await session.initialize()
                    except MCPError as exc:
                        return str(exc)
        return "initialized"
    assert "has not signed in to the proxy yet: sign in once at" in asyncio.run(run())


def test_proxy_keys_still_work_beside_tokens(world):
    before = world.provider.introspections()
    assert call(world, ADMIN)[0] == 200
    assert call(world, world.team_key)[0] == 200
    status, _, body = call(world, "sk-proxy-not-a-key")
    assert status == 401 and body["error"]["data"]["code"] == "invalid_api_key"
    assert world.provider.introspections() == before  # a key (or a mistyped one) is never sent to the issuer


# ---------------------------------------------------------------- opaque tokens: introspection
def opaque_token(world: SimpleNamespace, login: str) -> str:
    """An access token for /mcp issued to the proxy's own client (opaque: the provider's choice for it), by the
    authorization code flow with PKCE and RFC 8707's `resource`."""
    client = OAuth2Session(CLIENT_ID, CLIENT_SECRET, scope="openid mcp", code_challenge_method="S256",
                           redirect_uri=world.public + "/ui/auth/callback")
    verifier = secrets.token_urlsafe(48)
    url, state = client.create_authorization_url(world.provider.issuer + "/auth", code_verifier=verifier,
                                                 resource=world.public + "/mcp")
    back = through_provider(requests.Session(), url, world.public, login)
    code = parse_qs(urlsplit(back).query)["code"][0]
    token = client.fetch_token(world.provider.issuer + "/token", code=code, code_verifier=verifier,
                               resource=world.public + "/mcp")
    assert token["access_token"].count(".") != 2, "the provider gave a JWT: the introspection test tests nothing"
    return str(token["access_token"])


def test_an_opaque_token_is_introspected_once_and_a_revoked_one_refused(world):
    token = opaque_token(world, "alice")
    before = world.provider.introspections()
    assert call(world, token)[0] == 200
    assert call(world, token)[0] == 200
    assert world.provider.introspections() == before + 1  # the second call: the cached answer
    revoked = opaque_token(world, "alice")
    requests.post(world.provider.issuer + "/token/revocation", data={"token": revoked},
                  auth=(CLIENT_ID, CLIENT_SECRET), timeout=10).raise_for_status()
    status, headers, _ = call(world, revoked)
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert call(world, "an-opaque-token-nobody-issued")[0] == 401


# ---------------------------------------------------------------- the official SDK's OAuth client
def test_the_mcp_sdks_oauth_client_signs_in_with_no_key(world):
    import httpx2
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    class Memory:
        def __init__(self) -> None:
            self.tokens, self.client = None, None

        async def get_tokens(self):
            return self.tokens

        async def set_tokens(self, tokens):
            self.tokens = tokens

        async def get_client_info(self):
            return self.client

        async def set_client_info(self, info):
            self.client = info

    redirect = "http://127.0.0.1:9/callback"  # never visited: the handler reads the code from the provider's redirect
    got: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        back = await asyncio.to_thread(through_provider, requests.Session(), url, redirect, "alice")
        got.update({k: v[0] for k, v in parse_qs(urlsplit(back).query).items()})

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=got["code"], state=got.get("state"), iss=got.get("iss"))

    storage = Memory()
    oauth = OAuthClientProvider(world.public + "/mcp", OAuthClientMetadata(
        client_name="cot_proxy test", redirect_uris=[redirect], grant_types=["authorization_code"],
        response_types=["code"], token_endpoint_auth_method="none"), storage, redirect_handler, callback_handler)

    async def run():
        async with httpx2.AsyncClient(auth=oauth, timeout=30) as http:
            async with streamable_http_client(world.public + "/mcp", http_client=http) as streams:
                async with mcp.ClientSession(*streams) as session:
                    await session.initialize()
                    names = [t.name for t in (await session.list_tools()).tools]
                    echoed = await session.call_tool("fake__echo", {"text": "hello"})
                    return names, echoed
    try:
        names, echoed = asyncio.run(run())
    except BaseException:
        print(world.provider.log()[-3000:])
        raise
    assert set(names) == {"fake__echo", "fake__whoami"}  # alice's team's globs
    assert not echoed.is_error and "hello" in echoed.content[0].text
    assert storage.tokens is not None and storage.tokens.access_token.count(".") == 2  # the provider's JWT


def test_the_log_says_what_the_issuer_offers_and_holds_no_token(world):
    call(world, signed(world, aud="http://localhost:1/mcp"))  # one refused, at least
    log = Path(world.proxy.home, "proxy.log").read_text(errors="replace")
    assert f"MCP OAuth: MCP clients sign in at {world.provider.issuer} (dynamic client registration)" in log
    assert SENT and not [t for t in SENT if t in log and t != ADMIN]


# ---------------------------------------------------------------- a flood of junk tokens
def test_a_flood_of_distinct_junk_tokens_is_bounded_and_a_good_token_still_passes(world):
    """Each distinct junk token would cost an introspection at the issuer: a worker asks at most BURST at once and
    RATE a second (signin/introspection.py); over that a 503 with Retry-After; a cached token is never held back."""
    from concurrent.futures import ThreadPoolExecutor
    from argoproxy.signin.introspection import BURST, RATE
    good = opaque_token(world, "alice")
    assert call(world, good)[0] == 200
    before, began = world.provider.introspections(), time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        flood = list(pool.map(lambda n: call(world, f"junk-{n}-{secrets.token_hex(8)}")[:2], range(100)))
        goods = list(pool.map(lambda n: call(world, good)[0], range(8)))
    asked, elapsed = world.provider.introspections() - before, time.monotonic() - began
    assert asked <= BURST + RATE * elapsed + 1, (asked, elapsed)
    assert {status for status, _ in flood} <= {401, 503} and goods == [200] * 8
    busy = [headers for status, headers in flood if status == 503]
    assert busy and all(h["Retry-After"] == "1" for h in busy), (asked, elapsed)
    assert poll(lambda: call(world, f"junk-after-{secrets.token_hex(8)}")[0] == 401, timeout=10)  # the budget back
