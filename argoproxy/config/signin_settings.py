"""Sign-in's settings (argoproxy/signin/, docs/signin.md): how OIDC_ISSUER and PUBLIC_URL are read, and the rules
between them that stop start-up with one line naming the key (sign-in half configured, without a key store)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from argoproxy.config.listener import is_loopback
from argoproxy.config.setting_fields import as_duration, as_str, file_text, shown_url

SECRET_FILE_LIMIT = 64 * 1024
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749's scope-token: it goes into a header
# The functions below take the Settings (config/settings.py, which imports this module: typed Any, no circle).


def _plain_url(value: Any, what: str) -> str:
    """An absolute http(s) URL with a host, no user name, password, query or fragment; kept without its final '/'."""
    url = as_str(value).strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError(f"must be an absolute http(s) URL, got {shown_url(url)!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(f"must be an absolute http(s) URL ({what}), got {shown_url(url)!r}")
    if "@" in parts.netloc or parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"must be a plain URL, without a user name, password, query or fragment, got "
                         f"{shown_url(url)!r}")
    return url.rstrip("/")


def as_issuer(value: Any) -> str:
    """OIDC_ISSUER: https, or http on a loopback host only (a provider on this machine, in tests)."""
    url = _plain_url(value, "the provider's issuer, e.g. https://login.example.com/realms/acme")
    if url and urlsplit(url).scheme == "http" and not is_loopback(urlsplit(url).hostname or ""):
        raise ValueError(f"must be https (http only on a loopback address), got {shown_url(url)!r}")
    return url


def as_public_url(value: Any) -> str:
    return _plain_url(value, "the address people reach the proxy at, e.g. https://llm.example.com")


def as_claim_name(value: Any) -> str:
    """A claim's name (OIDC_ARGO_USER_CLAIM): "" for none; no space, at most 128 characters."""
    name = as_str(value).strip()
    if len(name) > 128 or any(ch.isspace() for ch in name):
        raise ValueError(f"must be one claim's name, without spaces (e.g. preferred_username), got {name[:128]!r}")
    return name


SESSION_MOST = 30 * 86400.0  # the longest CONSOLE_SESSION_MAX (the Redis store keeps a session this long at most)


def as_session_max(value: Any) -> float:
    seconds = as_duration(value)
    if seconds > SESSION_MOST:
        raise ValueError(f"must be at most 30d, got {value!r}")
    return seconds


def client_secret(settings: Any) -> str:
    """OIDC_CLIENT_SECRET, else the text of OIDC_CLIENT_SECRET_FILE (its first line), else "" (a public client)."""
    if settings.oidc_client_secret:
        return str(settings.oidc_client_secret)
    if settings.oidc_client_secret_file:
        text = file_text(Path(settings.oidc_client_secret_file).expanduser(), SECRET_FILE_LIMIT, "client secret")
        return (text.strip().splitlines() or [""])[0].strip()
    return ""


def signin_problem(settings: Any) -> str | None:
    """Sign-in configured by halves, or where it cannot work; None when it is off or whole."""
    if not settings.oidc_issuer:
        given = [env for env, value in (("OIDC_CLIENT_ID", settings.oidc_client_id),
                                        ("OIDC_CLIENT_SECRET", settings.oidc_client_secret),
                                        ("OIDC_CLIENT_SECRET_FILE", settings.oidc_client_secret_file),
                                        ("OIDC_ADMIN_GROUPS", settings.oidc_admin_groups),
                                        ("OIDC_DEFAULT_TEAM", settings.oidc_default_team),
                                        ("OIDC_ARGO_USER_CLAIM", settings.oidc_argo_user_claim)) if value]
        return f"OIDC_ISSUER: not set, but {given[0]} is (sign-in needs the provider's issuer)" if given else None
    if not settings.oidc_client_id:
        return "OIDC_CLIENT_ID: not set, but OIDC_ISSUER is (the client id the provider gave the proxy)"
    if not settings.public_url:
        return "PUBLIC_URL: not set, but OIDC_ISSUER is (sign-in's redirect URI is <PUBLIC_URL>/ui/auth/callback)"
    if not settings.enable_auth:
        return ("OIDC_ISSUER: sign-in needs ENABLE_AUTH=true (people's keys and console sessions live in the key "
                "store, KEYS_DB or REDIS_URL)")
    if settings.oidc_client_secret and settings.oidc_client_secret_file:
        return "OIDC_CLIENT_SECRET_FILE: set beside OIDC_CLIENT_SECRET; set one of them"
    if "openid" not in settings.oidc_scopes.split():
        return f"OIDC_SCOPES: must include openid, got {settings.oidc_scopes!r}"
    if not all(SCOPE_TOKEN.fullmatch(s) for s in settings.mcp_oauth_scopes.split()):
        return f"MCP_OAUTH_SCOPES: scopes are words of printable ASCII without quotes or backslashes, got " \
               f"{settings.mcp_oauth_scopes[:100]!r}"
    if settings.console_session_idle > settings.console_session_max:
        return "CONSOLE_SESSION_IDLE: longer than CONSOLE_SESSION_MAX"
    try:
        client_secret(settings)
    except (OSError, ValueError) as exc:
        return f"OIDC_CLIENT_SECRET_FILE: {settings.oidc_client_secret_file} {getattr(exc, 'strerror', None) or exc}"
    return oauth_server_problem(settings)


def oauth_server_problem(settings: Any) -> str | None:
    """MCP_OAUTH_SERVER=proxy where it cannot work: OAuth 2.1 has an authorization server on TLS (or loopback)."""
    if settings.mcp_oauth_server == "proxy" and not tls_or_loopback(settings.public_url):
        return f"MCP_OAUTH_SERVER: proxy needs an https PUBLIC_URL (or a loopback one), got {settings.public_url}"
    return None


def tls_or_loopback(url: str) -> bool:
    """https, or http to localhost or a loopback address (RFC 8252's native apps; the tests)."""
    parts = urlsplit(url)
    return parts.scheme == "https" or is_loopback(parts.hostname or "")
