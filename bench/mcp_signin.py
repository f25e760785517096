"""The credentials bench/mcp_latency.py measures /mcp with, auth on: a team key of the proxy's own, and when the
suite's OpenID provider is installed (npm's oidc-provider: tests/oidc_provider.py, tools/build_oidc_provider.sh)
access tokens for `<PUBLIC_URL>/mcp` from it, as MCP clients get them: a JWT (a client registered dynamically,
the authorization code flow with PKCE and RFC 8707's `resource`) and opaque ones (the proxy's own client, which
the provider gives opaque tokens: the proxy introspects them). The person, alice, signed in to the proxy once and
is in the team `eng`, whose tool globs allow the bench's server."""

from __future__ import annotations

import contextlib
import io
import secrets
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session

from targets import Proxy, free_port

ADMIN = "admin-key-for-the-mcp-bench"
NATIVE_REDIRECT = "http://127.0.0.1:9/callback"  # never visited: the code is read from the provider's redirect


def provider_missing() -> str:
    """Why the provider cannot run here ("" when it can)."""
    from tests.oidc_provider import installed
    if shutil.which("node") is None:
        return "node is missing"
    return "" if installed() is not None else "npm's oidc-provider is not installed (tools/build_oidc_provider.sh)"


def cli(main: Any, *argv: str, db: Path) -> str:
    """`teams ...` or `keys ...` on the bench's store, in this process: what it printed."""
    settings = SimpleNamespace(redis_url="", keys_db=str(db), enable_auth=True, oidc_inactive_days=90.0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(list(argv), lambda flags: settings)
    if status != 0:
        raise RuntimeError(f"{' '.join(argv)} failed")
    return out.getvalue().strip()


class SignedIn:
    """The proxy with auth on (and sign-in, when the provider runs), its key, and the person's tokens."""

    def __init__(self, upstream_port: int, servers: str, tools: str) -> None:
        from argoproxy.teamkeys import teams_cli
        from argoproxy.teamkeys.cli import main as keys_main
        self.folder = Path(tempfile.mkdtemp(prefix="cot_proxy_mcp_bench_auth_"))
        db = self.folder / "keys.db"
        cli(teams_cli.main, "create", "eng", "--groups", "eng", "--tools", tools, db=db)
        self.key = cli(keys_main, "--keys-db", str(db), "create", "bench", "--team", "eng", db=db)
        self.missing = provider_missing()
        self.provider: Any = None
        self.proxy: Proxy | None = None
        self.jwt, self.opaque = "", ""
        try:
            self.start(upstream_port, servers, db)
        except BaseException:
            self.close()
            raise

    def start(self, upstream_port: int, servers: str, db: Path) -> None:
        port = free_port()
        self.public = f"http://localhost:{port}"
        settings = {"ENABLE_AUTH": "true", "API_KEY_SECRET": ADMIN, "KEYS_DB": str(db), "MCP_SERVERS": servers}
        if not self.missing:
            from tests.oidc_provider import CLIENT_ID, OidcProvider, signin_settings
            self.provider = OidcProvider(self.public, resources={self.public + "/mcp": "mcp"},
                                         opaque_clients=(CLIENT_ID,))
            self.provider.start()
            settings.update(signin_settings(self.provider, self.public))
        self.proxy = Proxy.start(upstream_port, "cot_proxy, auth on", port=port, **settings)
        if self.provider is not None:
            self.browser = requests.Session()  # the person's browser: signed in at the provider once
            self.sign_in()
            self.jwt, self.opaque = self.jwt_token(), self.opaque_token()

    def sign_in(self) -> None:
        from tests.oidc_provider import sign_in
        answer = sign_in(self.browser, self.public, "alice")
        if answer.status_code != 303:
            raise RuntimeError(f"alice's sign-in at the proxy answered {answer.status_code}")

    def jwt_token(self) -> str:
        """A JWT for /mcp, as an MCP client gets one: registered dynamically (RFC 7591), a public client."""
        issuer = self.provider.issuer
        registered = requests.post(issuer + "/reg", json={
            "redirect_uris": [NATIVE_REDIRECT], "token_endpoint_auth_method": "none", "application_type": "native",
            "grant_types": ["authorization_code"], "response_types": ["code"]}, timeout=10)
        registered.raise_for_status()
        client = OAuth2Session(registered.json()["client_id"], None, scope="mcp", code_challenge_method="S256",
                               redirect_uri=NATIVE_REDIRECT, token_endpoint_auth_method="none")
        token = self.code_flow(client, NATIVE_REDIRECT.rsplit("/", 1)[0])
        if token.count(".") != 2:
            raise RuntimeError("the provider gave no JWT to a dynamically registered client")
        return token

    def opaque_token(self) -> str:
        """An opaque token for /mcp: the proxy's own client's, which the provider makes opaque."""
        from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET
        client = OAuth2Session(CLIENT_ID, CLIENT_SECRET, scope="openid mcp", code_challenge_method="S256",
                               redirect_uri=self.public + "/ui/auth/callback")
        token = self.code_flow(client, self.public)
        if token.count(".") == 2:
            raise RuntimeError("the provider gave a JWT to the proxy's client: no introspection would be measured")
        return token

    def code_flow(self, client: OAuth2Session, back_to: str) -> str:
        from tests.oidc_provider import through_provider
        issuer, verifier = self.provider.issuer, secrets.token_urlsafe(48)
        url, _ = client.create_authorization_url(issuer + "/auth", code_verifier=verifier,
                                                 resource=self.public + "/mcp")
        back = through_provider(self.browser, url, back_to, "alice")
        code = parse_qs(urlsplit(back).query)["code"][0]
        token = client.fetch_token(issuer + "/token", code=code, code_verifier=verifier, resource=self.public + "/mcp")
        return str(token["access_token"])

    def introspections(self) -> int:
        return int(self.provider.introspections()) if self.provider is not None else 0

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.provider is not None:
            self.provider.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
