"""The HTTP sessions of a person's OAuth traffic with a remote server's authorization server (discovery, the connect
flow's code exchange, refreshes, token exchange, revocation): the environment's proxies (HTTP_PROXY, HTTPS_PROXY,
NO_PROXY) and CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), as requests takes them, so that a corporate network
reaches the server's authorization server as it reaches the server itself (remote_server.py); but never
~/.netrc's login in place of the client's own, which requests' trust_env would add. requests' own extension point
(Session.merge_environment_settings) decides it per request, NO_PROXY per host."""

from __future__ import annotations

import os
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session


class _Environment:
    """The environment's proxies and CA bundle for each request of a session whose trust_env is off."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)  # type: ignore[misc]
        settings["proxies"] = {**requests.utils.get_environ_proxies(url), **(settings.get("proxies") or {})}
        if settings.get("verify") is True:
            settings["verify"] = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        return settings


class OAuthHttp(_Environment, requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # (no netrc; the proxies and CA bundle come from _Environment)


class OAuthClient(_Environment, OAuth2Session):  # type: ignore[misc]  # (Authlib ships no types)
    """Authlib's OAuth2Session, reaching out as OAuthHttp does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trust_env = False
