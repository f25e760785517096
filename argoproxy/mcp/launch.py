"""Starting and stopping the supervisor (argoproxy/mcp/supervisor.py) from the Gunicorn master's hooks
(argoproxy/serve/gunicorn_hooks.py), before any worker is forked; the workers find its socket through
SOCKET_ENV. A reload (SIGHUP) in the same master keeps the running supervisor when the servers are the same,
and starts a new one for the new workers when they changed."""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from argoproxy.config.mcp_servers import McpServer
from argoproxy.config.settings import CONFIG_SEARCH_PATH
from argoproxy.mcp.room import undumpable
from argoproxy.shared_cells import SHARED_DIR_ENV

log = logging.getLogger("cot_proxy")

SOCKET_ENV = "COT_PROXY_MCP_SOCKET"
OWNER_ENV = "COT_PROXY_MCP_OWNER"  # the master that started it (a re-exec'd master starts its own)
START_SECONDS = 10.0
STOP_SECONDS = 10.0
MAX_SOCKET_PATH = 103
SUPERVISOR_ENV = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "PYTHONHOME",
                            "PYTHONNOUSERSITE", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "SSL_CERT_FILE",
                            "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"})
PROXY_ENV = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"})  # either case, as requests reads them
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's: the workers' metrics files
RUN_PREFIX = "cot_proxy_mcp_"  # a supervisor's directory: its socket, its servers' homes
# What every instance of the proxy shares through files, in the temporary directory: the cells its workers count in
# (shared_cells.py), its metrics (serve/gunicorn_hooks.py), its supervisor's directory.
SHARED_PATTERNS = ("cot_proxy_shared_*", "cot_proxy_metrics_*", RUN_PREFIX + "*")
CONFIG_DIRECTORY = "~/.config/argoproxy"  # run_app.sh's first run keeps config.yaml and api_key there
# The directory argoproxy is imported from: the supervisor's interpreter finds it there whatever the working
# directory (`python /srv/cot_proxy/cot_proxy.py` started elsewhere has it on sys.path only through the script).
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_running: subprocess.Popen[bytes] | None = None
_entries: list[object] = []  # what it runs, and its options
_retiring: list[tuple[subprocess.Popen[bytes], str]] = []  # supervisors a reload replaced, until they stop


def supervisor_options(settings: Any) -> dict[str, object]:
    """What the supervisor needs of the settings besides the servers (the line after theirs on its stdin)."""
    return {"held": secret_files(settings), "session_processes": settings.mcp_session_processes,
            "session_processes_per_key": settings.mcp_session_processes_per_key, "redis_url": settings.redis_url,
            "streams": settings.mcp_streams, "streams_per_key": settings.mcp_streams_per_key,
            "user_sessions": settings.mcp_user_sessions_per_server,
            "keys": {"keys_db": settings.keys_db, "redis_outage": settings.redis_outage} if settings.enable_auth
            else None}  # team keys: their processes stop when they are refused (per_session.py's KeyCheck)


