"""The supervisor: the one process per proxy instance that owns its stdio MCP servers, so that Gunicorn's
workers share one set (not one per worker) and a worker's restart leaves them running.

The Gunicorn master starts it (argoproxy/mcp/launch.py, from the server hooks) as `python -m
argoproxy.mcp.supervisor SOCKET RUNDIR`, writes the servers' entries as one JSON line on its stdin and keeps
that pipe open: when the master goes, however it goes, the supervisor reads the pipe's end and stops every
server. The workers reach it over the Unix socket SOCKET (mode 0600 in RUNDIR, mode 0700), a connection per
call at a time (kept open for the next), one JSON line each way (argoproxy/mcp/link.py):

  {"op": "call", "server": NAME, "message": {...}, "timeout": SECONDS} -> {"message": {...}}
      (with "notes": true, the server's progress notifications for it come first: {"note": {...}} lines;
      with "session": ID and "owner": KEY, the call is made only in a session of that owner's, and its answer
      says so, "session": "checked"; else it is {"session": "refused"}: a request's call is its session check)
  {"op": "notify", "server": NAME, "message": {...}}                   -> {}
  {"op": "cancel", "session": ID, "id": REQUEST_ID}                     -> {"cancelled": true|false}
  {"op": "status"}                                                     -> {"servers": [...]}
  {"op": "session", "action": "new"|"get"|"end", ...}                  -> the session's record

It also holds the 2025-11-25 sessions of this instance (Mcp-Session-Id), which any worker may be asked about."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socketserver
import sys
import threading
import time
from typing import Any, Callable

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.remote_server import RemoteServer
from argoproxy.mcp.stdio_server import StdioServer
from argoproxy.redaction import LogFilter, Secrets

log = logging.getLogger("cot_proxy")

MAX_REQUEST = 32 * 1024 * 1024
MAX_SESSIONS = 10_000
MAX_PER_OWNER = 1_000  # one key's (or this machine's, with auth off) sessions at once
SESSION_IDLE = 24 * 3600.0


class Sessions:
    """2025-11-25 sessions: id -> (the key that opened it, the revision it speaks, last use)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}

    def act(self, request: dict[str, Any]) -> dict[str, Any]:
        action, now = request.get("action"), time.monotonic()
        with self.lock:
            if action == "new":
                owner = str(request.get("owner", ""))
                self._trim(now, owner)
                sid = secrets.token_urlsafe(24)
                self.records[sid] = {"owner": owner, "version": str(request.get("version", "")), "used": now}
                return {"id": sid}
            record = self.records.get(str(request.get("id", "")))
            if record is None or record["owner"] != str(request.get("owner", "")):
                return {}  # another key's session is no session for this one
            if action == "end":
                del self.records[str(request["id"])]
                return {"ended": True}
            record["used"] = now
            return {"version": record["version"]}

    def _trim(self, now: float, owner: str) -> None:
        """Room for one more of `owner`'s: idle sessions go, then its own least recently used past its share (one
        key opening sessions in a loop ends only its own), then anyone's least recently used."""
        for sid in [s for s, r in self.records.items() if now - r["used"] > SESSION_IDLE]:
            del self.records[sid]
        own = [s for s, r in self.records.items() if r["owner"] == owner]
        while len(own) >= MAX_PER_OWNER:
            oldest = min(own, key=lambda s: self.records[s]["used"])
            own.remove(oldest)
            del self.records[oldest]
        while len(self.records) >= MAX_SESSIONS:
            del self.records[min(self.records, key=lambda s: self.records[s]["used"])]


