"""Each person's connections to `auth: per_user` MCP servers (docs/mcp-credentials.md): their tokens kept sealed
(credential_vault.py) in the key store (credential_store.py), read for a call and refreshed before they expire (an
answer with a new refresh token rotates the one kept; a refresh the server refuses, a replayed old refresh token
among its reasons, is the connection's end: the person connects again). A person's Disconnect or an admin's
revocation is `end`: the rows deleted, then their tokens revoked and their sessions ended (connection_end.py). A token
is never logged, and no error here names one."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from authlib.integrations.base_client.errors import OAuthError

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import connection_end
from argoproxy.teamkeys.credential_store import CredentialStore
from argoproxy.mcp.credential_vault import Tokens, Vault
from argoproxy.mcp.oauth_http import OAuthClient

log = logging.getLogger("cot_proxy")

REFRESH_AHEAD = 60.0  # a token this close to its expiry is refreshed before the call (half its life, when shorter)
REFRESH_SECONDS = 10.0
LEASE_SECONDS = REFRESH_SECONDS + 5.0  # a refresher that died holds the lease no longer
LEASE_POLL = 0.05  # how often a call waiting for another's refresh looks again
EXPIRY_MARGIN = 1.0  # a token this close to its expiry is not sent while another refreshes it: it waits


class Unavailable(Exception):
    """The person's token could not be read or refreshed now (the store or the authorization server away)."""


