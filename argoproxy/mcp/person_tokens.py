"""Whose credentials a call to a per-person server carries (docs/mcp-credentials.md): the person the call's key
belongs to (a key a person owns, or the token r1's OAuth turns into one: KeyRecord.owner), and their token for that
server (connections.py). The door says whose the request is (`caller`, set for the request); the link asks here
for each call to a server with `auth: per_user` what to add to it: the person and their token, or the error the
client gets instead (never another person's token, never the proxy's).

A person not connected is sent to the console page that connects them, as their client can be (`page_by`, set for
the request): a 2026-07-28 request that declared URL-mode elicitation gets an input_required result asking it to
open the page (its requestState, CONNECT_STATE, makes the client's next request the call made anew: done once the
person connected, asked again otherwise, refused when the client declined); a 2025-11-25 session that declared it
gets URLElicitationRequiredError (-32042); any other client a JSON-RPC error (-32600) whose message names the page."""

from __future__ import annotations

import os
import secrets
from contextvars import ContextVar
from typing import Any, Callable

from argoproxy.config.mcp_servers import McpServer, McpServers
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.connections import Connections, Unavailable
from argoproxy.mcp.token_exchange import ExchangeRefused, TokenExchange

URL_ELICITATION_REQUIRED = -32042  # 2025-11-25: the client opens the URL, then calls again
CONNECT_STATE = "cot_proxy-connect-"  # + the server's name: the requestState of a 2026-07-28 connect round
BY_ROUND, BY_ELICITATION = "input_required", "url"  # how a client is sent to a page (page_by); "": not

caller: ContextVar[str] = ContextVar("mcp_caller", default="")  # the person id of the request being answered
# The provider's token the request presented (a token /mcp accepted for a person, not a proxy key): what
# `auth: token_exchange` exchanges; "" otherwise.
provider_token: ContextVar[str] = ContextVar("mcp_provider_token", default="")


def no_page() -> str:
    return ""


# How the request's client takes a page to open (BY_ROUND, BY_ELICITATION or ""): asked only when a person is not
# connected (a 2025-11-25 session's record is read then).
page_by: ContextVar[Callable[[], str]] = ContextVar("mcp_page_by", default=no_page)


class PersonTokens:
    def __init__(self, servers: McpServers, connections: Connections, public_url: str,
                 exchange: TokenExchange | None = None) -> None:
        self.servers = {s.name: s for s in servers if s.per_person}
        self.connections, self.public_url, self.exchange = connections, public_url.rstrip("/"), exchange

    def __bool__(self) -> bool:
        return bool(self.servers)

    def connect_url(self, name: str) -> str:
        return f"{self.public_url}/ui/connect/{name}"

    def fields(self, name: str, message: dict[str, Any]) -> dict[str, Any]:
        """What the call op to server `name` carries ({} for a server of the proxy's own credentials), or
        {"refused": ERROR}: the JSON-RPC error the client gets instead."""
        server = self.servers.get(name)
        if server is None:
            return {}
        person = caller.get()
        if not person:
            return self._refused(message, jsonrpc.INVALID_REQUEST,
                                 f"The MCP server {name} is reached with each person's own credentials: call it with "
                                 "a key a person owns, or signed in.")
        if server.auth == "token_exchange":
            return self.exchanged(server, person, message)
        try:
            token = self.connections.token(person, server)
        except Unavailable as exc:
            return self._refused(message, jsonrpc.SERVER_UNAVAILABLE, f"The MCP server {name}: {exc}.")
        if token is None:  # (a session this replica's supervisor still holds for them, from before, ends)
            self.connections.end_sessions(person, [name])
            return self.not_connected(server, message)
        return {"person": person, "token": token}

    def exchanged(self, server: McpServer, person: str, message: dict[str, Any]) -> dict[str, Any]:
        subject = provider_token.get()
        if not subject or self.exchange is None:
            return self._refused(message, jsonrpc.INVALID_REQUEST,
                                 f"The MCP server {server.name} takes your sign-in token exchanged for its own: call "
                                 "it signed in at /mcp with the provider's token, not with a proxy key.")
        try:
            return {"person": person, "token": self.exchange.token(person, server, subject)}
        except Unavailable as exc:
            return self._refused(message, jsonrpc.SERVER_UNAVAILABLE, f"The MCP server {server.name}: {exc}.")
        except ExchangeRefused as exc:
            return self._refused(message, jsonrpc.INVALID_REQUEST, f"The MCP server {server.name}: the provider "
                                 f"would not exchange your token for one of the server's ({exc}).")

    def not_connected(self, server: McpServer, message: dict[str, Any]) -> dict[str, Any]:
        url = self.connect_url(server.name)
        text = f"Connect your account to the MCP server {server.name} first: open {url}, then call again."
        how = page_by.get()()
        if how == BY_ROUND:
            asked = {"method": "elicitation/create", "params": {"mode": "url", "message": text, "url": url}}
            return {"refused": jsonrpc.result(message["id"], {  # a call: a request, with its id
                "resultType": "input_required", "inputRequests": {f"connect-{server.name}": asked},
                "requestState": CONNECT_STATE + server.name})}
        if how == BY_ELICITATION:
            return {"refused": jsonrpc.error(message.get("id"), URL_ELICITATION_REQUIRED, text, data={"elicitations": [
                {"mode": "url", "elicitationId": secrets.token_urlsafe(12), "url": url, "message": text}]})}
        return {"refused": jsonrpc.error(message.get("id"), jsonrpc.INVALID_REQUEST, text, data={"url": url})}

    @staticmethod
    def _refused(message: dict[str, Any], code: int, text: str) -> dict[str, Any]:
        return {"refused": jsonrpc.error(message.get("id"), code, text)}


def connect_round(params: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """A 2026-07-28 request made again after a connect round (its requestState is CONNECT_STATE's): its params
    without the round's fields, and whether its client may be sent to the page again (False once it declined or
    cancelled: the error naming the page then). None: not such a request."""
    state = params.get("requestState")
    if not isinstance(state, str) or not state.startswith(CONNECT_STATE):
        return None
    responses = params.get("inputResponses")
    answers = responses.values() if isinstance(responses, dict) else ()
    taken = all(isinstance(a, dict) and a.get("action") == "accept" for a in answers)
    return {k: v for k, v in params.items() if k not in ("requestState", "inputResponses")}, taken


def person_tokens(settings: Any) -> PersonTokens:
    """The worker's PersonTokens: connections kept in its key store, sealed under CREDENTIALS_KEY_FILE."""
    from argoproxy.teamkeys.credential_store import credential_store
    from argoproxy.mcp.credential_vault import vault_at
    store = credential_store(settings.keys_db, settings.redis_url)
    connections = Connections(store, lambda: vault_at(settings.credentials_key_file),
                              client_secret=lambda server: os.environ.get(server.client_secret_env, "").strip()
                              if server.client_secret_env else "", servers=tuple(settings.mcp_servers))
    exchange = None
    if any(s.auth == "token_exchange" for s in settings.mcp_servers):
        from argoproxy.config.signin_settings import client_secret
        exchange = TokenExchange(settings.oidc_issuer, settings.oidc_client_id, lambda: client_secret(settings))
    return PersonTokens(settings.mcp_servers, connections, settings.public_url, exchange)
