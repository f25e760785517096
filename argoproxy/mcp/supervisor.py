"""The supervisor: the one process per proxy instance that owns its stdio MCP servers, so that Gunicorn's
workers share one set (not one per worker) and a worker's restart leaves them running.

The Gunicorn master starts it (argoproxy/mcp/launch.py, from the server hooks) as `python -m
argoproxy.mcp.supervisor SOCKET RUNDIR`, writes the servers' entries as one JSON line on its stdin and keeps
that pipe open: when the master goes, however it goes, the supervisor reads the pipe's end and stops every
server. It is undumpable, and its servers start in their room (room.py). The workers reach it over the Unix
socket SOCKET (mode 0600 in RUNDIR, mode 0700; answering only the master and its children), a connection per
call at a time (kept open for the next), one JSON line each way (argoproxy/mcp/link.py):

  {"op": "call", "server": NAME, "message": {...}, "timeout": SECONDS} -> {"message": {...}}
      (with "notes": true, the server's progress notifications for it come first: {"note": {...}} lines;
      with "session": ID and "owner": KEY, the call is made only in a session of that owner's, and its answer
      says so, "session": "checked"; else it is {"session": "refused"}: a request's call is its session check)
  {"op": "notify", "server": NAME, "message": {...}}                   -> {}
  {"op": "cancel", "session": ID, "id": REQUEST_ID}                     -> {"cancelled": true|false}
      (a call not running here is cancelled on the replica running it, told over Redis: replicas.py)
  {"op": "status"}                                                     -> {"servers": [...]}
  {"op": "session", "action": "new"|"get"|"end", ...}                  -> the session's record
  {"op": "listen", "session": ID, "owner": KEY, "server": NAME|null, ...} -> {"listening": true} (or {"refused":
      WHY}), then {"note": {...}} lines as the servers send them, {"alive": true} every ALIVE_SECONDS, and last
      {"end": WHY}: on a connection of its own, kept for it (notices.py; the worker's side: listening.py)
  {"op": "subscribe"|"unsubscribe", "session": ID, "server": NAME, "message": {...}} -> {"message": {...}}
  {"op": "level", "session": ID, "server": NAME|null, "level": LEVEL}  -> {} (at /mcp, "heard": [NAME, ...]: only
      the servers a key narrowed by tool globs reaches are set)
  {"op": "ended", "session": ID}                                       -> {} (a session Redis held was DELETEd;
      its streams and per_session processes end, here and on the other replicas: replicas.py)
  {"op": "end_person", "person": ID, "servers": [NAME, ...]}           -> {"ended": [NAME, ...]} (a person's
      connection ended, or a worker found none: their sessions at those per_user servers end; connection_end.py)
  A call with "relay": true may be sent {"ask": {...}} lines before its answer: the server's requests of its client
      (client_requests.py), for the capabilities in "asks" (else those its session declared at initialize);
  {"op": "reply", "session": ID, "message": {...}}                      -> {"replied": true|false} (the client's
      response to one of them, given to its server; false: it answers no request of this session's waiting now;
      true too when, not waiting here, it was told to the other replicas over Redis: replicas.py)
  A call with "rounds": {"asks": [...], "owner": KEY, "name": TOOL} (2026-07-28) is answered, when its server asks
      its client for input, with an input_required result; the client's next request is
  {"op": "resume", "state": STATE, "owner": KEY, "name": TOOL, "responses": {...}, "message": {...}}
                                                                       -> {"message": {...}} (or {"error": ...})

It also holds the 2025-11-25 sessions of this instance (Mcp-Session-Id), which any worker may be asked about. A
per_session server's processes are chosen by the call's session and its owner (a call's "key": the worker's
word for whose it is; per_session.py). After the servers' line the master writes a line of options (the
per-session bounds, REDIS_URL for replicas.py)."""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import secrets
import signal
import socketserver
import sys
import threading
import time
from typing import Any, Callable

from argoproxy.config.mcp_servers import McpServer
from argoproxy.edge.keepalive import has_left
from argoproxy.jsonfast import dumps, loads
from argoproxy.mcp import jsonrpc, room, stdio_server
from argoproxy.mcp.client_requests import Rounds, proxy_id
from argoproxy.mcp.launch import shared_places
from argoproxy.mcp.per_session import Bounds, KeyCheck, PerSession
from argoproxy.mcp.per_user import PerUser, ended_at
from argoproxy.mcp.notices import KINDS, LEVELS, MAX_LISTENERS, Listener, Notices, request_level
from argoproxy.mcp.notices import MAX_PER_OWNER as MAX_STREAMS_PER_KEY
from argoproxy.mcp.remote_server import RemoteServer
from argoproxy.mcp.replicas import Replicas
from argoproxy.mcp.stdio_server import StdioServer, written_places
from argoproxy.redaction import LogFilter, Secrets