def start_supervisor(servers: tuple[McpServer, ...], grace: float = 0.0,
                     options: dict[str, object] | None = None) -> str | None:
    """Start the supervisor of the MCP servers (once per master; again when a reload changed them or its options,
    the new workers then reach the new one, and the old one goes `grace` seconds later, once the old workers have
    finished their calls); return its socket's path."""
    global _running, _entries
    undumpable()  # this process (the master: its workers too, forked after) out of its servers' reach
    entries: list[object] = [[dataclasses.asdict(s) for s in servers], options or {}]  # supervisor.main reads them back
    if os.environ.get(OWNER_ENV) == str(os.getpid()) and _running is not None and _running.poll() is None:
        if entries == _entries:
            return os.environ[SOCKET_ENV]
        log.info("MCP: the servers changed; their supervisor starts again")
        retire_supervisor(grace)
    rundir = tempfile.mkdtemp(prefix=RUN_PREFIX, dir=socket_parent())  # mode 0700: the socket, the homes
    path = os.path.join(rundir, "supervisor.sock")
    process = subprocess.Popen([sys.executable, "-m", "argoproxy.mcp.supervisor", path, rundir],
                               stdin=subprocess.PIPE, start_new_session=True, env=supervisor_environ(servers))
    assert process.stdin is not None
    process.stdin.write(b"".join(json.dumps(line).encode() + b"\n" for line in entries))
    process.stdin.flush()  # the pipe stays open: its end tells the supervisor the master is gone
    deadline = time.monotonic() + START_SECONDS
    while not os.path.exists(path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    _running, _entries = process, entries
    os.environ[SOCKET_ENV], os.environ[OWNER_ENV] = path, str(os.getpid())
    log.info("MCP: %d server(s) behind /mcp (supervisor pid %d)", len(servers), process.pid)
    return path


def supervisor_environ(servers: tuple[McpServer, ...] = ()) -> dict[str, str]:
    """What the supervisor needs of the master's environment, never all of it (the proxy's keys, its upstream's):
    the interpreter's and locale's variables, the proxies and certificates a remote server is reached through and
    the remote servers' tokens (bearer_token_env); the directory argoproxy came from first on PYTHONPATH. Its
    servers get an environment of their own (stdio_server.py)."""
    tokens = {s.bearer_token_env for s in servers if s.bearer_token_env}
    kept = {name: value for name, value in os.environ.items()
            if name in SUPERVISOR_ENV or name.upper() in PROXY_ENV or name.startswith("LC_") or name in tokens}
    paths = [PACKAGE_PARENT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**kept, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def secret_files(settings: Any) -> list[str]:
    """The files and directories holding the proxy's secrets, kept out of its stdio servers' reach (room.py): the
    .env read at start, config.yaml (the one in force, and where one is looked for), API_KEY_FILE, KEYS_DB and the
    stored responses (with SQLite's side files), seal.key beside them, CREDENTIALS_KEY_FILE, the journals (LOG_DIR); and what its workers
    share through files: their cells (COT_PROXY_SHARED_DIR) and metrics (PROMETHEUS_MULTIPROC_DIR, the operator's
    too). Other instances' are held by the supervisor (shared_places)."""
    stores = [path for db in (settings.keys_db, settings.responses_db) if db
              for path in (db, *(db + side for side in SQLITE_SIDE_FILES))]
    sealed = [os.path.join(os.path.dirname(os.path.expanduser(settings.responses_db)), "seal.key")] \
        if settings.responses_db else []
    shared = [os.environ.get(SHARED_DIR_ENV, ""), os.environ.get(METRICS_DIR_ENV, "")]
    paths = [".env", *CONFIG_SEARCH_PATH, CONFIG_DIRECTORY, settings.config_path, settings.api_key_file,
             settings.log_dir, settings.credentials_key_file, *stores, *sealed, *shared]
    return sorted({os.path.abspath(os.path.expanduser(path)) for path in paths if path})


def shared_places(rundir: str, socket_path: str) -> list[str]:
    """Held in the supervisor of `rundir`, as it starts: every instance's shared cells, metrics and supervisor
    directories in the temporary directory (where this user's other proxies keep them too), but its own, where only
    its socket is held (its servers' homes are theirs)."""
    found = {path for parent in {tempfile.gettempdir(), "/tmp"} for pattern in SHARED_PATTERNS
             for path in glob.glob(os.path.join(parent, pattern))}
    return sorted(path for path in found if os.path.realpath(path) != os.path.realpath(rundir)) + [socket_path]


def retire_supervisor(grace: float) -> None:
    """A reload changed or removed the servers: the running supervisor stops in `grace` seconds (Gunicorn's
    graceful timeout: the old workers' calls end first), or at once with the master."""
    global _running
    process, _running = _running, None
    path = os.environ.pop(SOCKET_ENV, "")
    if process is None or os.environ.get(OWNER_ENV) != str(os.getpid()):
        return
    timer = threading.Timer(grace, _stop, (process, path))
    timer.daemon = True
    _retiring.append((process, path))
    timer.start()


def socket_parent() -> str | None:
    """Where the supervisor's directory goes: the temporary directory, unless its path is too long for a Unix
    socket's (at most 103 bytes on macOS, 107 on Linux; a CI runner's or a test's TMPDIR can be longer), then /tmp."""
    longest = len(os.path.join(tempfile.gettempdir(), "cot_proxy_mcp_12345678", "supervisor.sock").encode())
    return None if longest <= MAX_SOCKET_PATH else "/tmp"


def stop_supervisor() -> None:
    """The master exits: the supervisor (and any that a reload retired) stops its servers and goes."""
    global _running
    process, _running = _running, None
    if os.environ.get(OWNER_ENV) != str(os.getpid()):
        return
    while _retiring:
        _stop(*_retiring.pop())
    if process is not None:
        _stop(process, os.environ.pop(SOCKET_ENV, ""))


def _stop(process: subprocess.Popen[bytes], path: str) -> None:
    if process.returncode is None:
        if process.stdin is not None and not process.stdin.closed:
            process.stdin.close()
        try:
            process.terminate()
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if path:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
