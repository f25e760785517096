"""What the servers send unasked, fanned out to the sessions listening (the supervisor's, supervisor.py).

A server's list changes (`notifications/tools|prompts|resources/list_changed`), resource updates
(`notifications/resources/updated`) and log messages (`notifications/message`) come on its one pipe or session,
shared by every client. The supervisor hands each to `Notices.publish`, which puts it, as each listener sees it,
on the queue of every listener it concerns (a per_session process's: its own session's listeners alone,
per_session.py's `hears`):

- a listener is a 2025-11-25 session's GET stream or a 2026-07-28 `subscriptions/listen` stream, at `/mcp` (every
  server: a server's list change is the aggregate's) or at `/mcp/<server>` (that server's alone); a key narrowed
  by tool globs hears only the servers it was given when it opened (listening.py's `heard`);
- a resource update reaches the listeners that subscribed its URI (a session's resources/subscribe, or the listen
  request's `resourceSubscriptions`), under the URI they know it by (`mcp-proxy://server/...` at /mcp); the
  server is asked to subscribe when the first holder comes, to unsubscribe when the last goes;
- a log message reaches only the sessions that asked for them with logging/setLevel, at or above their level
  (a server's log is the server's, not one call's: every session that asked sees it). The server is set to the
  lowest level any session asked of it (a 2026-07-28 request's own level counts while its call runs, and the log
  messages that are its call's go with its answer: stdio_server.py).

Bounded: listeners per owner and per instance, a queue per listener (one that falls behind is ended: its client
listens again and refetches, as the revisions say), subscribed URIs per holder. A session holds one GET stream: a
second replaces the first (a client that reconnects is not refused for the stream it left)."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from typing import Any, Callable

from argoproxy.mcp.names import proxied_uri

LIST_CHANGED = frozenset({"notifications/tools/list_changed", "notifications/prompts/list_changed",
                          "notifications/resources/list_changed"})
UPDATED = "notifications/resources/updated"
LOGGED = "notifications/message"
KINDS = LIST_CHANGED | {UPDATED, LOGGED}
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")  # RFC 5424, low first
MAX_PER_OWNER = 16  # listeners of one key (or this machine, with auth off) at once: MCP_STREAMS_PER_KEY's default
MAX_LISTENERS = 512  # listeners of the instance at once: MCP_STREAMS's default
MAX_QUEUED = 256  # notifications waiting for one listener: past it the listener is ended
MAX_URIS = 256  # resources one session (or one listen request) subscribes at most
END = None  # what a listener's queue ends with
Hears = Callable[[str, str], bool]  # whether a listener (its session, its owner) hears a notification
LOG_LEVEL = "io.modelcontextprotocol/logLevel"  # 2026-07-28: a request's own log level, in its `_meta`


def request_level(message: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A 2026-07-28 request's log level (its server's log messages during it, at or above it, go with its answer)
    and the request without it, as a 2025-11-25 server takes it; (message, None) when it names none."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(params, dict) or not isinstance(meta, dict) or LOG_LEVEL not in meta:
        return message, None
    level = meta[LOG_LEVEL]
    rest = {k: v for k, v in meta.items() if k != LOG_LEVEL}
    params = {k: v for k, v in params.items() if k != "_meta"} | ({"_meta": rest} if rest else {})
    return {**message, "params": params}, level if level in LEVELS else None


def at_or_above(message: dict[str, Any], level: str) -> bool:
    """Whether a log message is at or above `level`."""
    params = message.get("params")
    said = params.get("level") if isinstance(params, dict) else None
    return said in LEVELS and LEVELS.index(said) >= LEVELS.index(level)


class Listener:
    """One stream's notifications: `queue` holds them as its client sees them, then END; `ended` says why."""

    def __init__(self, session: str, owner: str, server: str | None, kinds: frozenset[str],
                 uris: set[tuple[str, str]] | None, heard: frozenset[str] | None = None) -> None:
        self.session, self.owner, self.server, self.kinds = session, owner, server, kinds
        self.heard = heard  # the servers it hears (a key narrowed by tool globs); None: every server
        self.uris = uris  # (server, its own URI) subscribed; None: the session's resources/subscribe ones
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(MAX_QUEUED + 1)
        self.ended = ""

    def end(self, why: str) -> None:
        if not self.ended:
            self.ended = why
            try:
                self.queue.put_nowait(END)
            except queue.Full:  # its END is already behind a full queue's last place: it is read there
                pass


