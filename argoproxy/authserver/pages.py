"""The authorization server's routes, own pages (observe/own_pages.py) served without a key when auth is on:

  GET  /.well-known/oauth-authorization-server  its metadata (RFC 8414; also under PUBLIC_URL's path)
  GET  /oauth/authorize   the client, redirect URI, PKCE and resource checked (Authlib); no console session: to
                          /ui/auth/login and back here; else the consent page (which client, which resource)
  POST /oauth/authorize   the person's answer, with the session's CSRF token: a code (or access_denied) sent to the
                          client's redirect URI, with RFC 9207's `iss`
  POST /oauth/token       authorization_code and refresh_token grants (Authlib)
  POST /oauth/register    dynamic client registration (registration.py)
  GET  /oauth/jwks        the public key its access tokens are signed with

Each answers 404 while the proxy is not the authorization server (MCP_OAUTH_SERVER, decided by decision.py)."""

from __future__ import annotations

import base64
import html
import json
import secrets
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError

from argoproxy.authserver.cimd import Documents, DocumentRefused, is_document_url
from argoproxy.authserver.clients import MOST_REGISTRATION, McpClient
from argoproxy.authserver.decision import Decision, server_off
from argoproxy.authserver.grant_store import GrantStore
from argoproxy.authserver.oauth_requests import MOST_FORM, FormRequest, Reply, json_request
from argoproxy.authserver.registration import Registration
from argoproxy.authserver.server import CLIENT_SECONDS, Holder, McpAuthorizationServer
from argoproxy.authserver.signing_key import SigningKey
from argoproxy.edge.classify import AUTHSERVER_KINDS
from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.signin.sessions import csrf_holds
from argoproxy.teamkeys.people_rows import FLOW_SECONDS

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Request
    from argoproxy.signin.sessions import ConsoleSessions, Live

MOST_CLIENT_ID = 2048
PAGE_HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                ("X-Frame-Options", "DENY"),  # no page of another site frames the approve button
                ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")]
KINDS = AUTHSERVER_KINDS


class AuthServerPages:
    def __init__(self, public_url: str, scope: str, decision: Decision, grants: GrantStore, people: Any,
                 sessions: ConsoleSessions, resources: Callable[[], frozenset[str]], inactive_days: float = 0.0,
                 documents: Documents | None = None) -> None:
        self.public_url, self.scope, self.decision, self.grants = public_url, scope, decision, grants
        self.sessions = sessions
        self.key = SigningKey(grants)
        self.documents = documents or Documents(scope)
        self.server = McpAuthorizationServer(public_url, resources, grants, people, self.query_client, self.key,
                                             scope, inactive_days)
        self.server.register_endpoint(Registration(grants, scope, self.metadata))

    def kinds(self) -> dict[str, Callable[[str, str, "Request | None"], Answer]]:
        pages = {"oauth_server_metadata": self.metadata_answer, "oauth_authorize": self.authorize,
                 "oauth_token": self.token, "oauth_register": self.register, "oauth_jwks": self.jwks}
        return {kind: self.served(pages[kind]) for kind in KINDS}

    def served(self, page: Callable[[str, "Request"], Answer]) -> Callable[[str, str, "Request | None"], Answer]:
        def answer(kind: str, query: str, req: Request | None) -> Answer:
            if req is None or not self.decision.serves():
                return server_off(kind, query, req)
            return page(query, req)
        return answer

    # ------------------------------------------------------------ metadata and keys
    def metadata(self) -> dict[str, Any]:
        base = self.public_url
        return {"issuer": base, "authorization_endpoint": f"{base}/oauth/authorize",
                "token_endpoint": f"{base}/oauth/token", "registration_endpoint": f"{base}/oauth/register",
                "jwks_uri": f"{base}/oauth/jwks", "scopes_supported": self.scope.split(),
                "response_types_supported": ["code"], "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"], "authorization_response_iss_parameter_supported": True,
                "client_id_metadata_document_supported": True}

    def metadata_answer(self, query: str, req: Request) -> Answer:
        return Answer.json(self.metadata())

    def jwks(self, query: str, req: Request) -> Answer:
        return Answer.json(self.key.jwks())

    def query_client(self, client_id: str) -> McpClient | None:
        if not isinstance(client_id, str) or len(client_id) > MOST_CLIENT_ID:
            return None
        if is_document_url(client_id):
            try:
                return self.documents.client(client_id)
            except DocumentRefused as exc:
                raise InvalidClientError(description=f"The client's metadata document is refused: {exc}.") from None
        held = self.grants.get("client:" + client_id)
        return McpClient.from_json(held) if held else None

    # ------------------------------------------------------------ /oauth/authorize
    def authorize(self, query: str, req: Request) -> Answer:
        try:
            body = read_form(req) if req.method == "POST" else b""
        except OAuth2Error as error:
            raise ProxyError(400, str(error.description), code="invalid_request") from None
        request = FormRequest(req.method, f"{self.public_url}/oauth/authorize", req.headers,
                              "" if req.method == "POST" else query, body)
        try:
            grant = self.server.get_consent_grant(request)
        except OAuth2Error as error:
            return self.refused(request, error)
        except ValueError:  # Authlib will not quote a value with `"`, `\\` or non-ASCII in an error's description
            raise ProxyError(400, "The authorization request is refused (invalid_request): a parameter holds a quote, "
                                  "a backslash or a character that is not ASCII.", code="invalid_request") from None
        live = self.sessions.of(req.headers)
        if live is None:  # signed in first, then back here (signin/pages.py reads the cookie)
            back = base64.urlsafe_b64encode(f"/oauth/authorize?{query}".encode()).decode()
            cookie = self.sessions.cookies.set(self.sessions.cookies.after, back, FLOW_SECONDS)
            return Answer(b"", 303, [("Location", "/ui/auth/login"), ("Cache-Control", "no-store"),
                                     ("Set-Cookie", cookie)])
        if req.method == "GET":
            return consent_page(grant, live.person.email or live.person.id, live.csrf)
        return self.answered(grant, live, parse_qs(body.decode("utf-8", "replace")))

    def answered(self, grant: Any, live: Live, form: dict[str, list[str]]) -> Answer:
        """The consent page's POST: with the session's CSRF token, a code (approve) or access_denied, sent back."""
        if not csrf_holds(live, form.get("csrf", [""])[0]):
            raise ProxyError(403, "Approving a client needs the session's CSRF token (the consent page's form).",
                             type="permission_error", code="csrf_token_invalid")
        holder = None
        if form.get("decision", [""])[0] == "approve":
            person, client = live.person, grant.request.client
            holder = Holder(person.id, person.subject, grant.request.resource, secrets.token_urlsafe(16))
            if not is_document_url(client.client_id):  # a client in use is kept CLIENT_SECONDS from now
                self.grants.put("client:" + client.client_id, client.to_json(), CLIENT_SECONDS)
        reply: Reply = self.server.create_authorization_response(grant.request, grant_user=holder, grant=grant)
        return reply.answer()

    def refused(self, request: FormRequest, error: OAuth2Error) -> Answer:
        """An authorization request refused: to the client's redirect URI when it was checked, else shown here."""
        if error.redirect_uri:
            reply: Reply = self.server.handle_error_response(request, error)
            self.server.issuer_parameter.add_issuer_parameter(self.server, reply)
            return reply.answer()
        raise ProxyError(400, f"The authorization request is refused ({error.error}): "
                              f"{error.description or 'see RFC 6749'}", code=str(error.error))

    # ------------------------------------------------------------ /oauth/token, /oauth/register
    def token(self, query: str, req: Request) -> Answer:
        try:
            body = read_form(req)
        except OAuth2Error as error:
            return Reply(*error()).answer()
        request = FormRequest("POST", f"{self.public_url}/oauth/token", req.headers, "", body)
        try:
            reply: Reply = self.server.create_token_response(request)
        except ValueError:  # Authlib's decoding of a Basic header that is not UTF-8
            refused = InvalidRequestError("A value of the request (its Basic credentials) is not UTF-8.")
            return Reply(*refused()).answer()
        return reply.answer()

    def register(self, query: str, req: Request) -> Answer:
        raw = req.input.read(MOST_REGISTRATION + 1)
        try:
            if len(raw) > MOST_REGISTRATION:
                raise InvalidClientMetadataError(f"The registration is larger than {MOST_REGISTRATION} bytes.")
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
                raise InvalidClientMetadataError("The registration is no JSON.") from None
        except OAuth2Error as error:
            return Reply(*error()).answer()
        request = json_request("POST", f"{self.public_url}/oauth/register", req.headers, data)
        reply: Reply = self.server.create_endpoint_response("client_registration", request)
        return reply.answer()


