"""Dynamic client registration (RFC 7591) at POST /oauth/register: Authlib's endpoint, open (MCP clients register
without an admin: the consent page stands between a registered client and a person's tokens), bounded: the
proxy's checks of clients.py first, MOST_CLIENTS registered at once. A client no person has approved yet is kept
PENDING_SECONDS (an approval keeps it CLIENT_SECONDS: pages.py), so a flood of registrations holds the cap only while
it lasts, not for CLIENT_SECONDS."""

from __future__ import annotations

import secrets
from typing import Any, Callable

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError, InvalidRedirectURIError

from argoproxy.authserver.clients import client_of, metadata_problem
from argoproxy.authserver.grant_store import GrantStore
from argoproxy.authserver.server import digest

MOST_CLIENTS = 10_000  # registrations kept at once (each lives CLIENT_SECONDS from its last approval)
PENDING_SECONDS = 3600.0  # a registration's life until a person first approves it (a sign-in takes minutes)


class RegistrationsFull(OAuth2Error):  # type: ignore[misc]
    error = "temporarily_unavailable"
    status_code = 429


class Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    def __init__(self, grants: GrantStore, scope: str, metadata: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self.grants, self.scope, self.metadata = grants, scope, metadata

    def authenticate_token(self, request: Any) -> bool:
        return True  # open registration

    def get_server_metadata(self) -> dict[str, Any]:
        return self.metadata()

    def extract_client_metadata(self, request: Any) -> Any:
        data = request.payload.data
        if not isinstance(data, dict):
            raise InvalidClientMetadataError("The registration must be a JSON object.")
        problem = metadata_problem(data)
        if problem:
            raise (InvalidRedirectURIError if problem.startswith("redirect_uris") else InvalidClientMetadataError)(
                problem + ".")
        return super().extract_client_metadata(request)

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        info: dict[str, Any] = super().generate_client_info(request)
        if request.payload.data.get("token_endpoint_auth_method", "client_secret_basic") == "none":
            info.pop("client_secret", None)
            info.pop("client_secret_expires_at", None)
        return info

    def generate_client_id(self, request: Any) -> str:
        return "mcp-" + secrets.token_urlsafe(24)

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> Any:
        if self.grants.count("client:") >= MOST_CLIENTS:
            raise RegistrationsFull("Too many clients are registered now; try again later.")
        secret = client_info.get("client_secret")
        client = client_of(client_info["client_id"], {**request.payload.data, **client_metadata}, self.scope,
                           digest(secret) if secret else "")
        self.grants.put("client:" + client.client_id, client.to_json(), PENDING_SECONDS)
        return client
