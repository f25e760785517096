"""The sign-in routes, own pages (observe/own_pages.py) served without a key when auth is on:

  GET  /ui/auth/login     a state, nonce and PKCE verifier kept in the key store (single use, FLOW_SECONDS), bound
                          to this browser by a cookie; then to the provider's authorization endpoint
  GET  /ui/auth/callback  the flow taken once (a replayed or another browser's callback fails), the code exchanged,
                          the ID token verified, the person recorded, a console session begun; then to /ui
  GET  /ui/auth/me        who the session is, their teams and its CSRF token (the console reads it)
  POST /ui/logout         with the session's CSRF token (form field `csrf` or header X-CSRF-Token): the session
                          ends; then the provider's end_session_endpoint, when it has one
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, urlencode

from argoproxy.edge.http_objects import Answer
from argoproxy.errors import ProxyError
from argoproxy.people.argo_user import claimed
from argoproxy.people.membership import AdminRule, inactive, person_of_claims, teams_led, teams_of
from argoproxy.signin.sessions import Cookies, ConsoleSessions, csrf_header, csrf_holds, digest
from argoproxy.signin.tokens import Client, refused, verified_claims
from argoproxy.teamkeys.people_rows import FLOW_SECONDS, SignInFlow

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.edge.http_objects import Request
    from argoproxy.signin.provider import OpenIdProvider

MOST_FORM = 4096  # a logout form is one token
MOST_PARAM = 2048  # a code or a state longer than this is no provider's
NO_STORE = {"Cache-Control": "no-store"}
ERROR_CODE = re.compile(r"[a-z_]{1,64}")  # OAuth's and OpenID's error codes (access_denied, login_required, ...)
BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{40,64}")  # secrets.token_urlsafe(32)'s alphabet and length, with room
log = logging.getLogger("cot_proxy")


class SignInPages:
    def __init__(self, settings: Settings, store: Any, provider: OpenIdProvider, client: Client, sessions: ConsoleSessions,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.store, self.provider, self.client, self.sessions = settings, store, provider, client, sessions
        self.admins = AdminRule.of(settings.oidc_admin_groups, settings.admin_emails)
        self.cookies: Cookies = sessions.cookies
        self.clock = clock

    def kinds(self) -> dict[str, Callable[[str, str, "Request | None"], Answer]]:
        """The own pages' answers by route kind (observe/own_pages.py: OwnPages.kinds)."""
        return {"signin_login": self.login, "signin_callback": self.callback, "signin_me": self.me,
                "signin_logout": self.logout}

    # ---------------------------------------------------------------- GET /ui/auth/login
    def login(self, kind: str, query: str, req: Request | None) -> Answer:
        endpoint = self.provider.document()["authorization_endpoint"]
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        # the browser's cookie kept when it has one: two sign-ins begun in two tabs both finish
        held = self.cookies.read(req.headers, self.cookies.flow) if req is not None else ""
        browser = held if BROWSER_ID.fullmatch(held) else secrets.token_urlsafe(32)  # one we made, or a new one
        self.store.save_flow(digest(state), SignInFlow(digest(browser), nonce, verifier, self.clock()))
        url = self.client.authorization_url(endpoint, state, nonce, verifier)
        return redirect(url, self.cookies.set(self.cookies.flow, browser, FLOW_SECONDS))

    # ---------------------------------------------------------------- GET /ui/auth/callback
    def callback(self, kind: str, query: str, req: Request | None) -> Answer:
        params = {name: values[0] for name, values in parse_qs(query[:4 * MOST_PARAM]).items()}
        if "error" in params:  # named only when it is an OAuth error code: the query is anyone's text
            said = params["error"]
            raise refused(f"the provider said {said!r}" if ERROR_CODE.fullmatch(said) else "the provider refused it")
        state, code = params.get("state", ""), params.get("code", "")
        if not state or not code or len(state) > MOST_PARAM or len(code) > MOST_PARAM:
            raise ProxyError(400, "A sign-in callback needs the provider's `code` and `state`.", code="signin_failed")
        now = self.clock()
        flow = self.store.take_flow(digest(state), now)  # taken once: a replay finds nothing
        browser = self.cookies.read(req.headers if req is not None else {}, self.cookies.flow)
        if flow is None:
            raise refused("this sign-in is unknown, used already or too old")
        if not browser or not secrets.compare_digest(digest(browser), flow.browser):
            # the same browser at another address than PUBLIC_URL has other cookies: say where to begin
            raise refused(f"it was started in another browser, or at another address than PUBLIC_URL "
                          f"({self.settings.public_url})", f"{self.settings.public_url}/ui/auth/login")
        try:
            tokens = self.client.exchange(self.provider.document()["token_endpoint"], code, flow.verifier)
            claims = verified_claims(tokens["id_token"], lambda fresh: self.provider.keys(fresh),
                                     self.provider.document()["issuer"], self.settings.oidc_client_id, flow.nonce, now)
        except ProxyError as err:
            if err.status >= 500:
                self.provider.forget()  # the provider may have moved: discovery is read again
            raise
        person = self.signed_in(claims, now)
        cookie = self.sessions.begin(person, tokens["id_token"])
        return redirect(after_signin(self.cookies.read(req.headers if req is not None else {}, self.cookies.after)),
                        cookie, self.cookies.clear(self.cookies.flow), self.cookies.clear(self.cookies.after))

    def signed_in(self, claims: dict[str, Any], now: float) -> Any:
        """The person recorded (admin by rule, or as an admin made them); refused when disabled, or when not seen
        for OIDC_INACTIVE_DAYS (then disabled, as an admin would)."""
        said = person_of_claims(claims, self.settings.oidc_issuer, self.settings.oidc_groups_claim, now)
        if not said.subject:
            raise refused("its ID token names no subject")
        said = replace(said, argo_user=self.argo_user(claims, said.id))
        known = self.store.person(said.id)
        if known is not None and not known.disabled and inactive(known, now, self.settings.oidc_inactive_days):
            self.store.set_person_disabled(known.id, True, now)
            known = self.store.person(said.id)
        if known is not None and known.disabled:
            raise ProxyError(403, "Your account on this proxy is disabled; an admin can enable it "
                             "(`cot-proxy people enable`).", type="permission_error", code="person_disabled")
        return self.store.signed_in(said, self.admins.admits(said))

    def argo_user(self, claims: dict[str, Any], person: str) -> str:
        """Their ARGO username from OIDC_ARGO_USER_CLAIM ("": none given, or one ARGO would not take: then said
        in the log, and the one they had is kept; the sign-in goes on)."""
        try:
            return claimed(claims, self.settings.oidc_argo_user_claim)
        except ValueError as exc:
            log.warning("sign-in of %s: %s; their ARGO username is left as it was", person, exc)
            return ""

    # ---------------------------------------------------------------- GET /ui/auth/me
    def me(self, kind: str, query: str, req: Request | None) -> Answer:
        live = self.sessions.of(req.headers) if req is not None else None
        if live is None:
            raise ProxyError(401, "Not signed in: /ui/auth/login signs in.", type="authentication_error",
                             code="not_signed_in")
        p, teams = live.person, self.store.teams()
        answer = Answer.json({"id": p.id, "email": p.email, "name": p.name, "admin": p.admin, "groups": list(p.groups),
                              "teams": list(teams_of(p, teams, self.settings.oidc_default_team)),
                              "leads": sorted(teams_led(p, teams)), "csrf": live.csrf})
        answer.headers["Cache-Control"] = "no-store"
        return answer

    # ---------------------------------------------------------------- POST /ui/logout
    def logout(self, kind: str, query: str, req: Request | None) -> Answer:
        live = self.sessions.of(req.headers) if req is not None else None
        if req is None or live is None:
            raise ProxyError(401, "Not signed in.", type="authentication_error", code="not_signed_in")
        if not csrf_holds(live, presented_csrf(req)):
            raise ProxyError(403, "Signing out needs the session's CSRF token (form field `csrf` or header "
                             "X-CSRF-Token).", type="permission_error", code="csrf_token_invalid")
        cleared = self.sessions.end(live)
        if "application/json" in req.headers.get("Accept", ""):  # the console's fetch (its CSP allows no form):
            answer = Answer.json({"location": self.after_logout(live.id_token)})  # it goes there itself
            answer.headers["Cache-Control"] = NO_STORE["Cache-Control"]
            answer.headers.add_header("Set-Cookie", cleared)
            return answer
        return redirect(self.after_logout(live.id_token), cleared)

    def after_logout(self, id_token: str) -> str:
        """The provider's end-session endpoint with id_token_hint and post_logout_redirect_uri, else /ui."""
        try:
            endpoint = self.provider.endpoint("end_session_endpoint")
        except ProxyError:  # the provider cannot be read now: the session has ended all the same
            endpoint = None
        if not endpoint:
            return "/ui"
        query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": self.settings.public_url + "/ui",
                           "client_id": self.settings.oidc_client_id})
        return endpoint + ("&" if "?" in endpoint else "?") + query