class Notices:
    def __init__(self, most: int = MAX_LISTENERS, per_owner: int = MAX_PER_OWNER) -> None:
        self.most, self.per_owner = most, per_owner  # MCP_STREAMS, MCP_STREAMS_PER_KEY
        self.lock = threading.Lock()
        self.listeners: list[Listener] = []
        self.subscribed: dict[str, set[tuple[str, str]]] = {}  # session -> (server, own URI)
        self.wanted: Counter[tuple[str, str]] = Counter()  # holders of each (server, own URI)
        self.levels: dict[str, dict[str | None, str]] = {}  # session -> scope (None: every server) -> level
        self.reach: dict[str, frozenset[str]] = {}  # session -> the servers its level at /mcp is for (absent: all)
        self.closed = ""

    # ------------------------------------------------------------ listeners
    def listen(self, session: str, owner: str, server: str | None, kinds: frozenset[str] = KINDS,
               uris: list[tuple[str, str]] | None = None, heard: frozenset[str] | None = None) -> Listener | str:
        """A new listener, or why not (too many). `uris` (2026-07-28's own subscriptions) are held until it leaves;
        without them, the session's subscriptions count, and the session's earlier listener here is ended."""
        with self.lock:
            if self.closed:
                return self.closed
            if uris is None:
                for old in [l for l in self.listeners if l.session == session and l.server == server and l.uris is None]:
                    self._drop(old, "another stream of this session replaced it")
            if sum(1 for l in self.listeners if l.owner == owner) >= self.per_owner:
                return f"This key has {self.per_owner} notification streams open already (MCP_STREAMS_PER_KEY)."
            if len(self.listeners) >= self.most:
                return f"The proxy has {self.most} notification streams open already (MCP_STREAMS)."
            own = set(uris[:MAX_URIS]) if uris is not None else None
            listener = Listener(session, owner, server, kinds, own, heard)
            self.listeners.append(listener)
            self.wanted.update(own or ())
            return listener

    def leave(self, listener: Listener) -> list[tuple[str, str]]:
        """The listener gone; the (server, URI)s nobody holds any longer (to unsubscribe at their server)."""
        with self.lock:
            self._drop(listener, "it left")
            if listener.uris is None:
                return []
            return self._release(listener.uris)

    def _drop(self, listener: Listener, why: str) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        listener.end(why)

    def end(self, session: str, why: str) -> list[tuple[str, str]]:
        """The session ended: its listeners end, its subscriptions and log level go; the URIs nobody holds now."""
        with self.lock:
            for listener in [l for l in self.listeners if l.session == session]:
                self._drop(listener, why)
            self.levels.pop(session, None)
            self.reach.pop(session, None)
            return self._release(self.subscribed.pop(session, set()))

    def tools_changed(self, session: str, owner: str) -> None:
        """The proxy's own list change: the session's tool search found tools its listing at /mcp now shows
        (tool_search.py); told to its listeners at /mcp alone."""
        note = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
        with self.lock:
            for listener in [l for l in self.listeners if (l.session, l.owner, l.server) == (session, owner, None)
                             and note["method"] in l.kinds]:
                if listener.queue.qsize() >= MAX_QUEUED:
                    self._drop(listener, "its client fell behind")
                else:
                    listener.queue.put_nowait(note)

    def close(self, why: str) -> None:
        """Every listener ends (the proxy stops); no new one starts."""
        with self.lock:
            self.closed = why
            for listener in list(self.listeners):
                self._drop(listener, why)

    # ------------------------------------------------------------ subscriptions and log levels
    def subscribe(self, session: str, server: str, uri: str) -> bool | None:
        """The session subscribes a resource: True when it is the URI's first holder (the server is asked), False
        when held already, None when the session holds too many."""
        with self.lock:
            held = self.subscribed.setdefault(session, set())
            if (server, uri) in held:
                return False
            if len(held) >= MAX_URIS:
                return None
            held.add((server, uri))
            self.wanted[(server, uri)] += 1
            return self.wanted[(server, uri)] == 1

    def unsubscribe(self, session: str, server: str, uri: str) -> bool:
        """True when the session held it and was its last holder (the server is asked to unsubscribe)."""
        with self.lock:
            held = self.subscribed.get(session, set())
            if (server, uri) not in held:
                return False
            held.discard((server, uri))
            return bool(self._release({(server, uri)}))

    def _release(self, uris: set[tuple[str, str]]) -> list[tuple[str, str]]:
        gone = []
        for key in uris:
            self.wanted[key] -= 1
            if self.wanted[key] <= 0:
                del self.wanted[key]
                gone.append(key)
        return gone

    def set_level(self, session: str, scope: str | None, level: str, servers: list[str],
                  reached: frozenset[str] | None = None) -> dict[str, str]:
        """The session's log level at /mcp (scope None; `reached`: the servers its key reaches, None: all) or
        /mcp/<scope>; the servers whose lowest asked level changed, and that level (each is told)."""
        with self.lock:
            before = {s: self._lowest(s) for s in servers}
            self.levels.setdefault(session, {})[scope] = level
            if scope is None and reached is not None:
                self.reach[session] = reached
            return {s: low for s in servers if (low := self._lowest(s)) is not None and low != before[s]}

    def drop_level(self, session: str) -> None:
        """The session's levels forgotten (a 2026-07-28 request's, once its call ended)."""
        with self.lock:
            self.levels.pop(session, None)
            self.reach.pop(session, None)

    def _lowest(self, server: str) -> str | None:
        """The lowest level asked of the server: at /mcp/<server>, or at /mcp by a session whose key reaches it."""
        asked = [LEVELS.index(level) for session, scopes in self.levels.items() for scope, level in scopes.items()
                 if scope == server or scope is None and server in self.reach.get(session, (server,))]
        return LEVELS[min(asked)] if asked else None

    # ------------------------------------------------------------ fan-out
    def publisher(self, server: str) -> Callable[..., None]:
        return lambda message, only=None: self.publish(server, message, only)

    def publish(self, server: str, message: dict[str, Any], only: Hears | None = None) -> None:
        """A server's notification to every listener it concerns, as that listener sees it; never waits (a server's
        reader calls it): a listener whose queue is full is ended. `only`: a per_session process's, to the
        listeners (session, owner) it says are its own."""
        method = message.get("method")
        if method not in KINDS or not self.listeners:
            return
        given = message.get("params")
        params: dict[str, Any] = given if isinstance(given, dict) else {}
        with self.lock:
            for listener in list(self.listeners):
                if only is not None and not only(listener.session, listener.owner):
                    continue
                shown = self._shown(listener, server, str(method), params)
                if shown is None:
                    continue
                if listener.queue.qsize() >= MAX_QUEUED:
                    self._drop(listener, "its client fell behind")
                    continue
                listener.queue.put_nowait(shown)

    def _shown(self, listener: Listener, server: str, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method not in listener.kinds or listener.server not in (None, server) \
                or (listener.heard is not None and server not in listener.heard):
            return None
        whole = listener.server is None  # at /mcp: resources under the server's name, logs naming their server
        if method == UPDATED:
            uri = params.get("uri")
            held = listener.uris if listener.uris is not None else self.subscribed.get(listener.session, set())
            if not isinstance(uri, str) or (server, uri) not in held:
                return None
            params = {**params, "uri": proxied_uri(server, uri) if whole else uri}
        elif method == LOGGED:
            level = self.levels.get(listener.session, {}).get(listener.server)
            said = params.get("level")
            if level is None or said not in LEVELS or LEVELS.index(said) < LEVELS.index(level):
                return None
            if whole:
                logger = params.get("logger")
                params = {**params, "logger": f"{server}/{logger}" if isinstance(logger, str) and logger else server}
        else:
            params = {k: v for k, v in params.items() if k != "_meta"}
        return {"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})}
