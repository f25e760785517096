"""Where a per_user MCP server's tokens come from (docs/mcp-credentials.md), as MCP's authorization specification
(2025-11-25) has a client find it: the server's protected resource metadata (RFC 9728: the `resource_metadata` its
401's WWW-Authenticate names, else the well-known URL under its path, then at its origin), its `resource` checked
to be the server; then its first authorization server's metadata (RFC 8414, then OpenID discovery), whose `issuer`
must be the one named (a document fetched from one place that claims another is refused), and whether it takes Client
ID Metadata Documents (`client_id_metadata_document_supported`). Nothing is followed
through a redirect, every document is read up to MAX_DOCUMENT bytes, and errors name hosts, never paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from werkzeug.datastructures import WWWAuthenticate

from argoproxy.mcp.remote_http import origin_of
from argoproxy.mcp.protocol import HANDSHAKE_VERSION

MAX_DOCUMENT = 256 * 1024
SECONDS = 10.0


class DiscoveryFailed(Exception):
    """Why the server's authorization could not be found (said by host)."""


@dataclass(frozen=True)
class AuthServer:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str = ""
    iss_parameter: bool = False  # RFC 9207: it says `iss` on its answers, which is then checked
    scopes: tuple[str, ...] = ()  # the protected resource's scopes_supported
    metadata_documents: bool = False  # it takes a client_id that is the URL of the client's metadata document
    revocation_endpoint: str = ""  # RFC 7009: where a connection's tokens are revoked at its end


def discover(url: str, http: requests.Session) -> AuthServer:
    metadata = resource_metadata(url, http)
    servers = metadata.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
        raise DiscoveryFailed(f"{origin_of(url)} names no authorization server")
    scopes = metadata.get("scopes_supported")
    found = auth_server(servers[0], http)
    return AuthServer(**{**found.__dict__, "scopes": tuple(s for s in scopes if isinstance(s, str))
                         if isinstance(scopes, list) else ()})


def resource_metadata(url: str, http: requests.Session) -> dict[str, Any]:
    places = [where for where in (_named_by_401(url, http), *_well_known(url, "oauth-protected-resource")) if where]
    for place in places:
        document = _document(place, http)
        if document is not None:
            if document.get("resource") not in (url, url.rstrip("/")):  # RFC 9728 §3.3: another resource's
                raise DiscoveryFailed(f"the protected resource metadata at {origin_of(place)} is for another resource")
            return document
    raise DiscoveryFailed(f"{origin_of(url)} has no protected resource metadata (RFC 9728)")


def _named_by_401(url: str, http: requests.Session) -> str:
    """The resource_metadata URL of the server's 401 to an initialize without credentials, or ""."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "cot_proxy", "version": "1"}}}
    try:
        with http.post(url, json=message, headers={"Accept": "application/json, text/event-stream"},
                       timeout=SECONDS, allow_redirects=False, stream=True) as resp:
            said = resp.headers.get("WWW-Authenticate", "") if resp.status_code == 401 else ""
    except requests.RequestException:
        return ""
    named = WWWAuthenticate.from_header(said) if said else None
    found = str(named.parameters.get("resource_metadata") or "") if named is not None else ""
    return found if urlsplit(found).scheme in ("http", "https") else ""


def _well_known(url: str, name: str) -> list[str]:
    """RFC 8414 / 9728's places: the well-known name inserted before the URL's path, then at its root."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    places = [urlunsplit((parts.scheme, parts.netloc, f"/.well-known/{name}{path}", "", ""))] if path else []
    return places + [urlunsplit((parts.scheme, parts.netloc, f"/.well-known/{name}", "", ""))]


def auth_server(issuer: str, http: requests.Session) -> AuthServer:
    if urlsplit(issuer).scheme not in ("http", "https") or urlsplit(issuer).query or urlsplit(issuer).fragment:
        raise DiscoveryFailed("its authorization server's issuer is not an http(s) URL")
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    places = [urlunsplit((parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", "")),
              issuer.rstrip("/") + "/.well-known/openid-configuration"]
    for place in places:
        document = _document(place, http)
        if document is None:
            continue
        if document.get("issuer") != issuer:  # RFC 8414 §3.3: a document for another issuer is refused
            raise DiscoveryFailed(f"the authorization server metadata at {origin_of(place)} names another issuer")
        try:
            return AuthServer(issuer, _endpoint(document, "authorization_endpoint"),
                              _endpoint(document, "token_endpoint"),
                              _endpoint(document, "registration_endpoint", needed=False),
                              document.get("authorization_response_iss_parameter_supported") is True,
                              metadata_documents=document.get("client_id_metadata_document_supported") is True,
                              revocation_endpoint=_endpoint(document, "revocation_endpoint", needed=False))
        except ValueError as exc:
            raise DiscoveryFailed(f"the authorization server {origin_of(issuer)}: {exc}") from None
    raise DiscoveryFailed(f"the authorization server {origin_of(issuer)} has no metadata (RFC 8414, OpenID discovery)")


def _endpoint(document: dict[str, Any], name: str, needed: bool = True) -> str:
    value = document.get(name)
    if not value and not needed:
        return ""
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise ValueError(f"its {name} is not an http(s) URL")
    return value


def _document(url: str, http: requests.Session) -> dict[str, Any] | None:
    """A JSON object at `url` (a 200), or None."""
    try:
        with http.get(url, headers={"Accept": "application/json"}, timeout=SECONDS, allow_redirects=False,
                      stream=True) as resp:
            if resp.status_code != 200:
                return None
            body = resp.raw.read(MAX_DOCUMENT + 1, decode_content=True)
    except requests.RequestException as exc:
        raise DiscoveryFailed(f"{origin_of(url)} could not be reached ({type(exc).__name__})") from None
    if len(body) > MAX_DOCUMENT:
        raise DiscoveryFailed(f"{origin_of(url)} sent a metadata document longer than {MAX_DOCUMENT} bytes")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return None
    return document if isinstance(document, dict) else None
