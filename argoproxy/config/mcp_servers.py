"""The `mcp_servers` setting (MCP_SERVERS: the same as JSON): the MCP servers the proxy puts behind `/mcp`
(docs/mcp.md). Each entry is a name and either a command the proxy runs (stdio) or a URL it reaches (remote):

    mcp_servers:
      git:  {command: uvx, args: [mcp-server-git, --repository, /srv/repo]}
      time: {command: mcp-server-time, env: {TZ: UTC}}
      docs: {url: https://mcp.example.com/mcp, bearer_token_env: DOCS_MCP_TOKEN}
      github: {url: https://mcp.example.com/github, auth: per_user, client_id: cot-proxy, scopes: [repo]}

A remote server's `auth` says whose credentials reach it: unset, the proxy's own (`headers`, `bearer_token_env`);
`per_user`, each person's, connected once from the console (docs/mcp-credentials.md); `token_exchange`, the
person's sign-in token exchanged (RFC 8693) at OIDC_ISSUER for one with the server's audience.

A name is what prefixes its tools (`git__status`) and its path (`/mcp/git`): lower-case letters, digits, `-` and
single `_`, at most 32 characters, never `__` (the separator) nor a `_` at the end, and two names may not differ only in case or in
`-` versus `_`. Checked at start-up: a bad entry stops it with one line naming `mcp_servers.NAME`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping
from urllib.parse import urlsplit

from argoproxy.config.json_setting import json_setting

# A `_` is always followed by a letter, digit or `-`: a name ending in `_` (`a_`) would show its tools as `a___echo`,
# which a key's glob `a__*` for the server `a` matches.
NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]|_(?=[a-z0-9-])){0,31}")
SEPARATOR = "__"  # server__tool
STDIO_KEYS = frozenset({"command", "args", "env", "per_session"})
REMOTE_KEYS = frozenset({"url", "headers", "bearer_token_env", "transport", "auth", "client_id", "client_secret_env",
                         "scopes"})
AUTHS = ("per_user", "token_exchange")  # whose credentials reach a remote server; unset: the proxy's own
SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,200}")  # RFC 6749's scope-token
TRANSPORTS = ("streamable-http", "sse")  # a remote server's; unset: Streamable HTTP, else the older HTTP+SSE
CALL_KEYS = frozenset({"timeout", "max_result_bytes", "price_per_call"})  # either kind: each tool call's bounds and price
MAX_RESULT_BYTES = 4 * 1024 * 1024  # the default bound on a tool call's answer
MOST_RESULT_BYTES = 16 * 1024 * 1024  # the longest message a stdio server may write (mcp/stdio_server.py's MAX_LINE)
MOST_PRICE = Decimal(1_000_000)  # US dollars per call
NANOS_PER_DOLLAR = 10**9  # as argoproxy/spend/units.py counts money
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers a remote server's entry may not set: the transport's own (the proxy writes them per request).
TRANSPORT_HEADERS = frozenset({"content-type", "accept", "content-length", "host", "mcp-session-id",
                               "mcp-protocol-version", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class McpServer:
    name: str
    command: str = ""  # stdio: the program, found on PATH
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # stdio: its whole environment besides PATH, LANG and a private HOME
    per_session: bool = False  # stdio: a process per client session instead of one shared
    url: str = ""  # remote: Streamable HTTP endpoint
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # remote: sent with every request, never shown to clients
    bearer_token_env: str = ""  # remote: the environment variable holding its bearer token
    transport: str = ""  # remote: streamable-http, sse (2024-11-05's HTTP+SSE), or "": the first that answers
    auth: str = ""  # remote: per_user, token_exchange, or "": the proxy's own credentials (headers, bearer_token_env)
    client_id: str = ""  # per_user: the client pre-registered at the server's authorization server ("": registered)
    client_secret_env: str = ""  # per_user: the environment variable holding that client's secret
    scopes: tuple[str, ...] = ()  # per_user, token_exchange: the scopes asked for
    timeout: float = 0.0  # seconds a tool call may take; 0: the proxy's TIMEOUT
    max_result_bytes: int = MAX_RESULT_BYTES  # the longest answer to a tool call passed on
    price_per_call: int = 0  # nano-dollars charged to the key's dollar budget per call its server answers

    @property
    def stdio(self) -> bool:
        return bool(self.command)

    def as_written(self) -> dict[str, Any]:
        """As config.yaml writes it (--show): header values and the token are not shown."""
        if self.stdio:
            written: dict[str, Any] = {"command": self.command}
            if self.args:
                written["args"] = list(self.args)
            if self.env:
                written["env"] = {name: "***" for name, _ in self.env}
            if self.per_session:
                written["per_session"] = True
            return {**written, **self.bounds_written()}
        written = {"url": self.url}
        if self.headers:
            written["headers"] = {name: "***" for name, _ in self.headers}
        if self.bearer_token_env:
            written["bearer_token_env"] = self.bearer_token_env
        if self.transport:
            written["transport"] = self.transport
        for key in ("auth", "client_id", "client_secret_env"):
            if getattr(self, key):
                written[key] = getattr(self, key)
        if self.scopes:
            written["scopes"] = list(self.scopes)
        return {**written, **self.bounds_written()}

    @property
    def per_person(self) -> bool:
        """Each person's own credentials reach it (per_user or token_exchange), never the proxy's."""
        return self.auth in AUTHS

    def bounds_written(self) -> dict[str, Any]:
        """timeout, max_result_bytes and price_per_call as written, when not the defaults."""
        written: dict[str, Any] = {"timeout": self.timeout} if self.timeout else {}
        if self.max_result_bytes != MAX_RESULT_BYTES:
            written["max_result_bytes"] = self.max_result_bytes
        if self.price_per_call:
            written["price_per_call"] = float(Decimal(self.price_per_call) / NANOS_PER_DOLLAR)
        return written


class McpServers(tuple[McpServer, ...]):
    """The entries, written back as config.yaml writes them (--show, the settings reference): no secret shown."""

    def as_written(self) -> dict[str, Any]:
        return {server.name: server.as_written() for server in self}

    def named(self, name: str) -> McpServer | None:
        return next((server for server in self if server.name == name), None)


def parse_mcp_servers(value: Any) -> McpServers:
    """A YAML mapping (or JSON text) of name -> entry; the entries in the order given."""
    value = json_setting(value)
    if value is None:
        return McpServers()
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of server name to {{command, args, env}} or {{url}}, got "
                         f"{type(value).__name__}")
    servers = McpServers(_server(name, entry) for name, entry in value.items())
    _distinct(servers)
    return servers


def _server(name: Any, entry: Any) -> McpServer:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f".{name}: a server name is lower-case letters, digits, '-' and single '_' (no '__', which "
                         "separates it from its tools' names, and no '_' at the end), at most 32 characters, starting "
                         "with a letter or digit")
    where = f".{name}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected {{command, args, env}} or {{url, headers, bearer_token_env}}, got "
                         f"{type(entry).__name__}")
    keys = set(entry)
    unknown = sorted(keys - STDIO_KEYS - REMOTE_KEYS - CALL_KEYS, key=str)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (a server takes command, args, env, per_session, or url, "
                         "headers, bearer_token_env, transport, auth, client_id, client_secret_env, scopes; and timeout, max_result_bytes, price_per_call)")
    if ("command" in keys) == ("url" in keys):
        raise ValueError(f"{where}: give either `command` (a server the proxy runs) or `url` (one it reaches)")
    if "command" in keys:
        mixed = sorted(keys & REMOTE_KEYS)
        if mixed:
            raise ValueError(f"{where}.{mixed[0]}: a server with a `command` takes no {mixed[0]}")
        return replace(_stdio(name, where, entry), **_call_bounds(where, entry))
    mixed = sorted(keys & (STDIO_KEYS - {"command"}))
    if mixed:
        raise ValueError(f"{where}.{mixed[0]}: a server with a `url` takes no {mixed[0]}")
    return replace(_remote(name, where, entry), **_call_bounds(where, entry))


def _call_bounds(where: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """timeout (seconds, > 0), max_result_bytes (1 to MOST_RESULT_BYTES) and price_per_call (US dollars, >= 0, read
    exactly: counted in nano-dollars) of a tool call to this server."""
    bounds: dict[str, Any] = {}
    timeout = entry.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
            raise ValueError(f"{where}.timeout: expected seconds, more than 0 and at most 86400")
        bounds["timeout"] = float(timeout)
    size = entry.get("max_result_bytes")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MOST_RESULT_BYTES:
            raise ValueError(f"{where}.max_result_bytes: expected a whole number of bytes from 1 to {MOST_RESULT_BYTES}")
        bounds["max_result_bytes"] = size
    price = entry.get("price_per_call")
    if price is not None:
        try:  # a YAML float (0.01) read as written, not as its binary neighbour
            value = Decimal(str(price)) if not isinstance(price, bool) and isinstance(price, (int, float, str)) else None
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite() or not 0 <= value <= MOST_PRICE:
            raise ValueError(f"{where}.price_per_call: expected US dollars per call, from 0 to {MOST_PRICE}")
        bounds["price_per_call"] = int(value * NANOS_PER_DOLLAR)
    return bounds


def _stdio(name: str, where: str, entry: Mapping[str, Any]) -> McpServer:
    command = entry["command"]
    if not isinstance(command, str) or not command.strip():
        raise ValueError(f"{where}.command: expected a program name or path")
    args = entry.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{where}.args: expected a list of strings")
    per_session = entry.get("per_session", False)
    if not isinstance(per_session, bool):
        raise ValueError(f"{where}.per_session: expected true or false")
    return McpServer(name, command.strip(), tuple(str(a) for a in args), _env(where, entry.get("env")), per_session)


def _env(where: str, env: Any) -> tuple[tuple[str, str], ...]:
    if env is None:
        return ()
    if not isinstance(env, dict):
        raise ValueError(f"{where}.env: expected a mapping of variable name to value")
    pairs = []
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            raise ValueError(f"{where}.env: {key!r} is not an environment variable name")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or "\x00" in str(value):
            raise ValueError(f"{where}.env.{key}: expected a string")
        pairs.append((key, str(value)))
    return tuple(pairs)


def _remote(name: str, where: str, entry: Mapping[str, Any]) -> McpServer:
    url = entry["url"]
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}.url: expected an http(s) URL")
    if parts.username or parts.password:
        raise ValueError(f"{where}.url: credentials do not go in the URL: give them as `headers` or "
                         "`bearer_token_env`")
    token_env = entry.get("bearer_token_env") or ""
    if not isinstance(token_env, str) or (token_env and not ENV_NAME.fullmatch(token_env)):
        raise ValueError(f"{where}.bearer_token_env: expected the name of an environment variable")
    pairs = _headers(where, entry.get("headers") or {})
    if token_env and any(k.lower() == "authorization" for k, _ in pairs):
        raise ValueError(f"{where}: give `bearer_token_env` or an Authorization header, not both")
    transport = entry.get("transport") or ""
    if transport and transport not in TRANSPORTS:
        raise ValueError(f"{where}.transport: expected {' or '.join(TRANSPORTS)}")
    return McpServer(name, url=url, headers=pairs, bearer_token_env=token_env, transport=transport,
                     **_auth(where, entry, pairs))


def _auth(where: str, entry: Mapping[str, Any], headers: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """auth, client_id, client_secret_env and scopes, and the combinations refused: a person's server takes none of
    the proxy's own credentials (they would reach it beside the person's), and a client only with per_user."""
    auth = entry.get("auth") or ""
    if auth and auth not in AUTHS:
        raise ValueError(f"{where}.auth: expected {' or '.join(AUTHS)}")
    client_id, secret_env = _client(where, entry)
    scopes = _scopes(where, entry.get("scopes") or [])
    if auth:
        _no_own_credentials(where, auth, entry, headers)
    for key, value in (("client_id", client_id), ("client_secret_env", secret_env)):
        if value and auth != "per_user":
            raise ValueError(f"{where}.{key}: only a server with `auth: per_user` takes a client")
    if scopes and not auth:
        raise ValueError(f"{where}.scopes: only a server with `auth: per_user` or `auth: token_exchange` asks scopes")
    if secret_env and not client_id:
        raise ValueError(f"{where}.client_secret_env: give the client's `client_id` too")
    return {"auth": auth, "client_id": client_id, "client_secret_env": secret_env, "scopes": scopes}


def _client(where: str, entry: Mapping[str, Any]) -> tuple[str, str]:
    client_id = entry.get("client_id") or ""
    if not isinstance(client_id, str) or (client_id and not client_id.isprintable()) or len(client_id) > 255:
        raise ValueError(f"{where}.client_id: expected the client id its authorization server registered")
    secret_env = entry.get("client_secret_env") or ""
    if not isinstance(secret_env, str) or (secret_env and not ENV_NAME.fullmatch(secret_env)):
        raise ValueError(f"{where}.client_secret_env: expected the name of an environment variable")
    return client_id, secret_env


def _scopes(where: str, scopes: Any) -> tuple[str, ...]:
    """A list of scopes, or one string of them separated by spaces (as OAuth writes them)."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, list) or not all(isinstance(s, str) and SCOPE.fullmatch(s) for s in scopes):
        raise ValueError(f"{where}.scopes: expected a list of OAuth scopes")
    return tuple(scopes)