log = logging.getLogger("cot_proxy")

MAX_REQUEST = 32 * 1024 * 1024
MAX_SESSIONS = 10_000
MAX_PER_OWNER = 1_000  # one key's (or this machine's, with auth off) sessions at once
SESSION_IDLE = 24 * 3600.0
ALIVE_SECONDS = 10.0  # a listen connection's keep-alive: the worker's stream sends a comment, a gone worker is seen
LOOK_SECONDS = 1.0  # how often a quiet listen connection is looked at for its worker having closed it


class Sessions:
    """2025-11-25 sessions: id -> (the key that opened it, the revision it speaks, last use)."""

    def __init__(self, ended: Callable[[str], Any] = lambda session: None) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}
        self.ended = ended  # told of each session that ends (its streams and per_session processes go)

    def act(self, request: dict[str, Any]) -> dict[str, Any]:
        action, now = request.get("action"), time.monotonic()
        with self.lock:
            if action == "new":
                owner = str(request.get("owner", ""))
                self._trim(now, owner)
                sid = secrets.token_urlsafe(24)
                self.records[sid] = {"owner": owner, "version": str(request.get("version", "")), "used": now,
                                     "asks": [str(a) for a in request.get("asks") or ()]}
                return {"id": sid}
            record = self.records.get(str(request.get("id", "")))
            if record is None or record["owner"] != str(request.get("owner", "")):
                return {}  # another key's session is no session for this one
            if action == "end":
                del self.records[str(request["id"])]
                self.ended(str(request["id"]))
                return {"ended": True}
            record["used"] = now
            return {"version": record["version"], **({"asks": record["asks"]} if record["asks"] else {})}

    def _trim(self, now: float, owner: str) -> None:
        """Room for one more of `owner`'s: idle sessions go, then its own least recently used past its share (one
        key opening sessions in a loop ends only its own), then anyone's least recently used."""
        for sid in [s for s, r in self.records.items() if now - r["used"] > SESSION_IDLE]:
            self._drop(sid)
        own = [s for s, r in self.records.items() if r["owner"] == owner]
        while len(own) >= MAX_PER_OWNER:
            oldest = min(own, key=lambda s: self.records[s]["used"])
            own.remove(oldest)
            self._drop(oldest)
        while len(self.records) >= MAX_SESSIONS:
            self._drop(min(self.records, key=lambda s: self.records[s]["used"]))

    def _drop(self, session: str) -> None:
        del self.records[session]
        self.ended(session)

    def owner(self, session: str) -> str:
        record = self.records.get(session)
        return str(record["owner"]) if record else ""


