"""A stdio server marked `per_session: true`: a process of its own for each client session instead of one shared
(docs/mcp.md, "A process per session"), the same to the supervisor as a shared server's StdioServer.

A session's process is started at the session's first call to the server (a listing at /mcp is one), and
stopped when the session ends (DELETE), when it has not been called for IDLE_SECONDS (the sessions' own idle
bound), and when its key is refused by the proxy. Each is a StdioServer: restarted with backoff, its stderr in
the log, its own private HOME. A 2026-07-28 request has no session: its calls go to one process of its key's
(the key is the client there), which ends only idle or with its key.

A session's logging/setLevel is told to its own process (before its first call, when asked before it started).

Bounded: at most `most` processes of the server at once, and `per_key` of one key's; a session past either bound
gets an MCP error naming the server and the setting (LIMITED, as a key's tool limits: nothing is started). A
session's process is its key's alone: a call of another key's never reaches it.

Runs in the supervisor (argoproxy/mcp/supervisor.py): plain threads, no gevent."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from argoproxy.config.mcp_servers import McpServer
from argoproxy.mcp import jsonrpc
from argoproxy.mcp.stdio_server import Note, StdioServer

log = logging.getLogger("cot_proxy")

LIMITED = -32029  # limits.py's: a key's limit reached (HTTP's 429)
IDLE_SECONDS = 24 * 3600.0  # as a session's (sessions.py's SESSION_IDLE)
REAP_SECONDS = 30.0  # how often idle processes are looked for
KEY_SECONDS = 2.0  # how often the team keys owning processes are asked again (only while some run)
LEVEL_SECONDS = 10.0  # a process's logging/setLevel waits for it this long at most
STATELESS = "stateless:"  # the session names stateless.py gives a 2026-07-28 request's calls


@dataclass(frozen=True)
class Bounds:
    most: int = 16  # MCP_SESSION_PROCESSES: processes of one per_session server at once
    per_key: int = 4  # MCP_SESSION_PROCESSES_PER_KEY: of those, one key's


class Process:
    __slots__ = ("server", "owner", "used", "level")

    def __init__(self, server: StdioServer, owner: str) -> None:
        self.server, self.owner, self.used = server, owner, time.monotonic()
        self.level = ""  # the log level it was told (logging/setLevel)


def place_of(session: str, owner: str) -> str | None:
    """Which process a call goes to: its session's, or for a 2026-07-28 request (no session) its key's; None: the
    proxy's own call (no session, no key)."""
    if session.startswith(STATELESS):
        return "key " + owner if owner else None
    return "session " + session if session else None


def hears(place: str, process: Process, session: str, owner: str) -> bool:
    """Whether a listener (its session, its owner) hears the process at `place`: its session's streams, or for a
    key's process that key's 2026-07-28 listen streams; never another key's."""
    return place_of(session, owner) == place and owner == process.owner


