"""What the Gunicorn master sets up once for all its workers: the Prometheus multiprocess directory, the
generated client API key and the token estimator's vocabulary.

`gunicorn_hooks(settings)` runs in the master when it reads its configuration (gunicorn.conf.py, or
`python cot_proxy.py`), i.e. before any worker is forked and before prometheus_client is imported:

- PROMETHEUS_MULTIPROC_DIR: a fresh temporary directory for this run (removed when the master exits), or
  the directory the operator set, emptied of stale *.db files. Workers inherit the variable, so their
  metrics add up; `child_exit` marks a dead worker so its live gauges (streams in flight) stop counting, and
  gives back what its team-key requests held (argoproxy/teamkeys/local_windows.py: release_dead_worker), the
  admission slots and queue rows it held (argoproxy/admission/cells.py: release_dead_worker) and the places of its
  WebSocket connections (argoproxy/fronts/responses/websocket/places.py: release_dead_worker).
- ENABLE_AUTH without API_KEY_SECRET: one random key, generated here, printed once, and passed to every
  worker in a process-internal environment variable (argoproxy.config.listener.GENERATED_KEY_ENV). Workers that
  Gunicorn restarts later get the same key.
- COT_PROXY_SHARED_DIR: a fresh directory for the cells workers count in together (argoproxy/shared_cells.py).
- WORKERS > 1: the token estimator's vocabulary (argoproxy.meter.tokens), loaded once so that the workers
  share its pages (about 46 MB a worker otherwise).
- MCP_SERVERS: the supervisor of the stdio MCP servers, one process for all workers (argoproxy/mcp/launch.py),
  stopped when the master exits (and by the end of its stdin pipe however the master ends). The master is made
  undumpable first, and so are the workers it forks: a server cannot read their memory, environment or
  descriptors (argoproxy/mcp/room.py).
- TRACING on: each worker starts OpenTelemetry's SDK when it builds its app, after the fork (the master imports
  none of it), and sends the spans it still holds when it exits (worker_exit: flush_traces).
- FAST_PATH=on: the fast path's process-wide patches are installed here, before the fork
  (argoproxy.fastpath.install), and each worker, once it has loaded the app, freezes what it built out of
  the garbage collector's sight (argoproxy.fastpath.tune_worker_gc).

Reloads (SIGHUP) read the configuration again in the same master: both are then reused, not recreated.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
from typing import Any, Callable

from argoproxy.config.listener import GENERATED_KEY_ENV, generate_key
from argoproxy.edge.auth import announce_key
from argoproxy.shared_cells import prepare_shared_dir, remove_shared_dir
from argoproxy.config.settings import Settings
from argoproxy.config.tracing_settings import tracing_on

log = logging.getLogger("cot_proxy")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable (argoproxy.observe.metrics reads it too)
# The pid of the master that created the metrics directory (so a re-exec'd master makes its own).
OWNER_ENV = "COT_PROXY_METRICS_DIR_OWNER"


def gunicorn_hooks(settings: Settings) -> dict[str, Callable[..., Any]]:
    """Gunicorn server hooks (and their one-time setup, done now, in the master)."""
    prepare_metrics_dir()
    prepare_shared_dir()  # cells the workers count in together (key limits, deployment cooldown)
    share_generated_key(settings)
    if settings.workers > 1:
        share_token_encoding()
    if settings.mcp_servers:  # one set of MCP servers for the instance, in a process of its own (argoproxy/mcp/)
        from argoproxy.mcp.launch import start_supervisor, supervisor_options
        start_supervisor(settings.mcp_servers, grace=settings.graceful_timeout, options=supervisor_options(settings))
    elif os.environ.get("COT_PROXY_MCP_SOCKET"):  # (launch.SOCKET_ENV) a reload that removed them: their supervisor goes
        from argoproxy.mcp.launch import retire_supervisor
        retire_supervisor(settings.graceful_timeout)
    hooks: dict[str, Callable[..., Any]] = {"child_exit": child_exit, "on_exit": on_exit, "post_fork": post_fork}
    if tracing_on(settings.tracing, os.environ):
        hooks["worker_exit"] = flush_traces
    if settings.fast_path == "on":
        from argoproxy import fastpath
        fastpath.install()
        hooks["post_worker_init"] = fastpath.tune_worker
    return hooks


def share_token_encoding() -> None:
    """Load the token estimator's vocabulary (about 46 MB) once, here in the master, so that the workers share
    its pages instead of each loading its own copy the first time it counts tokens (the Messages and Responses
    doors, ARGO's usage, budgets, streams without usage: most deployments). With one worker it is left to that
    worker, which may never need it. tiktoken imports neither requests nor urllib3 (gevent patches those first)."""
    from argoproxy.meter import token_encoding
    token_encoding()


def post_fork(server, worker) -> None:
    """In a new worker, before Gunicorn installs its own signal handlers (gevent's monkey-patching comes
    first): a stop signal arriving in that window would reach the handler inherited from the master and be
    lost, and the worker would then serve on until the master SIGKILLs it at graceful_timeout (a SIGTERM or
    SIGINT just after start-up or just after a worker was replaced hung the shutdown for 30 s). Remember it."""
    import signal

    def early_stop(signum, frame) -> None:
        worker.alive = False  # Gunicorn's run loop then ends as soon as it starts

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, early_stop)


def flush_traces(server, worker) -> None:
    """A worker ends (TRACING on): the spans its batch processor still holds are sent first. OpenTelemetry is
    imported here, in the worker, which started it when it built its app (argoproxy/tracing/tracer.py)."""
    from argoproxy.tracing import shutdown_tracing
    shutdown_tracing()


def prepare_metrics_dir() -> str:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory for this run; return it."""
    pid = str(os.getpid())
    current = os.environ.get(MULTIPROC_ENV)
    owner = os.environ.get(OWNER_ENV)
    if current and owner == pid:
        return current  # a reload in the same master
    if current and owner is None:
        # Chosen by the operator: use it, without last run's values.
        os.makedirs(current, exist_ok=True)
        for stale in glob.glob(os.path.join(current, "*.db")):
            os.remove(stale)
        return current
    path = tempfile.mkdtemp(prefix="cot_proxy_metrics_")
    os.environ[MULTIPROC_ENV] = path
    os.environ[OWNER_ENV] = pid
    return path


def share_generated_key(settings: Settings) -> str | None:
    """When auth is on without configured keys: the one key every worker accepts (generated once)."""
    if not settings.enable_auth or settings.api_key_secret or settings.api_key_file or settings.key_limits:
        return None
    key = os.environ.get(GENERATED_KEY_ENV)
    if not key:
        key = generate_key()
        os.environ[GENERATED_KEY_ENV] = key
        announce_key(key)
    return key


def child_exit(server, worker) -> None:
    """A worker is gone: its live gauges no longer count, nor its connections on the balancing board."""
    board = getattr(worker, "board", None)  # argoproxy.fastpath.balanced_worker: a worker killed can't clear its slot
    if board is not None:
        board.release(worker.pid)
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)
    from argoproxy.admission import release_dead_worker as release_seats
    from argoproxy.fronts.responses.websocket.places import release_dead_worker as release_sockets
    from argoproxy.teamkeys.local_windows import release_dead_worker as release_holds
    # A worker killed mid-request never gave back what its requests held: team keys' holds (max_parallel, tokens),
    # admission's slots of the deployments they were sent to, and their places in its queue; nor the places of
    # its WebSocket connections.
    for what, release, told in (("team keys", release_holds, "requests in flight; their holds are given back"),
                                ("admission", release_seats, "requests seated or waiting; their slots are given back"),
                                ("websockets", release_sockets, "WebSocket connections open; their places are given "
                                                                "back")):
        try:
            released = release(worker.pid)
        except OSError as exc:
            log.warning("%s: what worker %s held could not be given back: %s", what, worker.pid, exc)
        else:
            if released:
                log.warning("%s: worker %s ended with %d %s", what, worker.pid, released, told)


def on_exit(server) -> None:
    """The master exits: remove the metrics directory it created."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.environ.get(OWNER_ENV) == str(os.getpid()):
        shutil.rmtree(path, ignore_errors=True)
    remove_shared_dir()
    from argoproxy.mcp.launch import stop_supervisor
    stop_supervisor()  # its stdio MCP servers stop with the proxy