class Supervisor:
    def __init__(self, servers: list[McpServer], rundir: str, options: dict[str, Any] | None = None) -> None:
        # A stdio server's process or a remote server's session: one each for the instance, the same to the rest;
        # a per_session server's processes, one per client session (per_session.py).
        given = options or {}
        bounds = Bounds(int(given.get("session_processes", Bounds.most)),
                        int(given.get("session_processes_per_key", Bounds.per_key)))
        self.sessions = Sessions(self.ended)  # a session that ends (DELETE, idle, too many) ends its streams too
        per_user = int(given.get("user_sessions", 64))  # MCP_USER_SESSIONS_PER_SERVER (per_user.py)
        self.servers = {s.name: PerSession(s, os.path.join(rundir, "home", s.name), bounds,
                                           owner_of=self.sessions.owner) if s.per_session
                        else StdioServer(s, os.path.join(rundir, "home", s.name)) if s.stdio
                        else PerUser(s, per_user) if s.per_person else RemoteServer(s)
                        for s in servers}
        self.replicas = Replicas(str(given.get("redis_url") or ""), self)  # with Redis: what the others are told
        per_session = [s for s in self.servers.values() if isinstance(s, PerSession)]
        keys = given.get("keys")
        self.key_check = KeyCheck(per_session, str(keys.get("keys_db") or ""), str(given.get("redis_url") or ""),
                                  str(keys.get("redis_outage") or "local")) \
            if per_session and isinstance(keys, dict) else None
        self.notices = Notices(int(given.get("streams", MAX_LISTENERS)),  # what the servers send unasked, to
                               int(given.get("streams_per_key", MAX_STREAMS_PER_KEY)))  # the sessions listening
        self.rounds = Rounds()  # 2026-07-28 calls waiting for their clients' input (client_requests.py)
        for name, server in self.servers.items():
            if isinstance(server, (StdioServer, PerSession)):  # a per_session process's to its own session's alone
                server.on_notice = self.notices.publisher(name)

    def start(self) -> None:
        for server in self.servers.values():
            server.start()
        self.replicas.start()
        if self.key_check is not None:
            self.key_check.start()

    def stop(self) -> None:
        self.notices.close("The proxy is stopping.")
        self.replicas.stop()
        if self.key_check is not None:
            self.key_check.stop()
        for server in self.servers.values():
            server.stop()

    def session_ended(self, session: str) -> bool:
        """A session ended here (DELETE, idle, or told by another replica): its per_session processes go."""
        return any([s.end(session) for s in self.servers.values() if isinstance(s, PerSession)])

    def cancelled(self, session: str, request_id: Any) -> bool:
        """A client's cancellation, passed to the server running its call here (the server is not named: each
        looks for it among its calls)."""
        return any([s.cancel(session, request_id) for s in self.servers.values()])

    def replied(self, session: str, message: dict[str, Any]) -> bool:
        """A client's response given to the server whose request of this session's call it answers, if here."""
        return any([s.answered(session, message) for s in self.servers.values()])

    def answer(self, request: dict[str, Any], on_note: Callable[[dict[str, Any]], None] | None = None,
               on_ask: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"servers": [s.status() for s in self.servers.values()]}
        if op == "session":
            return self.sessions.act(request)  # one that ends is told (`ended`)
        if op == "ended":  # a session Redis held ended: here, and on the other replicas (replicas.py)
            self.ended(str(request.get("session", "")))
            self.replicas.tell({"ended": str(request.get("session", ""))})
            return {}
        if op in ("subscribe", "unsubscribe", "level", "found"):
            return self.noticed(op, request)
        if op == "cancel":  # not running here: perhaps on another replica (with Redis), which is told
            session, request_id = str(request.get("session", "")), request.get("id")
            if self.cancelled(session, request_id):
                return {"cancelled": True}
            return told(self.replicas.tell({"cancel": session, "id": request_id}), "cancelled")
        if op == "reply":  # a client's response to a request its call's server made of it: not waiting here,
            message, session = request.get("message"), str(request.get("session", ""))  # perhaps on another replica
            if not isinstance(message, dict):
                return {"replied": False}
            if self.replied(session, message):
                return {"replied": True}
            if not session or not proxy_id(message):
                return {"replied": False}
            return told(self.replicas.tell({"reply": session, "message": message}), "replied")
        if op == "resume":
            message = request.get("message")
            resumed = self.rounds.resume(request.get("state"), str(request.get("owner", "")),
                                         str(request.get("name", "")), request.get("responses"),
                                         message.get("id") if isinstance(message, dict) else None,
                                         on_note if request.get("notes") else None)
            return {"error": "no such state"} if resumed is None else {"message": resumed}
        if op == "call" and "owner" in request:  # the call is its session's check: only in its owner's session
            if not self.sessions.act({"action": "get", "id": request.get("session"), "owner": request["owner"]}):
                return {"session": "refused"}
            return {**self.served(op, request, on_note, on_ask), "session": "checked"}
        return self.served(op, request, on_note, on_ask)

    def ended(self, session: str) -> None:
        """A session ended: its streams end, and its servers unsubscribe what nobody else holds; its per_session
        processes go."""
        self.session_ended(session)
        self.release(self.notices.end(session, "The session ended."))

    def release(self, uris: list[tuple[str, str]]) -> None:
        for server, uri in uris:
            if isinstance(self.servers.get(server), StdioServer):
                self._tell(server, "resources/unsubscribe", {"uri": uri})

    def _tell(self, server: str, method: str, params: dict[str, Any]) -> None:
        """A request of the proxy's own to a server, answered on a thread of its own (nobody waits for it)."""
        message = {"jsonrpc": "2.0", "id": f"cot_proxy-{method}", "method": method, "params": params}
        threading.Thread(target=self.servers[server].call, args=(message, 10.0), daemon=True).start()

    def noticed(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        """A session's resources/subscribe, unsubscribe (held here; its server asked for the first holder, told
        after the last), logging/setLevel (held here; each server set to the lowest level asked of it), and its
        tool search's finds (its /mcp listeners told its tool list changed)."""
        session, scope = str(request.get("session", "")), request.get("server")
        if op == "found":  # a session's tool search found tools: its /mcp listing changed (tool_search.py)
            self.notices.tools_changed(session, str(request.get("owner", "")))
            return {}
        if op == "level":
            return self.leveled(session, scope, request)
        held, message = self.servers.get(str(scope)), request.get("message")
        if held is None or not isinstance(message, dict) or not isinstance(message.get("params"), dict) \
                or not isinstance(message["params"].get("uri"), str) or not jsonrpc.valid_id(message.get("id")):
            return {"error": "no such server"}
        name, uri, id = str(scope), message["params"]["uri"], message["id"]
        if op == "unsubscribe":
            if self.notices.unsubscribe(session, name, uri):
                self._tell(name, "resources/unsubscribe", {"uri": uri})
            return {"message": jsonrpc.result(id, {})}
        first = self.notices.subscribe(session, name, uri)
        if first is None:
            return {"message": jsonrpc.error(id, jsonrpc.INVALID_PARAMS, "This session subscribes too many resources.")}
        if not first:
            return {"message": jsonrpc.result(id, {})}
        answer = held.call(message, 30.0, session=session)
        if "result" not in answer:  # the server refused it: nobody holds it
            self.notices.unsubscribe(session, name, uri)
        return {"message": answer}

    def leveled(self, session: str, scope: Any, request: dict[str, Any]) -> dict[str, Any]:
        """A session's logging/setLevel at /mcp (scope None) or /mcp/<scope>: the servers it is for are told (at /mcp
        with "heard", a key narrowed by tool globs: the servers it reaches, never the others)."""
        level, heard = request.get("level"), request.get("heard")
        if level not in LEVELS or (scope is not None and scope not in self.servers):
            return {"error": "no such level or server"}
        reached = frozenset(map(str, heard)) if scope is None and isinstance(heard, list) else None
        names = [n for n in self.servers if scope in (None, n) and (reached is None or n in reached)]
        shared = [n for n in names if isinstance(self.servers[n], StdioServer)]  # not per_session's
        for server, lowest in self.notices.set_level(session, scope, str(level), shared, reached).items():
            self._tell(server, "logging/setLevel", {"level": lowest})
        for name in names:  # a per_session server's: the session's own process is told
            each = self.servers[name]
            if isinstance(each, PerSession):
                each.set_level(session, str(level))
        return {}

    def listener(self, request: dict[str, Any]) -> Listener | str:
        """A listen op's listener (its 2026-07-28 resource subscriptions asked of their servers), or why not."""
        scope, uris = request.get("server"), request.get("uris")
        if scope is not None and scope not in self.servers:
            return "No such server."
        kinds = request.get("kinds")
        held = [(str(s), str(u)) for s, u in uris if isinstance(self.servers.get(s), StdioServer)] \
            if isinstance(uris, list) else None
        heard = request.get("heard")  # a key narrowed by tool globs: the servers it hears (listening.py's heard)
        listener = self.notices.listen(str(request.get("session", "")), str(request.get("owner", "")),
                                       scope if isinstance(scope, str) else None,
                                       frozenset(kinds) & KINDS if isinstance(kinds, list) else KINDS, held,
                                       frozenset(map(str, heard)) if isinstance(heard, list) else None)
        if isinstance(listener, Listener) and listener.uris:
            for server, uri in listener.uris:  # asked each time: cheap, and a server that lost them has them again
                self._tell(server, "resources/subscribe", {"uri": uri})
        return listener

    def served(self, op: Any, request: dict[str, Any], on_note: Callable[[dict[str, Any]], None] | None,
               on_ask: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        if op == "end_person":
            return {"ended": ended_at(self.servers, request.get("person"), request.get("servers"))}
        server = self.servers.get(str(request.get("server")))
        message = request.get("message")
        if server is None or not isinstance(message, dict):
            return {"error": "no such server"}
        if op == "notify":
            server.notify(message)
            return {}
        if op == "call":
            level = request_level(message)[1]
            if level is None or not isinstance(server, StdioServer):  # a per_session process's is its own
                return self.called(server, request, message, on_note, on_ask)
            try:  # 2026-07-28: the server is set to the request's level while the call runs, when it is lower
                self.lowered(server, str(request.get("session", "")), level)
                return self.called(server, request, message, on_note, on_ask)
            finally:
                self.notices.drop_level(str(request.get("session", "")))
        return {"error": "unknown op"}

    def lowered(self, server: StdioServer, session: str, level: str) -> None:
        """A 2026-07-28 request's log level counted as a session's while its call runs (notices.py's set_level); a
        server that declared no logging is not asked."""
        if "logging" not in (server.initialized.get("capabilities") or {}):
            return
        for _, lowest in self.notices.set_level(session, server.name, level, [server.name]).items():
            server.call({"jsonrpc": "2.0", "id": "cot_proxy-logging/setLevel", "method": "logging/setLevel",
                         "params": {"level": lowest}}, 10.0)

    def called(self, server: Any, request: dict[str, Any], message: dict[str, Any],
               on_note: Callable[[dict[str, Any]], None] | None,
               on_ask: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        """A call op made on its server (its session's process, its client's requests relayed as it asks)."""
        timeout = request.get("timeout")
        seconds = float(timeout) if isinstance(timeout, (int, float)) else 60.0
        session = str(request.get("session", ""))
        notes = on_note if request.get("notes") else None
        call: Callable[..., dict[str, Any]] = server.call
        if isinstance(server, PerSession):  # whose the call is picks its process (the worker's word, or ours)
            call = functools.partial(server.call, owner=str(request.get("owner") or request.get("key") or ""))
        if isinstance(server, PerUser):  # the person's own session, with the token the worker read for them
            call = functools.partial(server.call, person=str(request.get("person") or ""),
                                     token=str(request.get("token") or ""))
        if isinstance(request.get("rounds"), dict):  # 2026-07-28: input asked for as an input_required result
            return {"message": self.rounds.first(call, server.answered, message, seconds, session,
                                                 request["rounds"], notes)}
        if request.get("relay") and on_ask is not None:  # the server's requests of the client go to it
            asks = request.get("asks")
            if not isinstance(asks, list):  # the session's, as its client declared them at initialize
                asks = (self.sessions.records.get(session) or {}).get("asks") or []
            return {"message": call(message, seconds, on_note=notes, session=session,
                                    asks=frozenset(map(str, asks)), on_ask=on_ask)}
        return {"message": call(message, seconds, on_note=notes, session=session)}


def told(heard: bool | None, done: str) -> dict[str, Any]:
    """A worker's answer for what was told the other replicas (replicas.py's tell): `done` when told; "lost" too
    when Redis could not be reached (the worker answers its client so, where it would have said nothing)."""
    return {done: bool(heard), **({"lost": True} if heard is None else {})}


class Handler(socketserver.StreamRequestHandler):
    server: "UnixServer"

    def handle(self) -> None:
        """The worker's requests, one line each, until it closes the connection (it keeps it for its next calls)."""
        for line in iter(lambda: self.rfile.readline(MAX_REQUEST), b""):
            self.one(line)

    def one(self, line: bytes) -> None:
        try:
            request = loads(line)
            if isinstance(request, dict) and request.get("op") == "listen":
                return self.listen(request)
            answer = self.server.supervisor.answer(request, self.note, self.ask) if isinstance(request, dict) \
                else {"error": "not an object"}
        except ValueError:
            answer = {"error": "not JSON"}
        except (BrokenPipeError, ConnectionResetError):  # the worker left mid-call (its client did): nobody to answer
            log.debug("mcp supervisor: a worker left during its call")
            return
        except Exception as exc:  # noqa: BLE001 - one bad call must not take the supervisor down
            log.exception("mcp supervisor: a call failed")
            answer = {"message": jsonrpc.error(None, jsonrpc.INTERNAL_ERROR, f"The proxy failed: {type(exc).__name__}")}
        self.wfile.write(dumps(answer) + b"\n")


    def listen(self, request: dict[str, Any]) -> None:
        """A listen op: this connection carries the listener's notifications until it ends, or the worker leaves."""
        supervisor = self.server.supervisor
        listener = supervisor.listener(request)
        if not isinstance(listener, Listener):
            return self.line({"refused": listener})
        try:
            self.line({"listening": True})
            quiet = 0.0
            while True:
                try:
                    message = listener.queue.get(timeout=LOOK_SECONDS)
                except queue.Empty:
                    if has_left(self.connection):  # the worker's stream ended (its client left): the key's slot
                        return  # goes back now, not at the next keep-alive's failed write
                    quiet += LOOK_SECONDS
                    if quiet >= ALIVE_SECONDS:
                        quiet = 0.0
                        self.line({"alive": True})
                    continue
                quiet = 0.0
                if message is None:
                    return self.line({"end": listener.ended})
                self.line({"note": message})
        except OSError:
            pass  # the worker left (its client did)
        finally:
            supervisor.release(supervisor.notices.leave(listener))

    def line(self, value: dict[str, Any]) -> None:
        self.wfile.write(dumps(value) + b"\n")
        self.wfile.flush()

    def ask(self, message: dict[str, Any]) -> None:
        """A request of its client's the server made during the call this connection waits on (client_requests.py),
        sent before its answer."""
        self.wfile.write(dumps({"ask": message}) + b"\n")
        self.wfile.flush()

    def note(self, message: dict[str, Any]) -> None:
        """A progress notification for the call this connection waits on, sent before its answer."""
        self.wfile.write(dumps({"note": message}) + b"\n")
        self.wfile.flush()


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, supervisor: Supervisor, starter: int = 0) -> None:
        self.supervisor = supervisor
        self.starter = starter  # the master (or a worker that started its own): it and its children may connect
        old = os.umask(0o177)  # the socket: its owner only
        try:  # bound and listening under another name first: the master waits for PATH, then workers connect
            super().__init__(path + ".new", Handler)
        finally:
            os.umask(old)
        os.rename(path + ".new", path)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Not a server it runs: a process of the same user, which could call any server in any session."""
        if not self.starter or room.started_by(request, self.starter):
            return True
        log.warning("mcp supervisor: a connection from a process that is no worker of this proxy was refused")
        return False


def configure_log(servers: list[McpServer], redis_url: str = "") -> None:
    """The master's stderr, as the workers log; the servers' env values, header values and tokens never in it
    (nor REDIS_URL)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s"))
    tokens = [os.environ.get(s.bearer_token_env, "") for s in servers if s.bearer_token_env]
    handler.addFilter(LogFilter(Secrets([*tokens, redis_url, *(v for s in servers for _, v in (*s.env, *s.headers))])))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def read_servers(line: bytes) -> list[McpServer]:
    """The entries the master wrote (launch.py: each McpServer's fields), lists back to tuples."""
    servers = []
    for entry in json.loads(line):
        fields: dict[str, Any] = {k: tuple(map(tuple, v)) if k in ("env", "headers") else tuple(v) if k in ("args", "scopes")
                                  else v for k, v in entry.items()}
        servers.append(McpServer(**fields))
    return servers


def main(argv: list[str]) -> int:
    socket_path, rundir = argv
    room.undumpable()  # before the servers' entries (their env, tokens) are read: out of the servers' reach
    servers = read_servers(sys.stdin.buffer.readline())
    options = json.loads(sys.stdin.buffer.readline() or b"{}")
    configure_log(servers, str(options.get("redis_url") or ""))
    homes = os.path.join(rundir, "home")
    os.makedirs(homes, mode=0o700, exist_ok=True)  # before the room is built: granted as it is then
    held = [*(options.get("held") or ()), *shared_places(rundir, socket_path)]
    enter_room(room.build(held, written_places(servers, homes)))
    supervisor = Supervisor(servers, rundir, options)
    unix = UnixServer(socket_path, supervisor, starter=os.getppid())
    threading.Thread(target=unix.serve_forever, daemon=True).start()
    supervisor.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the master, which stops us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    threading.Thread(target=master_gone, args=(done,), daemon=True).start()
    done.wait()
    supervisor.stop()
    unix.server_close()
    try:
        os.unlink(socket_path)
    except OSError:
        pass
    return 0


def enter_room(built: room.Room) -> None:
    """The room every stdio server of this supervisor starts in; what it does not hold said once."""
    stdio_server.ROOM = built
    if built.missing:
        log.warning("MCP: %s", built.missing)


def master_gone(done: threading.Event) -> None:
    """The pipe from the master ends when the master does, however it ends (even SIGKILL). Read from the file
    descriptor, not sys.stdin: a supervisor retired by SIGTERM (a reload) leaves while this thread still waits, and
    the interpreter's shutdown stopped on the buffered reader's lock ("Fatal Python error: _enter_buffered_busy")."""
    while os.read(sys.stdin.fileno(), 65536):
        pass
    done.set()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