class PerSession:
    kind = "stdio"

    def __init__(self, server: McpServer, home: str, bounds: Bounds,
                 make: Callable[[McpServer, str], StdioServer] = StdioServer,
                 owner_of: Callable[[str], str] = lambda session: "") -> None:
        self.server, self.name, self.home, self.bounds, self.make = server, server.name, home, bounds, make
        self.owner_of = owner_of  # a session's owner as the supervisor knows it (without Redis)
        self.lock = threading.Lock()
        self.running: dict[str, Process] = {}  # place -> its process
        self.levels: dict[str, str] = {}  # place -> the log level its session asked (told to its process)
        self.homes = itertools.count(1)
        self.stopping = threading.Event()
        self.ended_restarts = 0  # restarts of processes already stopped (the status's count goes on)
        self.on_notice: Callable[..., None] = lambda message, only: None  # the supervisor's fan-out (notices.py)

    # ------------------------------------------------------------ life
    def start(self) -> None:
        """Nothing runs until a session calls; idle processes are looked for meanwhile."""
        threading.Thread(target=self._reaper, name=f"mcp-{self.name}-idle", daemon=True).start()

    def stop(self) -> None:
        """Every process at once (each may take STOP_SECONDS): the proxy's stop waits for them all together."""
        self.stopping.set()
        with self.lock:
            gone, self.running = list(self.running.values()), {}
        stopping = [threading.Thread(target=self._stopped, args=(process,), daemon=True) for process in gone]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()

    def end(self, session: str) -> bool:
        """The session ended (DELETE, or its idle expiry): its process goes, on a thread of its own (a process
        takes up to a few seconds to stop)."""
        with self.lock:
            self.levels.pop("session " + session, None)
        return self._end(lambda place, _: place == "session " + session)

    def end_owner(self, owner: str) -> bool:
        """The key is refused now (revoked, expired): its processes go."""
        return self._end(lambda _, process: process.owner == owner)

    def reap(self, now: float | None = None) -> bool:
        moment = time.monotonic() if now is None else now
        return self._end(lambda _, process: moment - process.used > IDLE_SECONDS)

    def _end(self, which: Callable[[str, Process], bool]) -> bool:
        with self.lock:
            gone = [place for place, process in self.running.items() if which(place, process)]
            processes = [self.running.pop(place) for place in gone]
        for process in processes:
            threading.Thread(target=self._stopped, args=(process,), daemon=True).start()
        return bool(processes)

    def _stopped(self, process: Process) -> None:
        process.server.stop()
        self.ended_restarts += process.server.restarts
        shutil.rmtree(process.server.home, ignore_errors=True)  # its private HOME: nothing of a session is kept

    def _reaper(self) -> None:
        while not self.stopping.wait(REAP_SECONDS):
            self.reap()

    # ------------------------------------------------------------ calls
    def call(self, message: dict[str, Any], timeout: float, wait_ready: bool = True, on_note: Note | None = None,
             session: str = "", owner: str = "", **more: Any) -> dict[str, Any]:
        """As StdioServer.call, in the process of the call's session (or key): `owner`, whose the call is (the
        worker's word; "" for the supervisor's own calls in a session, taken as the session's process's)."""
        place = place_of(session, owner or self.owner_of(session))
        if place is None:  # the proxy's own listing of tool names (metrics labels): any running process answers it
            process = self._any() if message.get("method") == "tools/list" else None
            if process is None:
                return jsonrpc.error(message.get("id"), jsonrpc.SERVER_UNAVAILABLE,
                                     f"The MCP server {self.name} runs a process per session: call it in a session.")
        else:
            found = self._process(place, owner)
            if isinstance(found, str):
                return jsonrpc.error(message.get("id"), LIMITED, found)
            process = found
            level = self.levels.get(place)
            if level is not None and process.level != level:  # asked before its process started
                told(process, level)
        return process.server.call(message, timeout, wait_ready, on_note, session, **more)

    def set_level(self, session: str, level: str) -> None:
        """The session's logging/setLevel: its process is told now, or before its first call when it has none yet."""
        place = "session " + session
        with self.lock:
            self.levels[place] = level
            process = self.running.get(place)
        if process is not None:
            told(process, level)

    def _process(self, place: str, owner: str) -> Process | str:
        """The place's process, started now when it has none (and the bounds allow): or why not."""
        with self.lock:
            process = self.running.get(place)
            if process is not None:
                if owner and process.owner and process.owner != owner:  # a session is its key's alone (checked
                    return f"The MCP server {self.name}: this session is not this key's."  # before: a backstop)
                process.owner = process.owner or owner
                process.used = time.monotonic()
                return process
            if len(self.running) >= self.bounds.most:
                return (f"The MCP server {self.name} runs a process per session and has {self.bounds.most} now, its "
                        "most (MCP_SESSION_PROCESSES): end a session (DELETE) or try again later.")
            if sum(1 for p in self.running.values() if p.owner == owner) >= self.bounds.per_key:
                return (f"The MCP server {self.name} runs a process per session and this key has "
                        f"{self.bounds.per_key} of them, its most (MCP_SESSION_PROCESSES_PER_KEY): end one of its "
                        "sessions (DELETE) first.")
            process = Process(self.make(self.server, os.path.join(self.home, str(next(self.homes)))), owner)
            self.running[place] = process
            process.server.on_notice = lambda message: self.on_notice(message, functools.partial(hears, place, process))
        process.server.start()
        log.info("mcp server %s: a process for a session of %s (%d running)", self.name, owner or "-",
                 len(self.running))
        return process

    def _any(self) -> Process | None:
        with self.lock:
            return max(self.running.values(), key=lambda p: p.used, default=None)

    def answered(self, session: str, message: dict[str, Any]) -> bool:
        """A client's response to a request one of the processes made of it (client_requests.py)."""
        with self.lock:
            processes = list(self.running.values())
        return any([p.server.answered(session, message) for p in processes])

    def cancel(self, session: str, client_id: Any) -> bool:
        with self.lock:
            processes = list(self.running.values())
        return any(p.server.cancel(session, client_id) for p in processes)

    def notify(self, message: dict[str, Any], session: str = "", owner: str = "") -> None:
        """A client's notification goes to its session's process only (none started for it)."""
        place = place_of(session, owner)
        with self.lock:
            process = self.running.get(place) if place is not None else None
        if process is not None and process.owner == owner:
            process.server.notify(message)

    def owners(self) -> set[str]:
        with self.lock:
            return {p.owner for p in self.running.values()}

    def status(self) -> dict[str, Any]:
        with self.lock:
            processes = [p.server for p in self.running.values()]
        first = next((s for s in processes if s.initialized), None)
        shared = first.status() if first is not None else {}
        return {"name": self.name, "kind": "stdio", "state": "ready", "per_session": True,
                "processes": len(processes), "restarts": self.ended_restarts + sum(s.restarts for s in processes),
                "pid": None, "error": "", "server_info": shared.get("server_info") or {},
                "capabilities": shared.get("capabilities") or {}}


def told(process: Process, level: str) -> None:
    """A process is set to its session's log level (waiting for it to be ready, a while)."""
    process.level = level
    process.server.call({"jsonrpc": "2.0", "id": "cot_proxy-logging/setLevel", "method": "logging/setLevel",
                         "params": {"level": level}}, LEVEL_SECONDS)


class KeyCheck:
    """The team keys that own processes, asked of the key store (KEYS_DB, or Redis) every KEY_SECONDS while any
    run: a key revoked, expired or gone has its processes stopped, as the door refuses its requests. Opened at
    the first need; the store away: asked again next time."""

    def __init__(self, servers: list[PerSession], keys_db: str, redis_url: str, outage: str) -> None:
        self.servers, self.keys_db, self.redis_url, self.outage = servers, keys_db, redis_url, outage
        self.store: Any = None
        self.stopping = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="mcp-session-keys", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        while not self.stopping.wait(KEY_SECONDS):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the store away: asked again next time
                log.warning("mcp: the key store could not be asked about per_session processes (%s)",
                            type(exc).__name__)

    def check(self) -> None:
        owners = {o for server in self.servers for o in server.owners() if o.startswith("key:")}
        if not owners:
            return
        if self.store is None:
            from argoproxy.teamkeys.service import open_store
            self.store = open_store(self.keys_db, self.redis_url, self.outage)
        now = time.time()
        accepted = {"key:" + r.name for r in self.store.records() if r.refusal(now) is None}
        for owner in owners - accepted:
            log.info("mcp: %s is refused now: its per_session processes stop", owner)
            for server in self.servers:
                server.end_owner(owner)