def read_form(req: Request) -> bytes:
    """A form body (application/x-www-form-urlencoded), at most MOST_FORM bytes; else OAuth's invalid_request."""
    if "application/x-www-form-urlencoded" not in req.headers.get("Content-Type", "").lower():
        raise InvalidRequestError("Send the parameters as application/x-www-form-urlencoded.")
    body = req.input.read(MOST_FORM + 1)
    if len(body) > MOST_FORM:
        raise InvalidRequestError(f"The form is larger than {MOST_FORM} bytes.")
    return bytes(body)


def shown_host(uri: str) -> str:
    """The redirect URI's host:port as a person should read it: a non-ASCII host in its ASCII (IDNA) form, so that a
    lookalike (a Cyrillic 'а' for 'a') shows as the different name it is."""
    where = urlsplit(uri).netloc
    if where.isascii():
        return where
    host, _, port = where.rpartition(":") if where.rpartition(":")[2].isdigit() else (where, "", "")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = host.encode("ascii", "backslashreplace").decode("ascii")
    return ascii_host + (f":{port}" if port else "")


def consent_page(grant: Any, who: str, csrf: str) -> Answer:
    """Which client, which resource, for whom: approve (a POST with the session's CSRF token) or deny."""
    request, client = grant.request, grant.request.client
    fields = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in request.payload.data.items() if k not in ("csrf", "decision"))
    name = client.name or client.client_id
    where = shown_host(request.payload.redirect_uri)
    page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Allow {html.escape(name[:80])}?</title>"
            "<style>body{font-family:sans-serif;max-width:36em;margin:3em auto}</style></head><body>"
            f"<h1>Allow {html.escape(name)}?</h1>"
            f"<p>The MCP client <b>{html.escape(name)}</b> (client id <code>{html.escape(client.client_id)}</code>, "
            f"returning to <code>{html.escape(where)}</code>) asks to use "
            f"<code>{html.escape(request.resource)}</code> as <b>{html.escape(who)}</b>, with your team's limits.</p>"
            f"<form method=\"post\" action=\"/oauth/authorize\">{fields}"
            f"<input type=\"hidden\" name=\"csrf\" value=\"{html.escape(csrf)}\">"
            "<button name=\"decision\" value=\"approve\">Allow</button> "
            "<button name=\"decision\" value=\"deny\">Deny</button></form></body></html>")
    return Answer(page.encode(), 200, PAGE_HEADERS)
