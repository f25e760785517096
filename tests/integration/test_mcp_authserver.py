"""The proxy as MCP clients' authorization server, on the wire (issue 72 item 1; argoproxy/authserver/,
docs/mcp-auth.md): the suite's real OpenID provider started without `resources`, so it offers MCP clients neither
dynamic registration nor Client ID Metadata Documents; the proxy says so at start and takes the part. The official
MCP SDK's OAuth client registers at the proxy, the person signs in through the provider (the console's sign-in, then
back to the authorization request), approves on the consent page, and the client lists and calls tools with the
proxy's token within the person's team's tool globs. Bad inputs are tested in-process (tests/unit/test_authserver.py).
One provider and one proxy (one worker: a second is the replicas' test's) for the module."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from argoproxy.teamkeys import teams_cli
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_mcp_gateway import SERVERS
from tests.integration.test_signin import cli, proxy_on
from tests.oidc_provider import OidcProvider, signin_settings, through_provider
from tests.proxy_process import ProxyProcess, free_port

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (requirements-dev.txt)")

ADMIN = "admin-key-for-mcp-authserver-tests"
REDIRECT = "http://127.0.0.1:9/callback"  # never visited: the browser below stops at it


@pytest.fixture(scope="module")
def world() -> Iterator[SimpleNamespace]:
    port = free_port()
    public = f"http://localhost:{port}"
    provider = OidcProvider(public).start()  # no `resources`: no registration, no resource indicators
    folder = Path(tempfile.mkdtemp(prefix="cot_proxy_mcp_authserver_"))
    db = folder / "keys.db"
    cli(teams_cli, db, "create", "eng", "--groups", "eng", "--tools", "fake__echo,fake__whoami")
    proxy: ProxyProcess | None = None
    try:
        with FakeOpenAI() as fake:
            proxy = proxy_on(port, TARGET_BASE_URL=fake.base_url, ENABLE_AUTH="true", API_KEY_SECRET=ADMIN,
                             KEYS_DB=str(db), MCP_SERVERS=SERVERS, WORKERS="1", **signin_settings(provider, public))
            yield SimpleNamespace(provider=provider, public=public, proxy=proxy)
    finally:
        if proxy is not None:
            proxy.stop()
        provider.stop()
        shutil.rmtree(folder, ignore_errors=True)


def browse(url: str, public: str, login: str, decision: str = "approve") -> str:
    """A person's browser from the client's authorization URL: the proxy sends it to sign in (the provider's
    form), back to the request, the consent page answered; the URL the proxy then sends it to (the client's)."""
    browser = requests.Session()
    answer = browser.get(url, allow_redirects=False)
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui/auth/login", answer.text[:300]
    to_login = browser.get(public + "/ui/auth/login", allow_redirects=False)
    callback = through_provider(browser, to_login.headers["Location"], public, login)
    back = browser.get(callback, allow_redirects=False)
    assert back.status_code == 303 and back.headers["Location"].startswith("/oauth/authorize?"), back.text[:300]
    page = browser.get(urljoin(public, back.headers["Location"]), allow_redirects=False)
    assert page.status_code == 200 and "Allow" in page.text, page.text[:300]
    fields = {unescape(k): unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)}
    fields["decision"] = decision
    answered = browser.post(public + "/oauth/authorize", data=fields, allow_redirects=False)
    assert answered.status_code == 303, answered.text[:300]
    return str(answered.headers["Location"])