def presented_csrf(req: Request) -> str:
    header = csrf_header(req.headers)
    if header:
        return header
    if "application/x-www-form-urlencoded" not in req.headers.get("Content-Type", "").lower():
        return ""
    body = req.input.read(MOST_FORM + 1)
    if len(body) > MOST_FORM:
        return ""
    values = parse_qs(body.decode("utf-8", "replace")).get("csrf", [""])
    return values[0]


def after_signin(held: str) -> str:
    """Where the browser goes once signed in: the MCP client's authorization request it came from (the cookie
    authserver/pages.py set), else the console. Only that path of this proxy: never another site."""
    try:
        back = base64.urlsafe_b64decode(held.encode("ascii")).decode("utf-8") if held else ""
    except (ValueError, UnicodeError):
        back = ""
    plain = back.isascii() and back.isprintable() and " " not in back  # nothing that could end a header
    return back if plain and back.startswith("/oauth/authorize?") and len(back) <= 8192 else "/ui"


def redirect(location: str, *cookies: str) -> Answer:
    headers = [("Location", location), *NO_STORE.items(), *(("Set-Cookie", c) for c in cookies)]
    return Answer(b"", 303, headers)  # 303: after the logout's POST too, the browser follows with a GET


def signin_pages(settings: Settings, store: Any) -> SignInPages:
    """Sign-in for these settings (OIDC_ISSUER set), its sessions in `store` (the key store)."""
    from argoproxy.config.signin_settings import client_secret
    from argoproxy.signin.provider import OpenIdProvider
    cookies = Cookies(secure=settings.public_url.startswith("https://"))
    sessions = ConsoleSessions(store, cookies, settings.console_session_idle, settings.console_session_max,
                        settings.oidc_inactive_days)
    client = Client(settings.oidc_client_id, client_secret(settings), settings.oidc_scopes,
                    settings.public_url + "/ui/auth/callback")
    return SignInPages(settings, store, OpenIdProvider(settings.oidc_issuer), client, sessions)

