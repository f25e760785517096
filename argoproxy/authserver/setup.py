"""The authorization server for these settings (sign-in on, `mcp_servers` set, MCP_OAUTH_SERVER not `issuer`): its
routes' answers, and /mcp told of it (its metadata names PUBLIC_URL as the authorization server while the proxy is
one; access tokens signed with the proxy's key are accepted there)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from argoproxy.authserver.decision import Decision, server_off
from argoproxy.authserver.grant_store import grants_of
from argoproxy.authserver.pages import KINDS, AuthServerPages
from argoproxy.config.signin_settings import tls_or_loopback

log = logging.getLogger("cot_proxy")


def authorization_server(settings: Any, signin: Any, store: Any, access_tokens: Any) -> dict[str, Callable[..., Any]]:
    """The answers of the routes KINDS (404 each while the proxy is no authorization server)."""
    if access_tokens is None or settings.mcp_oauth_server == "issuer":
        return dict.fromkeys(KINDS, server_off)
    if not tls_or_loopback(settings.public_url):  # auto (proxy stops start-up so: config/signin_settings.py)
        log.warning("MCP OAuth: PUBLIC_URL is not https, so the proxy cannot be the authorization server for MCP "
                    "clients (OAuth 2.1 asks TLS of one)")
        return dict.fromkeys(KINDS, server_off)
    decision = Decision(settings.mcp_oauth_server, signin.provider)
    resource = access_tokens.resource
    pages = AuthServerPages(settings.public_url, settings.mcp_oauth_scopes, decision, grants_of(store), store,
                            signin.sessions, resource.resources, settings.oidc_inactive_days)
    resource.proxy_issues = decision.serves
    access_tokens.own_keys = pages.key.key_set
    return pages.kinds()

