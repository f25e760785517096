"""A remote server with `auth: per_user` or `auth: token_exchange` (docs/mcp-credentials.md): an upstream session
of its own for each person, carrying that person's token and no one else's, the same to the supervisor as a shared
server's RemoteServer.

The worker says whose a call is and hands the person's current token with it (mcp/person_tokens.py reads, refreshes
or exchanges it; the supervisor keeps none at rest). A person's session is opened at their first call and kept for
the next; a token that changed (refreshed, connected again) opens a new one and the old one ends once the calls it
carries have been answered (another worker's refresh does not cut a call short), ended with the new token (the old
one may have expired). A connection ended, or found gone by a worker, ends the person's session (end_person). At most `most`
(MCP_USER_SESSIONS_PER_SERVER) at once: the least recently used ends (as gently) for a new one. A call without a person
or a token is refused, never made with another's: nothing here falls back.

Runs in the supervisor (argoproxy/mcp/supervisor.py): plain threads, no gevent."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Mapping

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.remote_http import CONNECT_SECONDS
from argoproxy.mcp.remote_server import RemoteServer
from argoproxy.redaction import Secrets

log = logging.getLogger("cot_proxy")

MAX_TOKEN = 16 * 1024  # a bearer token longer than this is refused
OPEN_POLL = 0.02  # how often a call waiting for its person's session to open looks whether it failed


class PersonServer(RemoteServer):
    """One person's session with the server: the person's token in place of the proxy's credentials."""

    def __init__(self, server: McpServer, person: str, token: str) -> None:
        super().__init__(server, environ={})
        self.person, self.token = person, token
        self.secrets = Secrets([token])
        self.token_refused = ""  # the server's 401 or 403 to this person's token, said in words
        self.calls, self.retired = 0, False  # calls it carries now; retired: it ends after the last (PerUser.lock)
        self.end_token = ""  # the person's newer token, for its end once retired (handed)

    def call(self, message: dict[str, Any], timeout: float, wait_ready: bool = True, on_note: Any = None,
             session: str = "", asks: frozenset[str] = frozenset(), on_ask: Any = None) -> dict[str, Any]:
        """RemoteServer.call, but a session that fails to open (the token refused, the server down) answers at
        once with why, rather than when the wait for it ends; a refused token as such, not as a server down."""
        deadline = time.monotonic() + min(timeout, CONNECT_SECONDS)
        while not self.ready.is_set() and self.state == "starting" and time.monotonic() < deadline:
            self.ready.wait(OPEN_POLL)
        if self.token_refused and not self.ready.is_set():
            return jsonrpc.error(message.get("id"), jsonrpc.SERVER_UNAVAILABLE, self.token_refused)
        return super().call(message, timeout, wait_ready, on_note, session, asks, on_ask)

    def handed(self, token: str) -> None:
        """The person's newer token, for this retired session's end (a DELETE): the one it opened with may have
        expired, and a server that refuses it keeps the session until its own timeout. The calls it still carries
        keep the token it opened with (a server may hold a session to its token). The same person's, for the same
        server: never another's."""
        self.secrets = Secrets([self.token, token])
        self.end_token = token

    def _kill(self) -> None:
        if self.end_token:  # its calls are answered (PerUser ends it after its last): only its end is sent now
            self.token = self.end_token
        super()._kill()

    def _refusal(self, resp: Any) -> str:
        if resp.status_code not in (401, 403):
            return super()._refusal(resp)
        wanted = scope_challenge(resp.headers.get("WWW-Authenticate", "")) if resp.status_code == 403 else None
        if wanted is not None:  # MCP's step-up: never widened on the person's behalf
            self.token_refused = (f"The MCP server {self.name} asks for more scopes than this connection holds "
                                  f"({wanted[:200]!r}): an admin adds them to its entry's `scopes`, then the person "
                                  f"connects again at /ui/connect/{self.name}.")
        elif self.server.auth == "token_exchange":
            self.token_refused = (f"The MCP server {self.name} refused the credentials sent for this person, the "
                                  f"token the provider exchanged for its audience ({self.origin} answered HTTP "
                                  f"{resp.status_code}): the exchanged token lacks the audience or scopes it needs.")
        else:
            self.token_refused = (f"The MCP server {self.name} refused the credentials sent for this person, their "
                                  f"own token ({self.origin} answered HTTP {resp.status_code}: expired, revoked or "
                                  f"for another audience): connecting again at /ui/connect/{self.name} gives a new one.")
        return self.token_refused