class Supervisor:
    def __init__(self, servers: list[McpServer], rundir: str) -> None:
        # A stdio server's process or a remote server's session: one each for the instance, the same to the rest.
        self.servers = {s.name: StdioServer(s, os.path.join(rundir, "home", s.name)) if s.stdio else RemoteServer(s)
                        for s in servers}
        self.sessions = Sessions()

    def start(self) -> None:
        for server in self.servers.values():
            server.start()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def answer(self, request: dict[str, Any], on_note: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"servers": [s.status() for s in self.servers.values()]}
        if op == "session":
            return self.sessions.act(request)
        if op == "cancel":  # the request's server is not named: each looks for it among its calls
            return {"cancelled": any(s.cancel(str(request.get("session", "")), request.get("id"))
                                     for s in self.servers.values())}
        if op == "call" and "owner" in request:  # the call is its session's check: only in its owner's session
            if not self.sessions.act({"action": "get", "id": request.get("session"), "owner": request["owner"]}):
                return {"session": "refused"}
            return {**self.served(op, request, on_note), "session": "checked"}
        return self.served(op, request, on_note)

    def served(self, op: Any, request: dict[str, Any],
               on_note: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        server = self.servers.get(str(request.get("server")))
        message = request.get("message")
        if server is None or not isinstance(message, dict):
            return {"error": "no such server"}
        if op == "notify":
            server.notify(message)
            return {}
        if op == "call":
            timeout = request.get("timeout")
            seconds = float(timeout) if isinstance(timeout, (int, float)) else 60.0
            return {"message": server.call(message, seconds, on_note=on_note if request.get("notes") else None,
                                           session=str(request.get("session", "")))}
        return {"error": "unknown op"}


class Handler(socketserver.StreamRequestHandler):
    server: "UnixServer"

    def handle(self) -> None:
        """The worker's requests, one line each, until it closes the connection (it keeps it for its next calls)."""
        for line in iter(lambda: self.rfile.readline(MAX_REQUEST), b""):
            self.one(line)

    def one(self, line: bytes) -> None:
        try:
            request = json.loads(line)
            answer = self.server.supervisor.answer(request, self.note) if isinstance(request, dict) \
                else {"error": "not an object"}
        except ValueError:
            answer = {"error": "not JSON"}
        except Exception as exc:  # noqa: BLE001 - one bad call must not take the supervisor down
            log.exception("mcp supervisor: a call failed")
            answer = {"message": jsonrpc.error(None, jsonrpc.INTERNAL_ERROR, f"The proxy failed: {type(exc).__name__}")}
        self.wfile.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")


    def note(self, message: dict[str, Any]) -> None:
        """A progress notification for the call this connection waits on, sent before its answer."""
        self.wfile.write(json.dumps({"note": message}, separators=(",", ":")).encode() + b"\n")
        self.wfile.flush()


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        old = os.umask(0o177)  # the socket: its owner only
        try:  # bound and listening under another name first: the master waits for PATH, then workers connect
            super().__init__(path + ".new", Handler)
        finally:
            os.umask(old)
        os.rename(path + ".new", path)


def configure_log(servers: list[McpServer]) -> None:
    """The master's stderr, as the workers log; the servers' env values, header values and tokens never in it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s"))
    tokens = [os.environ.get(s.bearer_token_env, "") for s in servers if s.bearer_token_env]
    handler.addFilter(LogFilter(Secrets([*tokens, *(v for s in servers for _, v in (*s.env, *s.headers))])))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def read_servers(line: bytes) -> list[McpServer]:
    """The entries the master wrote (launch.py: each McpServer's fields), lists back to tuples."""
    servers = []
    for entry in json.loads(line):
        fields: dict[str, Any] = {k: tuple(map(tuple, v)) if k in ("env", "headers") else tuple(v) if k == "args"
                                  else v for k, v in entry.items()}
        servers.append(McpServer(**fields))
    return servers


def main(argv: list[str]) -> int:
    socket_path, rundir = argv
    servers = read_servers(sys.stdin.buffer.readline())
    configure_log(servers)
    supervisor = Supervisor(servers, rundir)
    unix = UnixServer(socket_path, supervisor)
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


def master_gone(done: threading.Event) -> None:
    """The pipe from the master ends when the master does, however it ends (even SIGKILL)."""
    while sys.stdin.buffer.read(65536):
        pass
    done.set()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