def test_the_proxy_says_it_is_the_authorization_server_and_serves_the_metadata(world):
    got = requests.get(world.public + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    assert got["authorization_servers"] == [world.public]
    meta = requests.get(world.public + "/.well-known/oauth-authorization-server", timeout=10)
    assert meta.status_code == 200 and meta.json()["registration_endpoint"] == world.public + "/oauth/register"
    log = Path(world.proxy.home, "proxy.log").read_text(errors="replace")
    assert "the proxy is the authorization server for MCP clients (MCP_OAUTH_SERVER=auto)" in log


def test_a_client_in_another_sites_page_discovers_registers_and_redeems_across_origins(world):
    """The MCP Inspector's way (a page of its own site): each OAuth route it reads answers the preflight and carries
    Access-Control-Allow-Origin: *, never with credentials; the authorization endpoint, a navigation, does not."""
    page = {"Origin": "http://localhost:6274"}
    routes = {"/.well-known/oauth-protected-resource/mcp": "GET", "/.well-known/oauth-authorization-server": "GET",
              "/oauth/jwks": "GET", "/oauth/register": "POST", "/oauth/token": "POST"}
    for path, method in routes.items():
        asked = requests.options(world.public + path, timeout=10, headers={
            **page, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type,mcp-protocol-version"})
        assert asked.status_code == 204 and asked.headers["Access-Control-Allow-Origin"] == "*", (path, asked.text)
        assert method in asked.headers["Access-Control-Allow-Methods"].split(", ")
        assert {"Content-Type", "MCP-Protocol-Version"} <= set(asked.headers["Access-Control-Allow-Headers"].split(", "))
        assert "Access-Control-Allow-Credentials" not in asked.headers
    for path in list(routes)[:3]:
        read = requests.get(world.public + path, headers=page, timeout=10)
        assert read.status_code == 200 and read.headers["Access-Control-Allow-Origin"] == "*", (path, read.text)
    made = requests.post(world.public + "/oauth/register", headers=page, timeout=10, json={
        "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "inspector"})
    assert made.status_code == 201 and made.headers["Access-Control-Allow-Origin"] == "*", made.text
    refused = requests.post(world.public + "/oauth/token", headers=page, timeout=10, data={
        "grant_type": "authorization_code", "code": "no-such-code", "client_id": made.json()["client_id"],
        "redirect_uri": REDIRECT, "code_verifier": "v" * 43})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"  # the page reads why
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    navigation = requests.options(world.public + "/oauth/authorize", headers=page, timeout=10)
    assert navigation.status_code in (403, 405) and "Access-Control-Allow-Origin" not in navigation.headers
    posted = requests.post(world.public + "/oauth/authorize", headers=page, data={"decision": "approve"}, timeout=10)
    assert posted.status_code == 403 and "Access-Control-Allow-Origin" not in posted.headers  # the Origin rule holds


def test_the_mcp_sdks_oauth_client_signs_in_at_the_proxy_and_its_persons_globs_hold(world):
    import httpx2
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
    from mcp.shared.exceptions import MCPError

    class Memory:
        def __init__(self) -> None:
            self.tokens: Any = None
            self.client: Any = None

        async def get_tokens(self) -> Any:
            return self.tokens

        async def set_tokens(self, tokens: Any) -> None:
            self.tokens = tokens

        async def get_client_info(self) -> Any:
            return self.client

        async def set_client_info(self, info: Any) -> None:
            self.client = info

    got: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        back = await asyncio.to_thread(browse, url, world.public, "alice")
        assert back.startswith(REDIRECT), back
        got.update({k: v[0] for k, v in parse_qs(urlsplit(back).query).items()})

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=got["code"], state=got.get("state"), iss=got.get("iss"))

    storage = Memory()
    oauth = OAuthClientProvider(world.public + "/mcp", OAuthClientMetadata(
        client_name="cot_proxy test", redirect_uris=[REDIRECT], grant_types=["authorization_code", "refresh_token"],
        response_types=["code"], token_endpoint_auth_method="none"), storage, redirect_handler, callback_handler)

    async def run() -> Any:
        async with httpx2.AsyncClient(auth=oauth, timeout=30) as http:
            async with streamable_http_client(world.public + "/mcp", http_client=http) as streams:
                async with mcp.ClientSession(*streams) as session:
                    await session.initialize()
                    names = [t.name for t in (await session.list_tools()).tools]
                    echoed = await session.call_tool("fake__echo", {"text": "hello"})
                    try:
                        await session.call_tool("fake__add", {"a": 1, "b": 2})
                        refused = ""
                    except MCPError as exc:
                        refused = str(exc)
                    return names, echoed, refused
    try:
        names, echoed, refused = asyncio.run(run())
    except BaseException:
        print(Path(world.proxy.home, "proxy.log").read_text(errors="replace")[-3000:])
        raise
    assert set(names) == {"fake__echo", "fake__whoami"}  # alice's team's globs
    assert not echoed.is_error and "hello" in echoed.content[0].text
    assert "not allowed" in refused  # outside the globs
    tokens = storage.tokens
    assert storage.client.client_id.startswith("mcp-")  # registered at the proxy, not at the provider
    assert tokens.access_token.count(".") == 2 and tokens.refresh_token
    # the refresh token rotates at the proxy; the old one, replayed, is refused and says so
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "client_id": storage.client.client_id}
    assert requests.post(world.public + "/oauth/token", data=form, timeout=10).status_code == 200
    replayed = requests.post(world.public + "/oauth/token", data=form, timeout=10)
    assert replayed.status_code == 400 and "used already" in replayed.json()["error_description"]
    log = Path(world.proxy.home, "proxy.log").read_text(errors="replace")
    for secret in (got["code"], tokens.access_token, tokens.refresh_token):
        assert secret not in log  # no code or token in the log
