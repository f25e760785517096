"""`auth: token_exchange` (docs/mcp-credentials.md): the person's own token from the provider (OIDC_ISSUER), the one
they presented at /mcp, exchanged there by RFC 8693 for a token whose audience is the server (`resource` and
`audience`: its URL). Only the exchanged token reaches the server: never the person's original, never the proxy's,
and a proxy key is never sent to the provider (a call made with one is refused: it has no provider token).

The proxy authenticates as its sign-in client (OIDC_CLIENT_ID and its secret). Exchanged tokens are kept in memory
per person, server and original token until a minute before they expire (at most MAX_KEPT)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import requests

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp.connections import REFRESH_AHEAD, Unavailable
from argoproxy.mcp.oauth_discovery import DiscoveryFailed, auth_server
from argoproxy.mcp.oauth_http import OAuthClient, OAuthHttp

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
MAX_KEPT = 4096
SECONDS = 10.0


class ExchangeRefused(Exception):
    """The provider would not exchange the person's token (said without it)."""


class TokenExchange:
    def __init__(self, issuer: str, client_id: str, client_secret: Callable[[], str],
                 clock: Callable[[], float] = time.time) -> None:
        self.issuer, self.client_id, self.client_secret, self.clock = issuer, client_id, client_secret, clock
        self.http = OAuthHttp()
        self.endpoint = ""  # the issuer's token endpoint, discovered at the first exchange
        self.lock = threading.Lock()
        self.kept: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()

    def token(self, person: str, server: McpServer, subject: str) -> str:
        place = (person, server.name, hashlib.sha256(subject.encode()).hexdigest())
        with self.lock:
            held = self.kept.get(place)
        if held is not None and (not held[1] or held[1] - self.clock() > REFRESH_AHEAD):
            return held[0]
        token, expires_at = self._exchange(server, subject)
        with self.lock:
            self.kept[place] = (token, expires_at)
            while len(self.kept) > MAX_KEPT:
                self.kept.popitem(last=False)
        return token

    def _exchange(self, server: McpServer, subject: str) -> tuple[str, float]:
        if not self.endpoint:
            try:
                self.endpoint = auth_server(self.issuer, self.http).token_endpoint
            except DiscoveryFailed as exc:
                raise Unavailable(str(exc)) from None
        secret = self.client_secret()
        client = OAuthClient(self.client_id, secret or None,
                             token_endpoint_auth_method="client_secret_basic" if secret else "none")
        scope = " ".join(server.scopes) or None
        try:
            answer: Any = client.fetch_token(self.endpoint, grant_type=GRANT, subject_token=subject,
                                             subject_token_type=ACCESS_TOKEN, requested_token_type=ACCESS_TOKEN,
                                             resource=server.url, audience=server.url, scope=scope, timeout=SECONDS,
                                             allow_redirects=False)
        except requests.RequestException as exc:
            raise Unavailable(f"the provider could not be reached ({type(exc).__name__})") from None
        except Exception as exc:  # noqa: BLE001 - Authlib's OAuthError: its code only (its text may echo the token)
            raise ExchangeRefused(str(getattr(exc, "error", "") or type(exc).__name__)[:60]) from None
        finally:
            client.close()
        if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str) \
                or answer["access_token"] == subject:  # the original back: never passed on
            raise ExchangeRefused("no exchanged token")
        expires_in = answer.get("expires_in")
        return answer["access_token"], (self.clock() + float(expires_in)) if expires_in else 0.0
