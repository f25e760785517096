"""The MCP clients the proxy knows as an authorization server: those registered by dynamic client registration
(RFC 7591, bounded: the document's size, redirect URIs https or http loopback only, MOST_CLIENTS at once) and those
named by a Client ID Metadata Document (client_id an https URL, fetched by cimd.py). What a client may do is
Authlib's ClientMixin: exact redirect URIs, the code flow only, its token endpoint auth method."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin

MOST_REGISTRATION = 16 * 1024  # a registration (or a metadata document) larger than this is refused
MOST_REDIRECT_URIS = 10
MOST_URI = 2048
MOST_NAME = 200
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token")


@dataclass(frozen=True)
class McpClient(ClientMixin):  # type: ignore[misc]
    client_id: str
    redirect_uris: tuple[str, ...]
    auth_method: str = "none"
    grant_types: tuple[str, ...] = ("authorization_code",)
    name: str = ""
    secret_digest: str = ""  # SHA-256 of its secret (none for a public client)
    scope: str = ""  # MCP_OAUTH_SCOPES: what every token of it carries

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # the redirect_uri is always sent (OAuth 2.1), and matched exactly

    def get_allowed_scope(self, scope: str | None) -> str:
        return self.scope  # every token names the resource's scopes: a token without them is no use at /mcp

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        given = hashlib.sha256(client_secret.encode("utf-8", "surrogatepass")).hexdigest()
        return bool(self.secret_digest) and hmac.compare_digest(given, self.secret_digest)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "McpClient":
        fields = json.loads(text)
        return cls(**{**fields, "redirect_uris": tuple(fields["redirect_uris"]),
                      "grant_types": tuple(fields["grant_types"])})


def redirect_problem(uri: Any) -> str:
    """Why a redirect URI is refused ("": it is fine): https, or http to a loopback host (RFC 8252's native
    apps); no fragment, no user info, at most MOST_URI characters."""
    if not isinstance(uri, str) or not uri or len(uri) > MOST_URI:
        return "a redirect URI is a string of at most 2048 characters"
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError:
        return "a redirect URI must be a URL"
    if parts.fragment or "#" in uri or parts.username is not None or not host:
        return "a redirect URI has a host and no fragment or user info"
    if parts.scheme == "https":
        return ""
    if parts.scheme == "http" and loopback(host):
        return ""
    return "a redirect URI must be https, or http to a loopback address (127.0.0.1, [::1], localhost)"


def loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metadata_problem(metadata: Mapping[str, Any]) -> str:
    """What the proxy refuses in a client's metadata ("": none) beyond RFC 7591's own checks."""
    uris = metadata.get("redirect_uris")
    if not isinstance(uris, list) or not 1 <= len(uris) <= MOST_REDIRECT_URIS:
        return f"redirect_uris: a list of 1 to {MOST_REDIRECT_URIS} URIs is required"
    for uri in uris:
        problem = redirect_problem(uri)
        if problem:
            return f"redirect_uris: {problem}"
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        return f"token_endpoint_auth_method: one of {', '.join(AUTH_METHODS)}"
    if not set(metadata.get("grant_types") or ["authorization_code"]) <= set(GRANT_TYPES):
        return f"grant_types: only {', '.join(GRANT_TYPES)}"
    if not set(metadata.get("response_types") or ["code"]) <= {"code"}:
        return "response_types: only code"
    name = metadata.get("client_name", "")
    if not isinstance(name, str) or len(name) > MOST_NAME:
        return f"client_name: a string of at most {MOST_NAME} characters"
    return ""


def client_of(client_id: str, metadata: Mapping[str, Any], scope: str, secret_digest: str = "") -> McpClient:
    """The client that checked metadata describes."""
    grants = tuple(g for g in GRANT_TYPES if g in (metadata.get("grant_types") or ["authorization_code"]))
    return McpClient(client_id, tuple(metadata["redirect_uris"]),
                  str(metadata.get("token_endpoint_auth_method", "client_secret_basic")), grants,
                  str(metadata.get("client_name", ""))[:MOST_NAME], secret_digest, scope)
