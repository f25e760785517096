"""One stdio MCP server as the supervisor runs it: its process (started with the environment config gives it,
PATH, LANG, a private HOME and TMPDIR, nothing of the proxy's; in its room, room.py), the initialize handshake made once for all clients, and
the many clients' calls sharing its pipe: each request's id is replaced by one of the pipe's own, and the answer
given back to the caller under the id it sent. When the process dies, the calls in flight end with an error and
it is started again after a pause that doubles (up to MAX_BACKOFF) while it keeps dying young. The server's
requests of its client (sampling, elicitation, roots) go to the one call in flight, or are refused when several
are (client_requests.py: its pipe does not say whose they are).

Runs in the supervisor (argoproxy/mcp/supervisor.py): plain threads, no gevent."""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any, Callable

from argoproxy.config.mcp_servers import McpServer
from argoproxy.jsonfast import dumps, loads
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.client_requests import OFFERED, ClientRequests
from argoproxy.mcp.jsonrpc import progress_token
from argoproxy.mcp.notices import LOGGED, at_or_above, request_level
from argoproxy.mcp.protocol import CLIENT_INFO, HANDSHAKE_VERSION
from argoproxy.mcp.room import Room

log = logging.getLogger("cot_proxy")

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
STEADY_SECONDS = 60.0  # a process that ran this long before dying starts the backoff afresh
HANDSHAKE_SECONDS = 30.0
STOP_SECONDS = 3.0
MAX_LINE = 16 * 1024 * 1024  # the longest message a server may write (a longer one is garbage: skipped)
MAX_STDERR_LINE = 2000
PROGRESS_PREFIX = "cot_proxy-"  # the progress tokens the proxy gives a server: this and the call's own id
KEPT_ENV = ("PATH", "LANG")
TMP_DIR = "tmp"  # the server's TMPDIR, in its HOME
ROOM: Room | None = None  # what the process is kept out of (room.py), set by the supervisor; None: nothing


