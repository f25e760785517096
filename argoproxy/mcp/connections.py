"""Each person's connections to `auth: per_user` MCP servers (docs/mcp-credentials.md): their tokens kept sealed
(credential_vault.py) in the key store (credential_store.py), read for a call and refreshed before they expire (an
answer with a new refresh token rotates the one kept; a refresh the server refuses, a replayed old refresh token
among its reasons, is the connection's end: the person connects again). A token is never logged, and no error
here names one."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError

from argoproxy.config.mcp_servers import McpServer
from argoproxy.teamkeys.credential_store import CredentialStore
from argoproxy.mcp.credential_vault import Tokens, Vault

log = logging.getLogger("cot_proxy")

REFRESH_AHEAD = 60.0  # a token this close to its expiry is refreshed before the call
REFRESH_SECONDS = 10.0


class Unavailable(Exception):
    """The person's token could not be read or refreshed now (the store or the authorization server away)."""


class Connections:
    def __init__(self, store: CredentialStore, vault: Callable[[], Vault],
                 client_secret: Callable[[McpServer], str] = lambda server: "") -> None:
        self.store, self._vault, self.client_secret = store, vault, client_secret
        self.opened: Vault | None = None

    @property
    def vault(self) -> Vault:
        if self.opened is None:  # the key file read (made) at the first need
            self.opened = self._vault()
        return self.opened

    def save(self, person: str, server: str, tokens: Tokens) -> None:
        self.store.put(person, server, self.vault.seal(person, server, tokens))

    def tokens(self, person: str, server: str) -> Tokens | None:
        sealed = self.store.get(person, server)
        return self.vault.open(person, server, sealed) if sealed else None

    def forget(self, person: str, server: str | None = None) -> int:
        return self.store.delete(person, server)

    def connected(self, person: str) -> list[str]:
        return self.store.servers(person)

    def token(self, person: str, server: McpServer, now: float | None = None) -> str | None:
        """The person's access token for `server`, refreshed first when it expires within REFRESH_AHEAD; None: not
        connected (or no longer: a refresh refused)."""
        try:
            tokens = self.tokens(person, server.name)
        except Exception as exc:  # noqa: BLE001 - the store's and the key file's errors: said by kind only
            raise Unavailable(f"the store of connections could not be read ({type(exc).__name__})") from None
        if tokens is None:
            return None
        moment = time.time() if now is None else now
        if tokens.expires_at and tokens.expires_at - moment < REFRESH_AHEAD:
            refreshed = self.refresh(person, server, tokens)
            return refreshed.access_token if refreshed is not None else None
        return tokens.access_token

    def refresh(self, person: str, server: McpServer, tokens: Tokens) -> Tokens | None:
        if not tokens.refresh_token or not tokens.token_endpoint:
            self.forget(person, server.name)  # expired, and nothing renews it: connect again
            return None
        client = OAuth2Session(tokens.client_id, self.client_secret(server) or None,
                               token_endpoint_auth_method="client_secret_post" if self.client_secret(server) else "none")
        client.trust_env = False  # no ~/.netrc login in place of the client's
        try:
            answer: Any = client.refresh_token(tokens.token_endpoint, refresh_token=tokens.refresh_token,
                                               resource=server.url, timeout=REFRESH_SECONDS, allow_redirects=False)
        except OAuthError as exc:  # invalid_grant: revoked, expired, or an old refresh token replayed
            log.info("mcp server %s: a person's refresh was refused (%s): they connect again", server.name,
                     str(exc.error)[:60])
            self.forget(person, server.name)
            return None
        except Exception as exc:  # noqa: BLE001 - requests' errors hold the URL: said by kind only
            raise Unavailable(f"refreshing the token failed ({type(exc).__name__})") from None
        finally:
            client.close()
        renewed = renewed_tokens(tokens, answer)
        self.save(person, server.name, renewed)
        return renewed


def renewed_tokens(old: Tokens, answer: Any) -> Tokens:
    """A refresh's answer kept: a new refresh token replaces the old (rotation), else the old one stays."""
    expires_in = answer.get("expires_in")
    expires_at = answer.get("expires_at") or (time.time() + float(expires_in) if expires_in else 0.0)
    return Tokens(str(answer["access_token"]), str(answer.get("refresh_token") or old.refresh_token),
                  float(expires_at), old.token_endpoint, old.issuer, old.client_id,
                  str(answer.get("scope") or old.scope), connected_at=old.connected_at or time.time())
