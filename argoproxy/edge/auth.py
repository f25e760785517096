"""Client API-key auth: which keys are accepted, how a request presents one, and the 401 it gets otherwise.

On when ENABLE_AUTH is true. Accepted keys come from API_KEY_SECRET (comma-separated, several keys allowed
so they can be rotated) and API_KEY_FILE (one a line: the per-user key file of a shared machine). When auth is on and no key is configured, the Gunicorn master generates one key at
start-up (argoproxy/serve/gunicorn_hooks.py), prints it once and hands it to every worker through the process-internal
environment variable GENERATED_KEY_ENV; so all workers accept the same key.

A client sends `Authorization: Bearer KEY` (OpenAI SDKs), `api-key: KEY` (Azure OpenAI clients), or a header
an API door names as its clients' spelling (`KeySpellings`: each door's `key_headers`, read on every route), or on
a door's own routes a query parameter it names (`key_params`). Keys are compared in constant time over their
SHA-256 digests (no early exit on the first differing byte, nor on a differing length), against every configured
key. After a key is accepted, every header a key may come in is removed from the request, and so are the doors'
key query parameters, so no client key goes upstream: the upstream gets the proxy's own credential
(OPENAI_API_KEY...) instead. This module names no door (tests/unit/test_door_names.py).

At /mcp, with sign-in on, a bearer that is neither an accepted key nor a team key is an OAuth access token, checked
by `access_tokens` (argoproxy/signin/access_tokens.py: it becomes a KeyRecord as a person's key would); a call
with no credentials there gets the challenge that names the protected resource metadata (docs/mcp-auth.md).

/ and /health are always open (/ says only that the proxy is up), but /health shows its detail (deployments,
hosts, errors) only to a caller with an accepted key (argoproxy/serve/door.py); /metrics is open only when
METRICS_PUBLIC is set.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence

from argoproxy.edge.classify import AUTHSERVER_KINDS
from argoproxy.errors import ProxyError
from argoproxy.redaction import KEY_PREFIX
from argoproxy.config.listener import GENERATED_KEY_ENV, generate_key, read_key_file
from argoproxy.config.settings import Settings

if TYPE_CHECKING:
    from argoproxy.edge.classify import Route
    from argoproxy.edge.http_objects import Request
    from argoproxy.teamkeys.records import KeyRecord
    from argoproxy.teamkeys.service import TeamKeys

log = logging.getLogger("cot_proxy")

REALM = 'Bearer realm="cot_proxy"'
# /ui is the page's shell: its data needs the admin key; the listener proof is asked before any key is sent; the
# sign-in routes (argoproxy/signin/) are how a person without a key gets a console session; an MCP client reads the
# protected resource metadata (RFC 9728) before it has a token, and signs in at the proxy's authorization server.
OPEN_KINDS = frozenset({"health", "root", "ui", "listener_proof", "signin_login", "signin_callback", "signin_me",
                        "signin_logout", "oauth_resource", *AUTHSERVER_KINDS})
ADMIN_KEY_NEEDED = ("The status page's data needs the admin key: the value of API_KEY_SECRET (or of the file "
                    "API_KEY_FILE names, or the key printed at start-up when neither is set), sent as "
                    "`Authorization: Bearer <admin key>`; in a browser, type it into /ui or open /ui#key=<admin key>.")
# The header besides `Authorization: Bearer` a client key may come in on every route (Azure OpenAI's clients);
# the API doors add their clients' spellings (KeySpellings).
KEY_HEADERS = ("Api-Key",)
_QUERY_SEPARATORS = re.compile(r"[&;]")


class KeyDoor(Protocol):
    """What auth reads of an API door (argoproxy/fronts/front.py: Front)."""
    name: str
    key_headers: tuple[str, ...]
    key_params: frozenset[str]
    key_hint: str


@dataclass(frozen=True)
class KeySpellings:
    """Where client keys come: the headers read on every route, and, by door, the query parameters read on its
    routes and the words its 401 uses."""
    headers: tuple[str, ...] = KEY_HEADERS
    params: Mapping[str, frozenset[str]] = field(default_factory=dict)
    hints: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, doors: Iterable[KeyDoor]) -> "KeySpellings":
        doors = list(doors)
        headers = list(KEY_HEADERS)
        for door in doors:
            headers.extend(h for h in door.key_headers if h not in headers)
        return cls(tuple(headers), {d.name: d.key_params for d in doors if d.key_params},
                   {d.name: d.key_hint for d in doors if d.key_hint})

    @property
    def stripped(self) -> frozenset[str]:
        return frozenset(name.lower() for name in ("Authorization", *self.headers))

    @property
    def all_params(self) -> frozenset[str]:
        return frozenset().union(*self.params.values())

    def hint(self, front: str) -> str:
        """How a request on this door's route may send its key (the 401 of one that sent none)."""
        if front in self.hints:
            return self.hints[front]
        others = ", ".join(f"`{h.lower()}`" for h in self.headers)
        return f"`Authorization: Bearer <key>` ({others} are read too)"