def scope_challenge(header: str) -> str | None:
    """The scopes a 403's `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."` asks for (RFC 6750 §3.1;
    MCP 2025-11-25's scope challenge), or None: no such challenge."""
    from werkzeug.datastructures import WWWAuthenticate  # (the one parser the MCP package uses: oauth_discovery.py)
    said = WWWAuthenticate.from_header(header) if header else None
    if said is None or said.type != "bearer" or said.parameters.get("error") != "insufficient_scope":
        return None
    return str(said.parameters.get("scope") or "")


class PerUser:
    kind = "remote"

    def __init__(self, server: McpServer, most: int) -> None:
        self.server, self.name, self.most = server, server.name, max(1, most)
        self.lock = threading.Lock()
        self.held: OrderedDict[str, PersonServer] = OrderedDict()  # person -> their session, least recently used first
        self.on_notice: Any = lambda message: None  # what a person's server sends unasked goes nowhere shared

    def start(self) -> None:
        """Nothing opens until a person calls."""

    def stop(self) -> None:
        with self.lock:
            gone, self.held = list(self.held.values()), OrderedDict()
        for session in gone:
            session.stop()

    def call(self, message: dict[str, Any], timeout: float, wait_ready: bool = True, on_note: Any = None,
             session: str = "", person: str = "", token: str = "", **more: Any) -> dict[str, Any]:
        if not person or not token or len(token) > MAX_TOKEN or not token.isascii() or not token.isprintable():
            return jsonrpc.error(message.get("id"), jsonrpc.INVALID_REQUEST,
                                 f"The MCP server {self.name} is reached with each person's own credentials: this "
                                 "call has none.")
        held = self._session(person, token)
        try:
            return held.call(message, timeout, wait_ready, on_note, session, **more)
        finally:
            self._done(person, held)

    def _done(self, person: str, held: PersonServer) -> None:
        """A call answered; a session that did not open goes (the next call opens again, perhaps with a new token),
        one retired ends with its last call."""
        with self.lock:
            held.calls -= 1
            if not held.ready.is_set() and self.held.get(person) is held:
                del self.held[person]
                held.retired = True
            over = held.retired and held.calls == 0
        if over:
            self._end([held])

    def _end(self, sessions: list[PersonServer]) -> None:
        for old in sessions:
            threading.Thread(target=old.stop, daemon=True, name=f"mcp-{self.name}-end").start()

    def _session(self, person: str, token: str) -> PersonServer:
        """The person's session, opened now when they have none or their token changed (the old one ends)."""
        with self.lock:
            held = self.held.get(person)
            if held is not None and hmac.compare_digest(held.token, token):
                self.held.move_to_end(person)
                held.calls += 1
                return held
            retired = [self.held.pop(person)] if held is not None else []
            if held is not None:
                held.handed(token)  # it ends with the token the person has now
            while len(self.held) >= self.most:
                retired.append(self.held.popitem(last=False)[1])
            for old in retired:
                old.retired = True
            ended = [old for old in retired if old.calls == 0]  # the others end with their last call (_done)
            opened = self.held[person] = PersonServer(self.server, person, token)
            opened.state = "starting"  # a call of the same person's arriving meanwhile waits for it to open
            opened.calls = 1
            opened.start()
        self._end(ended)
        return opened

    def end_person(self, person: str) -> bool:
        """The person's connection was revoked: their session ends now."""
        with self.lock:
            held = self.held.pop(person, None)
        if held is not None:
            held.stop()
        return held is not None

    def _sessions(self) -> list[PersonServer]:
        with self.lock:
            return list(self.held.values())

    def cancel(self, session: str, client_id: Any) -> bool:
        return any([s.cancel(session, client_id) for s in self._sessions()])

    def answered(self, session: str, message: dict[str, Any]) -> bool:
        return any([s.answered(session, message) for s in self._sessions()])

    def notify(self, message: dict[str, Any], **_: Any) -> None:
        """A client's notification names no person here: it reaches none (a cancellation comes as `cancel`)."""

    def status(self) -> dict[str, Any]:
        """Counts only: no person, no token."""
        held = self._sessions()
        ready = sum(1 for s in held if s.state == "ready")
        return {"name": self.name, "kind": "remote", "state": "ready", "per_user": True, "sessions": len(held),
                "ready": ready, "restarts": sum(s.restarts for s in held), "pid": None, "error": "",
                "server_info": {}, "capabilities": {}}


def ended_at(servers: Mapping[str, Any], person: Any, names: Any) -> list[str]:
    """A person's sessions ended at the per_user servers among `names` (the supervisor's end_person op); the names
    of those where one was held."""
    named = [servers.get(str(name)) for name in (names if isinstance(names, list) else [])]
    return [found.name for found in named if isinstance(found, PerUser) and found.end_person(str(person or ""))]
