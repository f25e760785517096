"""A real OpenID provider on loopback for the sign-in tests: npm's oidc-provider, run by tests/oidc/provider.mjs,
installed by tools/build_oidc_provider.sh (.ci/run runs it; outside CI a test without it skips and says so). Its
users, passwords and groups are USERS; its signing key is made here, so a test can sign a token as it would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from joserfc.jwk import RSAKey

from tests.polling import poll
from tests.proxy_process import ROOT, free_port

CLIENT_ID, CLIENT_SECRET = "cot-proxy", "test-client-secret"
PASSWORD = "correct horse"
USERS = [  # login, email, verified, groups
    ("alice", "alice@example.com", True, ["eng"]),
    ("bob", "bob@example.com", True, ["proxy-admins", "eng"]),
    ("carol", "carol@example.com", False, []),  # in ADMIN_EMAILS, unverified: no admin
    ("dave", "dave@example.com", True, []),  # in ADMIN_EMAILS, verified: an admin
    ("erin", "erin@example.com", True, ["sales"]),
]
ARGO_USERS = {"alice": "alice.argo", "erin": "erin@example.com"}  # an `argo_user` claim (erin's: no ARGO username)


def installed() -> Path | None:
    """The node_modules holding oidc-provider (the newest pin installed), else None."""
    cache = Path(os.environ.get("COT_PROXY_CACHE", Path.home() / ".cache" / "cot_proxy")) / "oidc"
    found = sorted(cache.glob("oidc-provider-*/lib/node_modules/oidc-provider/package.json"))
    return found[-1].parent.parent if found else None


class OidcProvider:
    def __init__(self, *public_urls: str, resources: dict[str, str] | None = None,
                 opaque_clients: tuple[str, ...] = (), access_token_ttl: int = 600,
                 refresh_tokens: bool = False) -> None:
        """A provider whose one client may return to each of `public_urls` (the proxies' PUBLIC_URLs); with
        `resources` ({url: scope}), also an authorization server for them: dynamic registration, resource
        indicators (JWT access tokens living `access_token_ttl` seconds, opaque ones for `opaque_clients`),
        introspection and revocation; with `refresh_tokens`, a refresh token (rotated at each use) to every client
        registered for the grant."""
        modules, node = installed(), shutil.which("node")
        if modules is None or node is None:
            why = "npm's oidc-provider is not installed (tools/build_oidc_provider.sh)" if node else "node is missing"
            if os.environ.get("CI"):
                pytest.fail(f"{why}: CI installs it")
            pytest.skip(f"{why}; the sign-in tests skip outside CI")
        self.modules, self.node = modules, node
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
        self.dir = Path(tempfile.mkdtemp(prefix="cot_proxy_oidc_"))
        config = {"port": self.port, "issuer": self.issuer, "jwks": {"keys": [self.key.as_dict(private=True)]},
                  "client": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                             "redirect_uris": [url + "/ui/auth/callback" for url in public_urls],
                             "post_logout_redirect_uris": [url + "/ui" for url in public_urls]},
                  "users": [{"sub": f"sub-{login}", "login": login, "password": PASSWORD, "email": email,
                             "email_verified": verified, "name": login.title(), "groups": groups,
                             **({"argo_user": ARGO_USERS[login]} if login in ARGO_USERS else {})}
                            for login, email, verified, groups in USERS],
                  "resources": resources or {}, "opaque_clients": list(opaque_clients),
                  "access_token_ttl": access_token_ttl, "refresh_tokens": refresh_tokens}
        (self.dir / "config.json").write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "OidcProvider":
        log = open(self.dir / "provider.log", "wb")
        self.proc = subprocess.Popen([self.node, str(ROOT / "tests" / "oidc" / "provider.mjs"),
                                      str(self.dir / "config.json")], env={**os.environ, "NODE_PATH": str(self.modules)},
                                     stdout=log, stderr=subprocess.STDOUT)
        if not poll(self._serving, timeout=20):
            raise RuntimeError(f"the OpenID provider did not start: {self.log()[-2000:]}")
        return self

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the OpenID provider exited: {self.log()[-2000:]}")
        try:
            return requests.get(self.issuer + "/.well-known/openid-configuration", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def introspections(self) -> int:
        """How many introspection requests the provider has answered."""
        return int(requests.get(self.issuer + "/test/introspections", timeout=5).json()["count"])

    def grants(self) -> dict[str, int]:
        """How many refresh_token grants the provider gave ("refreshed") and refused ("refused")."""
        return {k: int(v) for k, v in requests.get(self.issuer + "/test/grants", timeout=5).json().items()}

    def log(self) -> str:
        return (self.dir / "provider.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def to_callback(browser: requests.Session, proxy: str, login: str, password: str = PASSWORD) -> str:
    """A browser's way from the proxy's /ui/auth/login through the provider's login form: the callback URL the
    provider sends it back to (not yet visited)."""
    answer = browser.get(proxy + "/ui/auth/login", allow_redirects=False)
    assert answer.status_code == 303, answer.text
    return through_provider(browser, answer.headers["Location"], proxy, login, password)


def through_provider(browser: requests.Session, url: str, proxy: str, login: str, password: str = PASSWORD) -> str:
    """Follow the provider from its authorization URL: its form filled in, then its redirects to the proxy."""
    trail = []
    for _ in range(10):
        if url.startswith(proxy):
            return url
        trail.append(url[:200])
        answer = browser.get(url, allow_redirects=False)
        if answer.status_code == 200 and "<form" in answer.text:  # the provider's login form
            answer = browser.post(urljoin(url, f"{answer.url.split('?')[0].rstrip('/')}/login"),
                                  data={"login": login, "password": password}, allow_redirects=False)
        assert answer.status_code in (302, 303), (answer.status_code, answer.text[:500])
        url = urljoin(url, answer.headers["Location"])
    raise AssertionError(f"the provider never sent the browser back: {trail}")


def sign_in(browser: requests.Session, proxy: str, login: str) -> requests.Response:
    """A whole sign-in: the callback's answer (303 to /ui, its Set-Cookie)."""
    return browser.get(to_callback(browser, proxy, login), allow_redirects=False)


def signin_settings(provider: OidcProvider, public_url: str, **more: Any) -> dict[str, str]:
    return {"OIDC_ISSUER": provider.issuer, "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "PUBLIC_URL": public_url, "OIDC_ADMIN_GROUPS": "proxy-admins",
            "ADMIN_EMAILS": "carol@example.com,dave@example.com", **{k: str(v) for k, v in more.items()}}
