"""The console's one check of who calls `/admin/v1/` and whether a change may be made, the same whichever way the
caller came: `authorize` (401 with no credential, 403 `admin_key_required` for a client or team key) and
`check_change` (a session's change needs its CSRF token in X-CSRF-Token and an Origin of this very site; the admin
key as `Authorization: Bearer` needs neither: a browser never sends it on its own)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from argoproxy.signin.principal import Principal, principal_of
from argoproxy.signin.sessions import csrf_header
from argoproxy.edge.auth import presented_keys, unauthorized
from argoproxy.errors import ProxyError

if TYPE_CHECKING:
    from argoproxy.edge.auth import Auth
    from argoproxy.edge.http_objects import Request

CHANGES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"


def authorize(request: Request, auth: Auth) -> Principal:
    """The caller, or the refusal: auth off (no admin key to ask for: 404), no credential (401), a key that is not
    the admin key (a known client or team key: 403; an unknown one: 401). What the caller may do is their role's
    (roles.py), asked by each resource."""
    if not auth.enabled:
        raise ProxyError(404, "The admin API needs ENABLE_AUTH on: without it there is no admin key to ask for, and "
                              "team keys do nothing.", code="admin_api_off")
    principal = principal_of(request, auth)
    if principal is None:
        raise refusal(request, auth)
    return principal


def refusal(request: Request, auth: Auth) -> ProxyError:
    keys = presented_keys(request.headers, key_headers=auth.spellings.headers)
    if not keys:
        return unauthorized("The admin API needs the admin key (API_KEY_SECRET, API_KEY_FILE or the key printed at "
                            "start-up) as `Authorization: Bearer <admin key>`.", "missing_api_key", invalid=False)
    known = auth.check_key is not None and any(auth.check_key.accepts(k) for k in keys)
    if not known and auth.team_keys is not None:
        try:
            known = auth.team_keys.lookup(keys) is not None
        except ProxyError:  # the key store cannot say now: refused all the same
            known = False
    if known:
        return ProxyError(403, "A client or team key does not open the admin API; the admin key (API_KEY_SECRET) "
                               "does, as `Authorization: Bearer <admin key>`.", code="admin_key_required")
    return unauthorized("Invalid API key.", "invalid_api_key", invalid=True)


def check_change(principal: Principal, request: Request) -> None:
    """A change (POST, PATCH, PUT, DELETE) made with a console session: its CSRF token and this site's Origin."""
    if request.method not in CHANGES or principal.kind != "session":
        return
    origin = request.headers.get("Origin", "").strip().lower().rstrip("/")
    if not origin or origin not in (f"http://{request.host.lower()}", f"https://{request.host.lower()}"):
        raise ProxyError(403, "A change made with a console session must come from the console's own page (its "
                              "Origin header).", code="origin_not_allowed")
    token = csrf_header(request.headers)
    if not principal.csrf or not hmac.compare_digest(token.encode(), principal.csrf.encode()):
        raise ProxyError(403, f"A change made with a console session needs its CSRF token in {CSRF_HEADER}.",
                         code="csrf_token_missing" if not token else "csrf_token_invalid")