class Connections:
    def __init__(self, store: CredentialStore, vault: Callable[[], Vault],
                 client_secret: Callable[[McpServer], str] = lambda server: "",
                 servers: tuple[McpServer, ...] = ()) -> None:
        self.store, self._vault, self.client_secret = store, vault, client_secret
        self.servers = {s.name: s for s in servers}  # a revocation's client secret, by the row's server name
        self.opened: Vault | None = None
        self.revoke: Callable[[Tokens, str], Any] = connection_end.revoke_later
        self.end_sessions: Callable[[str, list[str]], Any] = connection_end.end_sessions

    @property
    def vault(self) -> Vault:
        if self.opened is None:  # the key file read (made) at the first need
            self.opened = self._vault()
        return self.opened

    def save(self, person: str, server: str, tokens: Tokens) -> None:
        sealed = self.vault.seal(person, server, tokens)
        try:
            self.store.put(person, server, sealed)
        except Exception as exc:  # noqa: BLE001 - the store's errors (SQLite busy, Redis away): said by kind only
            raise Unavailable(f"the store of connections could not be written ({type(exc).__name__})") from None

    def tokens(self, person: str, server: str) -> Tokens | None:
        return self._read(person, server)[1]

    def forget(self, person: str, server: str | None = None) -> int:
        return self.store.delete(person, server)

    def end(self, person: str, server: str | None = None) -> int:
        """The person's connection to `server` (None: every one) ended by them or an admin: the rows deleted, then
        their tokens revoked where the authorization server offers it, and the person's sessions ended in this
        replica's supervisor; how many rows there were."""
        names = [server] if server is not None else self.connected(person)
        held = {name: self._held(person, name) for name in names}
        gone = self.forget(person, server)
        for name, tokens in held.items():
            if tokens is not None and tokens.revocation_endpoint:
                known = self.servers.get(name)
                mine = known is not None and known.client_id and known.client_id == tokens.client_id
                self.revoke(tokens, self.client_secret(known) if mine and known is not None else "")
        self.end_sessions(person, names)
        return gone

    def _held(self, person: str, server: str) -> Tokens | None:
        try:
            return self._read(person, server)[1]
        except Unavailable:  # (deleted all the same; only its revocation is lost)
            return None

    def connected(self, person: str) -> list[str]:
        return self.store.servers(person)

    def token(self, person: str, server: McpServer, now: float | None = None) -> str | None:
        """The person's access token for `server`, refreshed first when due (refresh_at); None: not connected (or
        no longer: a refresh refused)."""
        tokens = self._read(person, server.name)[1]
        if tokens is None:
            return None
        moment = time.time() if now is None else now
        if not due(tokens, moment):
            return tokens.access_token
        try:
            return self.renewed(person, server, tokens, moment)
        except Unavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the lease's and the swap's store errors: said by kind only
            raise Unavailable(f"the store of connections could not be reached ({type(exc).__name__})") from None

    def _read(self, person: str, server: str) -> tuple[bytes, Tokens | None]:
        try:
            sealed = self.store.get(person, server)
            return sealed or b"", self.vault.open(person, server, sealed) if sealed else None
        except Exception as exc:  # noqa: BLE001 - the store's and the key file's errors: said by kind only
            raise Unavailable(f"the store of connections could not be read ({type(exc).__name__})") from None

    def renewed(self, person: str, server: McpServer, tokens: Tokens, now: float) -> str | None:
        """The token refreshed by one worker of one replica at a time (the store's lease): the others use the one
        they read while it has not expired, else wait for the refresher's answer (REFRESH_SECONDS at most)."""
        waited = time.monotonic()
        while True:
            lease = self.store.claim(person, server.name, LEASE_SECONDS)
            if lease:
                try:
                    return self._refresh_leased(person, server, now)
                finally:
                    self.store.release(person, server.name, lease)
            if tokens.expires_at - max(now, time.time()) > EXPIRY_MARGIN:  # still good while another refreshes
                return tokens.access_token
            if time.monotonic() - waited > REFRESH_SECONDS:
                raise Unavailable("another worker's refresh of the token did not end")
            time.sleep(LEASE_POLL)
            read = self._read(person, server.name)[1]
            if read is None or not due(read, now):
                return read.access_token if read else None
            tokens = read

    def _refresh_leased(self, person: str, server: McpServer, now: float) -> str | None:
        sealed, tokens = self._read(person, server.name)  # as the last refresher left it
        if tokens is None or not due(tokens, now):
            return tokens.access_token if tokens else None
        refreshed = self.refresh(person, server, tokens, sealed)
        if refreshed is not None:
            return refreshed.access_token
        held = self._read(person, server.name)[1]  # revoked meanwhile: none; connected again: the new connection's
        return held.access_token if held is not None and not due(held, time.time()) else None

    def refresh(self, person: str, server: McpServer, tokens: Tokens, sealed: bytes = b"") -> Tokens | None:
        """A refresh at the authorization server, its answer kept over `sealed` only (the row read: a connection
        revoked or made again meanwhile stays as it is then)."""
        if not tokens.refresh_token or not tokens.token_endpoint:
            self._replace(person, server.name, sealed, None)  # expired, and nothing renews it: connect again
            return None
        client = OAuthClient(tokens.client_id, self.client_secret(server) or None,
                             token_endpoint_auth_method="client_secret_post" if self.client_secret(server) else "none")
        try:
            answer: Any = client.refresh_token(tokens.token_endpoint, refresh_token=tokens.refresh_token,
                                               resource=server.url, timeout=REFRESH_SECONDS, allow_redirects=False)
        except OAuthError as exc:  # invalid_grant: revoked, expired, or an old refresh token replayed
            log.info("mcp server %s: a person's refresh was refused (%s): they connect again", server.name,
                     str(exc.error)[:60])
            self._replace(person, server.name, sealed, None)
            return None
        except Exception as exc:  # noqa: BLE001 - requests' errors hold the URL: said by kind only
            raise Unavailable(f"refreshing the token failed ({type(exc).__name__})") from None
        finally:
            client.close()
        renewed = renewed_tokens(tokens, answer)
        if not self._replace(person, server.name, sealed, self.vault.seal(person, server.name, renewed)):
            return None  # revoked (or connected again) while it was refreshed: not brought back
        return renewed

    def _replace(self, person: str, server: str, sealed: bytes, new: bytes | None) -> bool:
        if not sealed:  # (a caller that read no row: plain put and delete)
            if new is None:
                return self.forget(person, server) > 0
            self.store.put(person, server, new)
            return True
        return self.store.swap(person, server, sealed, new)


def due(tokens: Tokens, now: float) -> bool:
    """Whether the token is refreshed before it is used: from refresh_at (half its life, at most REFRESH_AHEAD
    before it expires), or REFRESH_AHEAD before expiry for a row kept without one."""
    if not tokens.expires_at:
        return False
    return now >= (tokens.refresh_at or tokens.expires_at - REFRESH_AHEAD)


def renewed_tokens(old: Tokens, answer: Any) -> Tokens:
    """A refresh's answer kept: a new refresh token replaces the old (rotation), else the old one stays. It is
    refreshed again after half its life, at most REFRESH_AHEAD before it expires (a token of a minute or less is
    not refreshed at every call)."""
    now, expires_in = time.time(), answer.get("expires_in")
    expires_at = float(answer.get("expires_at") or (now + float(expires_in) if expires_in else 0.0))
    life = max(0.0, float(expires_in) if expires_in else expires_at - now)  # (a negative one: due at once)
    refresh_at = expires_at - min(REFRESH_AHEAD, life / 2) if expires_at else 0.0
    return Tokens(str(answer["access_token"]), str(answer.get("refresh_token") or old.refresh_token),
                  expires_at, old.token_endpoint, old.issuer, old.client_id,
                  str(answer.get("scope") or old.scope), refresh_at, connected_at=old.connected_at or now,
                  revocation_endpoint=old.revocation_endpoint)