def _no_own_credentials(where: str, auth: str, entry: Mapping[str, Any], headers: tuple[tuple[str, str], ...]) -> None:
    if entry.get("bearer_token_env"):
        raise ValueError(f"{where}.bearer_token_env: a server with `auth: {auth}` gets each person's token, not the "
                         "proxy's")
    if any(k.lower() == "authorization" for k, _ in headers):
        raise ValueError(f"{where}.headers: a server with `auth: {auth}` gets each person's token, not an "
                         "Authorization header")


def _headers(where: str, headers: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(headers, dict):
        raise ValueError(f"{where}.headers: expected a mapping of header name to value")
    pairs = []
    for key, value in headers.items():
        if not isinstance(key, str) or not HEADER_NAME.fullmatch(key) or key.lower() in TRANSPORT_HEADERS:
            raise ValueError(f"{where}.headers: {key!r} is not a header the proxy may set for it")
        if not isinstance(value, str) or any(c in value for c in "\r\n\x00"):
            raise ValueError(f"{where}.headers.{key}: expected a one-line string")
        pairs.append((key, value))
    return tuple(pairs)


def _distinct(servers: tuple[McpServer, ...]) -> None:
    """Names that look alike would confuse whoever reads `git_x__status` next to `git-x__status`."""
    seen: dict[str, str] = {}
    for server in servers:
        folded = server.name.replace("-", "_")
        if folded in seen:
            raise ValueError(f".{server.name}: too like the server name {seen[folded]!r} (names may not differ only "
                             "in '-' versus '_')")
        seen[folded] = server.name


def missing_tokens(servers: tuple[McpServer, ...], environ: Mapping[str, str]) -> str | None:
    """A remote server whose token variable is unset: it would be reached without its credential (a client secret's
    likewise: its authorization server would refuse the person's connection)."""
    for server in servers:
        if server.client_secret_env and not environ.get(server.client_secret_env, "").strip():
            return (f"mcp_servers.{server.name}.client_secret_env: {server.client_secret_env} is not set in the "
                    "proxy's environment")
        if server.bearer_token_env and not environ.get(server.bearer_token_env, "").strip():
            return (f"mcp_servers.{server.name}.bearer_token_env: {server.bearer_token_env} is not set in the "
                    "proxy's environment")
    return None


def per_person_problem(servers: tuple[McpServer, ...], signin: bool) -> str | None:
    """A server with `auth: per_user` or `token_exchange` reaches a person, whom only sign-in (OIDC_ISSUER) knows."""
    for server in servers:
        if server.per_person and not signin:
            return (f"mcp_servers.{server.name}.auth: {server.auth} needs sign-in (OIDC_ISSUER, PUBLIC_URL): the "
                    "person whose credentials it uses signs in at the console")
    return None