def server_environment(server: McpServer, home: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What the server's process sees: PATH and LANG from the proxy's, a HOME of its own with its TMPDIR inside
    (a file made directly in a directory holding the proxy's secrets, /tmp for one, is out of its reach: room.py),
    and its config's env (which may set any of them itself); nothing else of the proxy's (its keys, its upstream's
    credentials)."""
    env = {name: environ[name] for name in KEPT_ENV if name in environ}
    env["HOME"], env["TMPDIR"] = home, os.path.join(home, TMP_DIR)
    env.update(server.env)
    return env


def written_places(servers: Iterable[McpServer], homes: str) -> list[str]:
    """Where the supervisor's servers may change files (room.py; the rest they read): `homes`, and the places each
    one's entry names; each server is narrowed to its own at its start (own_places, Room.of)."""
    return [homes, *(path for server in servers for path in named_places(server))]


def own_places(server: McpServer, home: str) -> list[str]:
    """Where one server may change files: `home` (its HOME, its TMPDIR inside), and the places its entry names."""
    return [home, *named_places(server)]


def named_places(server: McpServer) -> list[str]:
    """The HOME and TMPDIR an entry's env sets instead of the proxy's, and the existing directories its args name
    (`/srv/repo`, `--root=/srv/repo`), as a filesystem or git server is pointed at its files."""
    named = [value for name, value in server.env if name in ("HOME", "TMPDIR")]
    named += [arg.partition("=")[2] if arg.startswith("-") else arg for arg in server.args]
    return [path for path in named if os.path.isabs(path) and os.path.isdir(path)]


MAX_NOTES = 1000  # progress notifications relayed for one call at most (more are dropped)
Note = Callable[[dict[str, Any]], None]


class Pending:
    """A call waiting for the server's answer, and the progress token its client gave (replaced on the pipe by
    one of the call's own, as its id is: two clients may give the same)."""

    def __init__(self, client_id: jsonrpc.RequestId | None, token: Any = None, session: str = "",
                 asks: frozenset[str] = frozenset()) -> None:
        self.client_id = client_id
        self.session = session
        self.token = token
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.notes = 0
        self.asks = asks  # what its client may be asked (client_requests.py): sampling, elicitation, roots
        self.asked: set[str] = set()  # the proxy's ids of the server's requests to its client, unanswered
        self.level: str | None = None  # 2026-07-28: the log level its request asked (notices.py's request_level)


def with_token(message: dict[str, Any], token: str | None) -> dict[str, Any]:
    """The message with the progress token replaced (None: taken out, when no one relays its notifications)."""
    params = message["params"]
    meta = {k: v for k, v in params["_meta"].items() if k != "progressToken"}
    if token is not None:
        meta["progressToken"] = token
    return {**message, "params": {**params, "_meta": meta}}


class StdioServer:
    def __init__(self, server: McpServer, home: str, environ: Mapping[str, str] | None = None,
                 popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen) -> None:
        self.server = server
        self.name = server.name
        self.home = home
        self.environ = dict(os.environ if environ is None else environ)
        self.popen = popen
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.ids = itertools.count(1)
        self.issued = 0  # the last id a call was sent under
        self.pending: dict[int, Pending] = {}
        self.client_requests = ClientRequests(self.name, self._write)  # the server's requests of its calls' clients
        self.process: subprocess.Popen[bytes] | None = None
        self.changed = threading.Condition()  # told of each change of state: a call waiting for the start wakes
        self._state = "stopped"  # starting, ready, restarting, stopped
        self.initialized: dict[str, Any] = {}  # the server's initialize result
        self.restarts = 0
        self.last_error = ""
        self.backoff = FIRST_BACKOFF
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.started_at = 0.0
        self.on_notice: Note = lambda message: None  # the supervisor's fan-out of what the server sends unasked

    # ------------------------------------------------------------ life
    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        with self.changed:
            self._state = value
            self.changed.notify_all()

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"mcp-{self.name}", daemon=True).start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self._run_once()
            if self.stopping.is_set():
                break
            lived = time.monotonic() - self.started_at
            self.backoff = FIRST_BACKOFF if lived >= STEADY_SECONDS else min(self.backoff * 2, MAX_BACKOFF)
            self.state = "restarting"
            log.warning("mcp server %s: stopped (%s); starting it again in %.1f s", self.name,
                        self.last_error or "exited", self.backoff)
            self.stopping.wait(self.backoff)
            self.restarts += 1
        self.state = "stopped"

    def _run_once(self) -> None:
        self.state, self.started_at = "starting", time.monotonic()
        for private in (self.home, os.path.join(self.home, TMP_DIR)):
            os.makedirs(private, mode=0o700, exist_ok=True)
        room = None
        try:
            room = ROOM.of(own_places(self.server, self.home)) if ROOM else None  # its own HOME, not the others'
            process = self.popen([self.server.command, *self.server.args], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.home,
                                 env=server_environment(self.server, self.home, self.environ), start_new_session=True,
                                 preexec_fn=room.enter if room else None)
        except (OSError, subprocess.SubprocessError) as exc:  # the latter: its room could not be entered
            self.last_error = f"could not start {self.server.command!r}: {getattr(exc, 'strerror', None) or exc}"
            return
        finally:
            if room is not None:
                room.close()
        self.process = process
        assert process.stdout is not None and process.stderr is not None
        threading.Thread(target=self._stderr, args=(process.stderr,), daemon=True).start()
        handshake = threading.Thread(target=self._handshake, daemon=True)
        handshake.start()
        self._read(process.stdout)  # until the process closes its stdout
        code = process.wait()
        self.ready.clear()
        self.last_error = f"exit status {code}"
        self._fail_pending("The MCP server stopped during the call.")

    def _handshake(self) -> None:
        answer = self.call({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                            "params": {"protocolVersion": HANDSHAKE_VERSION, "capabilities": OFFERED,
                                       "clientInfo": CLIENT_INFO}}, HANDSHAKE_SECONDS, wait_ready=False)
        if "result" not in answer or not isinstance(answer["result"], dict):
            self.last_error = f"initialize failed: {json.dumps(answer.get('error'))[:200]}"
            log.warning("mcp server %s: %s", self.name, self.last_error)
            self._kill()
            return
        self.initialized = answer["result"]
        self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.ready.set()
        self.state = "ready"
        log.info("mcp server %s: ready (pid %s)", self.name, self.process.pid if self.process else "-")

    def stop(self) -> None:
        self.stopping.set()
        with self.changed:  # a call waiting for the start wakes: none is coming
            self.changed.notify_all()
        self._kill()

    def _kill(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:  # the server's whole process group: `npx` and `uvx` start the server as their child
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # ------------------------------------------------------------ calls
    def call(self, message: dict[str, Any], timeout: float, wait_ready: bool = True,
             on_note: Note | None = None, session: str = "", asks: frozenset[str] = frozenset(),
             on_ask: Note | None = None) -> dict[str, Any]:
        """Send a client's request and wait for its answer, under the client's id; the server's progress
        notifications for it go to `on_note` meanwhile, under the client's progress token, and its requests of
        the client that `asks` lets it be asked (client_requests.py) to `on_ask`, under ids of the proxy's."""
        client_id = message.get("id")
        message, level = request_level(message)  # 2026-07-28: its log messages go with it (on_note)
        if wait_ready and not self._up(timeout):
            return jsonrpc.error(client_id, jsonrpc.SERVER_UNAVAILABLE,
                                 f"The MCP server {self.name} is not running ({self.last_error or self.state}).")
        token = progress_token(message)
        pending = Pending(client_id, token if on_note is not None else None, session,
                          asks if on_ask is not None else frozenset())
        pending.level = level if on_note is not None else None
        with self.lock:
            own_id = self.issued = next(self.ids)
            self.pending[own_id] = pending
        sent = {**message, "id": own_id}
        if token is not None:
            sent = with_token(sent, f"{PROGRESS_PREFIX}{own_id}" if on_note is not None else None)
        try:
            if not self._write(sent):
                return jsonrpc.error(client_id, jsonrpc.SERVER_UNAVAILABLE, f"The MCP server {self.name} is not running.")
            return self._wait(pending, own_id, timeout, on_note, on_ask)
        finally:
            with self.lock:
                self.pending.pop(own_id, None)
            if pending.asked:
                self.client_requests.ended(pending)

    def _up(self, timeout: float) -> bool:
        """Whether the server runs: now, or once the start under way ends well (within `timeout`). One whose start
        failed or that exited, waiting out its backoff, is down at once: a listing at /mcp asks every server, and
        must not wait on one that is not coming (a remote server's call is as quick: remote_server.py)."""
        if self.ready.is_set():
            return True
        with self.changed:
            self.changed.wait_for(lambda: self.ready.is_set() or self.stopping.is_set()
                                  or self._state not in ("starting", "stopped"), timeout)
        return self.ready.is_set()

    def _wait(self, pending: Pending, own_id: int, timeout: float, on_note: Note | None,
              on_ask: Note | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                kind, message = pending.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._write({"jsonrpc": "2.0", "method": "notifications/cancelled",
                             "params": {"requestId": own_id, "reason": "timed out at the proxy"}})
                return jsonrpc.error(pending.client_id, jsonrpc.REQUEST_TIMEOUT,
                                     f"The MCP server {self.name} did not answer within {timeout:g} s.")
            if kind == "answer":
                return message
            if kind == "ask" and on_ask is not None:
                on_ask(message)
            elif kind == "note" and on_note is not None:
                on_note(message)

    def cancel(self, session: str, client_id: Any) -> bool:
        """A session's client cancelled its request: the server is told under the call's own id, and the call ends
        now (the server owes no answer to a cancelled request)."""
        with self.lock:
            found = [(own, p) for own, p in self.pending.items()
                     if session and p.session == session and p.client_id == client_id]
        for own_id, call in found:
            self._write({"jsonrpc": "2.0", "method": "notifications/cancelled",
                         "params": {"requestId": own_id, "reason": "cancelled by the client"}})
            call.events.put(("answer", jsonrpc.error(client_id, jsonrpc.REQUEST_CANCELLED, "Request cancelled.")))
        return bool(found)

    def answered(self, session: str, message: dict[str, Any]) -> bool:
        """A client's response to a request the server made of it (client_requests.py), given to the server."""
        return self.client_requests.answered(session, message)

    def notify(self, message: dict[str, Any]) -> None:
        self._write(message)

    def _write(self, message: dict[str, Any]) -> bool:
        process = self.process
        if process is None or process.stdin is None or process.poll() is not None:
            return False
        line = dumps(message) + b"\n"
        try:
            with self.write_lock:
                process.stdin.write(line)
                process.stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def _fail_pending(self, why: str) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        for call in pending.values():
            call.events.put(("answer", jsonrpc.error(call.client_id, jsonrpc.SERVER_UNAVAILABLE, why)))

    # ------------------------------------------------------------ what the server writes
    def _read(self, stdout: IO[bytes]) -> None:
        while True:
            line = stdout.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) > MAX_LINE and not line.endswith(b"\n"):
                log.warning("mcp server %s: a message longer than %d bytes was skipped", self.name, MAX_LINE)
                while line and not line.endswith(b"\n"):
                    line = stdout.readline(MAX_LINE)
                continue
            if line.strip():
                self._received(line)

    def _received(self, line: bytes, stream_of: int | None = None) -> None:
        """A message the server wrote (`stream_of`: the call on whose own stream it came, a remote server's)."""
        try:
            message = loads(line)
        except ValueError:
            log.warning("mcp server %s: wrote a line that is not JSON: %.200r", self.name, line)
            return
        if not isinstance(message, dict):
            log.warning("mcp server %s: wrote JSON that is not a message", self.name)
            return
        if "method" in message:
            if "id" in message:  # a request of the client's (sampling, elicitation, roots)
                if jsonrpc.valid_id(message["id"]):
                    self._asked(message, stream_of)
            elif message["method"] == "notifications/progress":
                self._progress(message)
            else:  # list changes, resource updates, log messages: to the sessions listening (notices.py)
                if message["method"] == LOGGED:
                    self._logged(message, stream_of)
                self.on_notice(message)
            return
        own_id = message.get("id")
        with self.lock:
            call = self.pending.pop(own_id, None) if isinstance(own_id, int) else None
        if call is None:
            if type(own_id) is int and 0 < own_id <= self.issued:  # its call ended first (its client left, a timeout)
                log.debug("mcp server %s: answered call %d after it ended", self.name, own_id)
            else:
                log.warning("mcp server %s: answered a request it was not asked (id %.40r)", self.name, own_id)
            return
        call.events.put(("answer", {**message, "id": call.client_id}))

    def _asked(self, message: dict[str, Any], stream_of: int | None) -> None:
        """A request of the server's goes to the call it belongs to: the one on whose stream it came, or else the
        one call in flight on the server (its pipe says no more); several in flight, or none: refused."""
        with self.lock:
            if stream_of is not None:
                call, why = self.pending.get(stream_of), "its call has ended"
            elif len(self.pending) == 1:
                call, why = next(iter(self.pending.values())), ""
            else:
                call, why = None, ("several calls are in flight on the server, and its requests do not say whose "
                                   "they are" if self.pending else "no call is in flight on the server")
        self.client_requests.received(message, call, why)

    def _logged(self, message: dict[str, Any], stream_of: int | None) -> None:
        """A log message goes with the call that asked for its level (2026-07-28) when it is that call's: it came on
        the call's own stream, or the call is the one in flight on the server (as a request of the client's)."""
        with self.lock:
            call = self.pending.get(stream_of) if stream_of is not None else \
                next(iter(self.pending.values())) if len(self.pending) == 1 else None
        if call is not None and call.level is not None and at_or_above(message, call.level) \
                and call.notes < MAX_NOTES:
            call.notes += 1
            call.events.put(("note", message))

    def _progress(self, message: dict[str, Any]) -> None:
        """A progress notification goes to the call whose token it names, under its client's token."""
        params = message.get("params")
        if not isinstance(params, dict):
            return
        token = params.get("progressToken")
        if not isinstance(token, str) or not token.startswith(PROGRESS_PREFIX) or not token[len(PROGRESS_PREFIX):].isdigit():
            return
        with self.lock:
            call = self.pending.get(int(token[len(PROGRESS_PREFIX):]))
        if call is None or call.token is None:
            return
        if call.notes < MAX_NOTES:  # past it dropped: a flood must not hold the proxy's memory
            call.notes += 1
            call.events.put(("note", {**message, "params": {**params, "progressToken": call.token}}))

    def _stderr(self, stderr: IO[bytes]) -> None:
        for line in iter(lambda: stderr.readline(MAX_STDERR_LINE), b""):
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                log.info("mcp server %s: %s", self.name, text)

    def status(self) -> dict[str, Any]:
        info = self.initialized.get("serverInfo") if isinstance(self.initialized.get("serverInfo"), dict) else {}
        return {"name": self.name, "kind": "stdio", "state": self.state, "restarts": self.restarts,
                "pid": self.process.pid if self.process and self.process.poll() is None else None,
                "error": self.last_error if self.state != "ready" else "",
                "server_info": info, "capabilities": self.initialized.get("capabilities") or {}}