def limited_keys(settings: Settings) -> tuple[str, ...]:
    """The keys key_limits budgets: client keys, never the operator's."""
    return tuple(os.environ[k.key_env] for k in settings.key_limits if os.environ.get(k.key_env))


def configured_keys(settings: Settings) -> tuple[str, ...]:
    """The keys clients may use: API_KEY_SECRET, else the generated one shared by the Gunicorn master."""
    limited = limited_keys(settings)
    from_file = read_key_file(settings.api_key_file) if settings.api_key_file else ()
    if settings.api_key_secret or limited or from_file:  # a key with a budget (key_limits) is an accepted key too
        return tuple(settings.api_key_secret) + from_file + limited
    shared = os.environ.get(GENERATED_KEY_ENV)
    if shared:
        return (shared,)
    # Not started through gunicorn.conf.py (no master hook): this process makes its own key.
    key = generate_key()
    os.environ[GENERATED_KEY_ENV] = key
    announce_key(key, per_process=True)
    return (key,)


def announce_key(key: str, per_process: bool = False) -> None:
    """Print the generated key once, straight to stderr (never through the logging handlers or journals)."""
    scope = f"this process ({os.getpid()}) only" if per_process else "every worker of this run"
    print(f"cot_proxy: ENABLE_AUTH is on and API_KEY_SECRET is empty; generated API key for {scope}: {key}\n"
          "cot_proxy: set API_KEY_SECRET to choose your own key(s).", file=sys.stderr, flush=True)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class AcceptedKeys:
    """Constant-time membership test of a presented key against every accepted key."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("no API keys to accept")
        self._digests = tuple(_digest(k) for k in keys)

    def accepts(self, presented: str) -> bool:
        digest = _digest(presented)
        ok = False
        for known in self._digests:  # no early exit: time does not depend on which key matched
            ok |= hmac.compare_digest(digest, known)
        return ok


def presented_keys(headers: Mapping[str, str], query: str = "", key_headers: Sequence[str] = KEY_HEADERS,
                   params: frozenset[str] = frozenset()) -> list[str]:
    """The keys a request carries: the Bearer token, the key headers and, where the route takes them (a door's
    `params`), key query parameters (any may be absent)."""
    found = []
    authorization = headers.get("Authorization", "")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            found.append(token.strip())
    for name in key_headers:
        api_key = headers.get(name, "").strip()
        if api_key:
            found.append(api_key)
    if query and params:
        from argoproxy.edge.request_models import query_values
        for param in sorted(params):
            found.extend(k for k in query_values(query, param) if k)
    return found


def strip_client_keys(headers: dict[str, str], check: AcceptedKeys, stripped: frozenset[str]) -> dict[str, str]:
    """Remove every header a client key may come in (`stripped`: lower-cased names), whatever the case of its
    name; return those whose value is no accepted key (ARGO's username passthrough reads a username from
    `api-key`), under their title-cased names."""
    withheld = {}
    for name in [n for n in headers if n.lower() in stripped]:
        value = headers.pop(name).strip()
        token = value[7:].strip() if value[:7].lower() == "bearer " else value
        if value and not check.accepts(token):
            withheld[name.title()] = value
    return withheld


def without_key_params(query: str, params: frozenset[str]) -> str:
    """The query string without the parameters a client key may come in (`params`, in any spelling servers
    read)."""
    if "=" not in query or not params:
        return query
    from argoproxy.upstream.url import param_name
    fields = [f for f in _QUERY_SEPARATORS.split(query) if f]
    kept = [f for f in fields if param_name(f) not in params]
    return query if len(kept) == len(fields) else "&".join(kept)


def unauthorized(message: str, code: str, invalid: bool) -> ProxyError:
    challenge = REALM + (', error="invalid_token"' if invalid else "")
    return ProxyError(401, message, code=code, headers={"WWW-Authenticate": challenge})


class Auth:
    """The client-key check the door runs on every route (a no-op when ENABLE_AUTH is off)."""

    def __init__(self, settings: Settings, team_keys: TeamKeys | None = None,
                 spellings: KeySpellings = KeySpellings()) -> None:
        self.enabled = settings.enable_auth
        self.spellings = spellings
        self.stripped = spellings.stripped
        self.key_params = spellings.all_params  # auth on: no client key in any query goes upstream
        self.open_kinds = OPEN_KINDS | ({"metrics"} if settings.metrics_public else set())
        self.check_key = AcceptedKeys(configured_keys(settings)) if self.enabled else None
        # The operator's keys (API_KEY_SECRET, API_KEY_FILE, the generated one): not key_limits' nor team keys.
        admin = [k for k in configured_keys(settings) if k not in limited_keys(settings)] if self.enabled else []
        self.admin_key = AcceptedKeys(admin) if admin else None
        self.team_keys = team_keys  # argoproxy/teamkeys/: keys managed with `cot-proxy keys`
        self.sessions: Any = None  # console sessions (argoproxy/signin/sessions.py) when sign-in is on
        self.access_tokens: Any = None  # access tokens at /mcp (argoproxy/signin/access_tokens.py) when sign-in is on

    def is_admin(self, req: Request | None) -> bool:
        """Did the request's accepted key come from the operator (not a client or team key)? After check()."""
        if not self.enabled:
            return True
        if req is None:
            return False
        admin_key, accepted = self.admin_key, False
        if admin_key is None or req.team_key is not None:
            return False
        for key in req.presented_keys:
            accepted |= admin_key.accepts(key)
        return accepted

    def authenticated(self, req: Request | None) -> bool:
        """Does the request carry an accepted key? (open routes ask: /health shows its detail only then)"""
        if self.check_key is None or req is None:
            return False
        keys = presented_keys(req.headers, key_headers=self.spellings.headers)
        accepted = False
        for key in keys:
            accepted |= self.check_key.accepts(key)
        if not accepted and keys and self.team_keys is not None:  # a team key that is valid now counts too
            try:
                record = self.team_keys.lookup(keys)
            except ProxyError:  # the key store cannot say now: not shown the detail
                return False
            accepted = record is not None and not self.team_keys.refusal(record)
        return accepted

    def check(self, req: Request, route: Route) -> None:
        """Raise a 401 unless the request carries an accepted key (or the route is open); then remove the key
        from the headers that may go upstream (the upstream gets the proxy's own credential)."""
        check_key = self.check_key
        if check_key is None or (route.family == "own" and route.kind in self.open_kinds):
            return
        if route.family == "console":  # the console authorizes its callers itself (console/authorize.py)
            return
        spellings = self.spellings
        params = spellings.params.get(route.front, frozenset())  # a door's own routes also take its key params
        keys = presented_keys(req.headers, req.target.partition("?")[2] if params else "", spellings.headers, params)
        if not keys:
            if route.kind == "ui_data":  # the status page's reader: it is the admin key it needs, not any key
                raise unauthorized(ADMIN_KEY_NEEDED, "missing_api_key", invalid=False)
            if route.family == "mcp" and self.access_tokens is not None:  # where an MCP client finds how to sign in
                raise self.access_tokens.challenge(route.path)
            raise unauthorized(f"Missing API key: send it as {spellings.hint(route.front)}.", "missing_api_key",
                               invalid=False)
        # Every presented key is checked (no short-circuit); one accepted key is enough, and only accepted keys
        # are kept: key_limits counts calls by them and stored Responses belong to them (a junk Bearer beside a
        # valid x-api-key must not name the owner).
        accepted = tuple(key for key in keys if check_key.accepts(key))
        token = None
        if not accepted:  # the owner and the limits then go by the team key's record (or the access token's)
            token = self.token_record(req, keys, route)
            req.team_key = token or self.team_key(keys)
        req.presented_keys = accepted or tuple(keys)
        req.withheld = strip_client_keys(req.headers, check_key, self.stripped)
        if token is not None:  # an access token is the person's credential: never passed on
            req.withheld = {}
        if req.team_key is not None:  # a team key is a client key too: never a username to pass on
            record = req.team_key
            req.withheld = {name: value for name, value in req.withheld.items()
                            if not record.is_key(value.removeprefix("Bearer ").strip())}

    def token_record(self, req: Request, keys: Sequence[str], route: Route) -> KeyRecord | None:
        """At /mcp, with sign-in on, a bearer that is no team key: the access token's record (or its 401/403)."""
        tokens, team_keys = self.access_tokens, self.team_keys
        if tokens is None or route.family != "mcp" or any(key.startswith(KEY_PREFIX) for key in keys):
            return None  # a key the proxy made, mistyped or revoked: never sent to the issuer to introspect
        if team_keys is not None and team_keys.lookup(keys) is not None:
            return None
        record: KeyRecord = tokens.record(req.headers, route.path)
        return record

    def team_key(self, keys: Sequence[str]) -> KeyRecord:
        """The team key among the presented ones (a 401 when none is known, or it is revoked or expired)."""
        team_keys = self.team_keys
        record = team_keys.lookup(keys) if team_keys is not None else None
        if team_keys is None or record is None:
            raise unauthorized("Invalid API key.", "invalid_api_key", invalid=True)
        refusal = team_keys.refusal(record)
        if refusal:
            raise unauthorized(refusal, "invalid_api_key", invalid=True)
        return record
