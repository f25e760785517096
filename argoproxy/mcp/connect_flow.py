"""A person connects their account to a per_user MCP server from the console (docs/mcp-credentials.md):

  GET    /ui/connect/NAME           signed in: the server's authorization found (oauth_discovery.py), a client
                                    (in MCP's order: the entry's client_id; else, where its authorization server
                                    takes them, the URL of the proxy's Client ID Metadata Document; else one
                                    registered by RFC 7591 where offered), a state and PKCE verifier kept sealed in
                                    the key store (single use, FLOW_SECONDS) and bound to this person; then to its
                                    authorization endpoint, with `resource` (RFC 8707)
  GET    /ui/connect/NAME/callback  the flow taken once, by the same person; RFC 9207's `iss` checked where the
                                    server says it sends one (and whenever sent); the code exchanged (Authlib's
                                    OAuth2Session, the PKCE verifier, `resource`, no redirect followed); the tokens
                                    kept sealed (connections.py); then to /ui
  DELETE /ui/connect/NAME           the connection ended (connections.py's `end`: its tokens revoked, its sessions
                                    ended); a session's change, held by whoever mounts these pages to the
                                    console's one rule (serve/mcp_mount.py: console/authorize.check_change, its
                                    CSRF token and this site's Origin) before it reaches here
  GET    /ui/connect/client-metadata.json  no sign-in: the proxy's Client ID Metadata Document (the OAuth draft
                                    MCP 2025-11-25 names; its URL is the client_id, under an https PUBLIC_URL only:
                                    no server name holds a dot, so it is no server's page)

Who the person is: their console session (`who`, serve/mcp_mount.py's reading of sign-in's sessions). No token, code
or verifier is ever in an answer or a log line."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, quote

import requests

from argoproxy.config.mcp_servers import McpServer, McpServers
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.mcp.connections import Connections, Unavailable, renewed_tokens
from argoproxy.mcp.credential_vault import Tokens
from argoproxy.mcp.oauth_discovery import AuthServer, DiscoveryFailed, discover
from argoproxy.mcp.oauth_http import OAuthClient, OAuthHttp
from argoproxy.mcp.remote_http import origin_of

log = logging.getLogger("cot_proxy")

FLOW_SECONDS = 600.0
FLOW = "flow:"  # + the state's digest: where a flow is kept, in the connections' store (credential_store.FLOW)
MOST_PARAM = 2048
NO_STORE = {"Cache-Control": "no-store"}
CLIENT_METADATA = "client-metadata.json"  # /ui/connect/<this>: the proxy's client metadata document
METADATA_SECONDS = 300  # how long an authorization server may keep it (a server added shows within this)
Who = Callable[[Mapping[str, str]], "str | None"]  # request headers -> the signed-in person's id


class ConnectPages:
    def __init__(self, servers: McpServers, connections: Connections, public_url: str, who: Who,
                 client_secret: Callable[[McpServer], str] = lambda server: "",
                 clock: Callable[[], float] = time.time) -> None:
        self.servers = {s.name: s for s in servers if s.auth == "per_user"}
        self.connections, self.public_url, self.who = connections, public_url.rstrip("/"), who
        self.client_secret, self.clock = client_secret, clock
        self.registered: dict[str, str] = {}  # issuer -> the client id its registration endpoint gave this worker
        self.http = OAuthHttp()  # the environment's proxies and CA bundle, never ~/.netrc (oauth_http.py)

    def answer(self, name: str, callback: bool, method: str, query: str, headers: Mapping[str, str]) -> Answer:
        if name == CLIENT_METADATA and not callback and self.metadata_url:
            return self.client_metadata(method)
        server = self.servers.get(name)
        if server is None:
            raise ProxyError(404, f"No MCP server named {name[:40]!r} takes a person's connection.",
                             code="unknown_route")
        signed = self.who(headers)
        if signed is None:
            if method == "GET" and not callback:
                return redirect("/ui/auth/login")
            raise ProxyError(401, "Not signed in: /ui/auth/login signs in.", type="authentication_error",
                             code="not_signed_in")
        person = signed
        if method == "DELETE" and not callback:
            gone = self.connections.end(person, name)
            said = {"server": name, "disconnected": bool(gone)}  # as the console's route answers it
            return Answer(json.dumps(said).encode(), 200, NO_STORE, content_type="application/json")
        if method != "GET":
            raise ProxyError(405, "GET starts a connection; DELETE ends it.", code="method_not_allowed")
        return self.finish(server, person, query) if callback else self.start(server, person)

    def redirect_uri(self, name: str) -> str:
        return f"{self.public_url}/ui/connect/{quote(name)}/callback"

    @property
    def metadata_url(self) -> str:
        """The proxy's client_id as a Client ID Metadata Document's URL; "" when PUBLIC_URL is not https (the
        draft asks an https URL with a path)."""
        return f"{self.public_url}/ui/connect/{CLIENT_METADATA}" if self.public_url.startswith("https://") else ""

    def client_metadata(self, method: str) -> Answer:
        """The document an authorization server fetches for the client_id: a public client (PKCE, no secret)
        returning to each per_user server's callback."""
        if method != "GET":
            raise ProxyError(405, "The client metadata document is read with GET.", code="method_not_allowed")
        document = {"client_id": self.metadata_url, "client_name": "cot_proxy", "client_uri": self.public_url,
                    "redirect_uris": [self.redirect_uri(name) for name in self.servers],
                    "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                    "token_endpoint_auth_method": "none"}
        return Answer(json.dumps(document).encode(), 200, {"Cache-Control": f"public, max-age={METADATA_SECONDS}"},
                      content_type="application/json")

    # ------------------------------------------------------------ GET /ui/connect/NAME
    def start(self, server: McpServer, person: str) -> Answer:
        try:
            found = discover(server.url, self.http)
            client_id = server.client_id or (found.metadata_documents and self.metadata_url) \
                or self.register(server, found)
        except DiscoveryFailed as exc:
            raise ProxyError(502, f"Connecting to the MCP server {server.name} failed: {exc}.",
                             code="mcp_connect_failed", type="bad_gateway") from None
        state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        scopes = " ".join(server.scopes or found.scopes)
        client = OAuthClient(client_id, redirect_uri=self.redirect_uri(server.name), scope=scopes or None,
                             code_challenge_method="S256")
        url, _ = client.create_authorization_url(found.authorization_endpoint, state=state, code_verifier=verifier,
                                                 resource=server.url)
        flow = {"person": person, "server": server.name, "verifier": verifier, "client_id": client_id,
                "at": self.clock(), **found.__dict__, "scopes": list(found.scopes)}
        self.connections.store.put(FLOW + digest(state), server.name,
                                   self.connections.vault.seal_value(FLOW + digest(state), server.name, flow),
                                   ttl=FLOW_SECONDS)
        return redirect(url)

    def register(self, server: McpServer, found: AuthServer) -> str:
        """A client registered by RFC 7591 (a public client: PKCE, no secret), once per authorization server: with
        every per_user server's callback, as the one registration serves each server behind that authorization
        server."""
        known = self.registered.get(found.issuer)
        if known:
            return known
        if not found.registration_endpoint:
            raise DiscoveryFailed(f"the authorization server {origin_of(found.issuer)} offers no registration: give "
                                  f"mcp_servers.{server.name}.client_id")
        body = {"client_name": "cot_proxy", "redirect_uris": [self.redirect_uri(name) for name in self.servers],
                "application_type": "web",  # MCP 2026-07-28 asks it: a browser returns to a remote host
                "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                "token_endpoint_auth_method": "none"}
        said = self.registration(found.registration_endpoint, body)
        if said == "invalid_client_metadata":  # perhaps the refresh_token grant it does not issue: asked without it
            said = self.registration(found.registration_endpoint, {**body, "grant_types": ["authorization_code"]})
        if not isinstance(said, dict) or not isinstance(said.get("client_id"), str):
            raise DiscoveryFailed(f"registering a client at {origin_of(found.issuer)} failed")
        self.registered[found.issuer] = said["client_id"]
        return str(said["client_id"])

    def registration(self, endpoint: str, body: dict[str, Any]) -> Any:
        """The registration endpoint's answer: the client's metadata (a 200 or 201), else the error code it said
        (RFC 7591 §3.2.2), else None."""
        try:
            with self.http.post(endpoint, json=body, timeout=10.0, allow_redirects=False) as resp:
                said = resp.json() if resp.status_code in (200, 201, 400) else None
                status = resp.status_code
        except (requests.RequestException, ValueError, RecursionError):  # (JSON nested past the recursion limit)
            return None
        if status == 400:
            return str(said.get("error", ""))[:40] if isinstance(said, dict) else None
        return said

    # ------------------------------------------------------------ GET /ui/connect/NAME/callback
    def finish(self, server: McpServer, person: str, query: str) -> Answer:
        params = {k: v[0] for k, v in parse_qs(query[:4 * MOST_PARAM]).items()}
        state, code = params.get("state", ""), params.get("code", "")
        if not state or len(state) > MOST_PARAM or len(code) > MOST_PARAM:
            raise failed(server, "the callback has no state")
        flow = self.take(state, server.name)
        if flow is None or flow.get("person") != person or flow.get("server") != server.name:
            raise failed(server, "this connection is unknown, used already, too old, or another person's")
        if "error" in params or not code:
            raise failed(server, "its authorization server refused it")
        iss = params.get("iss")
        if (flow["iss_parameter"] or iss is not None) and iss != flow["issuer"]:  # RFC 9207: a mix-up is refused
            raise failed(server, "the answer came from another authorization server than the one asked (iss)")
        secret = self.client_secret(server) if server.client_id else ""
        client = OAuthClient(flow["client_id"], secret or None, redirect_uri=self.redirect_uri(server.name),
                             token_endpoint_auth_method="client_secret_post" if secret else "none")
        try:
            answer: Any = client.fetch_token(flow["token_endpoint"], code=code, code_verifier=flow["verifier"],
                                             resource=server.url, timeout=10.0, allow_redirects=False)
        except Exception as exc:  # noqa: BLE001 - Authlib's and requests' errors: said by kind (they may hold URLs)
            log.info("mcp server %s: a person's code exchange failed (%s)", server.name, type(exc).__name__)
            raise failed(server, "its authorization server did not give tokens for the code") from None
        finally:
            client.close()
        if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            raise failed(server, "its authorization server did not give tokens for the code")
        self.keep(person, server, flow, answer)
        log.info("mcp server %s: a person connected", server.name)
        return redirect("/ui")

    def keep(self, person: str, server: McpServer, flow: dict[str, Any], answer: Any) -> None:
        """The code's tokens kept as the person's connection (a store that cannot: 503, never a 500 of our own)."""
        base = Tokens("", "", 0.0, flow["token_endpoint"], flow["issuer"], flow["client_id"],
                      revocation_endpoint=str(flow.get("revocation_endpoint") or ""))
        try:
            self.connections.save(person, server.name, renewed_tokens(base, answer))
        except Unavailable as exc:
            raise ProxyError(503, f"Connecting to the MCP server {server.name} failed: {exc}. Start again at "
                                  f"/ui/connect/{server.name}.", type="server_error", code="mcp_store_unavailable",
                             headers={"Retry-After": "1"}) from None

    def take(self, state: str, name: str) -> dict[str, Any] | None:
        place = FLOW + digest(state)
        sealed = self.connections.store.get(place, name)
        if sealed is None or not self.connections.store.delete(place, name):  # taken once
            return None
        flow = self.connections.vault.open_value(place, name, sealed)
        if not isinstance(flow, dict) or self.clock() - float(flow.get("at", 0)) > FLOW_SECONDS:
            return None
        return flow


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def failed(server: McpServer, why: str) -> ProxyError:
    return ProxyError(400, f"Connecting to the MCP server {server.name} failed: {why}. Start again at "
                      f"/ui/connect/{server.name}.", code="mcp_connect_failed")


def redirect(location: str) -> Answer:
    return Answer(b"", 303, [("Location", location), *NO_STORE.items()])
