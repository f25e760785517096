"""A person's OAuth traffic with a remote server's authorization server (mcp/oauth_http.py) goes as the network
says: through HTTP_PROXY / HTTPS_PROXY with NO_PROXY honoured, verified with REQUESTS_CA_BUNDLE, and never with a
~/.netrc login. The strict fake remote answers as the HTTP proxy too: a request through a proxy names the whole
URL."""

from __future__ import annotations

import pytest

from argoproxy.mcp.oauth_http import OAuthClient, OAuthHttp
from tests.fakes.fake_mcp_http import FakeRemote

AS = "http://as.example.invalid"


@pytest.fixture
def proxy(monkeypatch, tmp_path):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ALL_PROXY", "NO_PROXY", "HTTPS_PROXY",
                 "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine as.example.invalid login netrc-user password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with FakeRemote() as running:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{running.port}")
        yield running


def test_discovery_and_the_token_endpoint_go_through_the_environments_proxy_without_netrc(proxy):
    OAuthHttp().get(AS + "/.well-known/oauth-authorization-server", timeout=5)
    client = OAuthClient("client-1", None, token_endpoint_auth_method="none")
    with pytest.raises(Exception):  # (the fake is no token endpoint: the request is what is checked)
        client.refresh_token(AS + "/token", refresh_token="r-1", timeout=5)
    seen = {path: headers for _, path, headers in proxy.seen}
    assert set(seen) == {AS + "/.well-known/oauth-authorization-server", AS + "/token"}
    assert all("Authorization" not in headers for headers in seen.values())  # no netrc login


def test_no_proxy_is_honoured_and_the_ca_bundle_is_taken(proxy, monkeypatch, tmp_path):
    monkeypatch.setenv("NO_PROXY", "as.example.invalid")
    with pytest.raises(Exception):  # straight to a name that does not resolve
        OAuthHttp().get(AS + "/.well-known/oauth-authorization-server", timeout=5)
    assert proxy.seen == []
    bundle = tmp_path / "corporate-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    settings = OAuthHttp().merge_environment_settings("https://as.example.com/token", {}, False, True, None)
    assert settings["verify"] == str(bundle)
