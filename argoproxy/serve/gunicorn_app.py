"""Gunicorn: its options from the Settings (one source for gunicorn.conf.py and `python cot_proxy.py`),
and the embedded application used by the command line."""

from __future__ import annotations

import errno
import io
import logging
import os
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn

from argoproxy.config import listener
from argoproxy import providers
from argoproxy.config.backend_choice import target_unused_by
from argoproxy.config.code_loaders import loads_code
from argoproxy.config.setting_fields import dir_problem
from argoproxy.config.unconfigured import refusal
from argoproxy.observe.journal import JOURNAL_FILES, log_lines
from argoproxy.redaction import configured_secrets, mask_url
from argoproxy.leaving import leave_at_once
from argoproxy.config.price_settings import NO_TABLE, SHIPPED as SHIPPED_TABLE, refreshed_table
from argoproxy.config.settings import BadValue, Loaded, Settings, SettingsError, load
from argoproxy.config.tracing_settings import endpoint, tracing_on

# Idle client connections are kept this long for reuse; short, because Gunicorn's graceful shutdown waits
# for idle keep-alive connections too.
KEEPALIVE_SECONDS = 5
# What a request's head may hold, read whole by Gunicorn before the app runs: Gunicorn's defaults, set here so they
# stay bounded (0 would mean no limit to Gunicorn) and are the proxy's to document. Over them: 414 or 431, in the
# API's error shape (serve/gunicorn_errors.py). A request line counts without its CRLF, a header line with it.
HEAD_LIMITS = {"limit_request_line": 4094, "limit_request_fields": 100, "limit_request_field_size": 8190}
# Set in the Gunicorn master that printed the warnings and the start-up line; forked workers inherit it.
_announced = False
# The settings the master last loaded whole (at start, or re-read on SIGHUP): what a worker serves with when the
# files have gone bad since. Inherited by forked workers.
_good: Loaded | None = None
_refusal: str | None = None  # the reload the master refused, said once: its workers do not say it again
WORKER_BOOT_ERROR = 3  # a worker's exit code that stops Gunicorn's master instead of starting another worker


def checked(flags: Mapping[str, Any] | None = None, serving: bool = True) -> Loaded:
    """The settings as they are now (`.env` first); SettingsError names a bad one. To serve, LOG_DIR must take
    the journals (`keys` and `--show`, which an admin may run as another user, do not write there), and
    something must name the upstream (argoproxy/config/unconfigured.py)."""
    read_dotenv()
    loaded = load(with_bound_port(flags))
    from argoproxy.fronts import passthrough_refused  # the API doors' registry (light: no backend, no requests)
    refused = passthrough_refused(loaded.settings.fronts_passthrough)
    if refused:
        raise BadValue(f"FRONTS_PASSTHROUGH: {refused}")
    problem = dir_problem(loaded.settings.log_dir, JOURNAL_FILES) if serving and loaded.settings.log_dir else None
    if problem:  # one line naming it when serving starts, not a traceback per worker
        raise BadValue(f"LOG_DIR: {problem}")
    unconfigured = refusal(loaded) if serving else None
    if unconfigured:  # never OpenAI's public API by default with no key (argoproxy/config/unconfigured.py)
        raise unconfigured
    table = loaded.settings.prices.table
    if serving and table == SHIPPED_TABLE:  # the user's refreshed table, when there is one, is checked as theirs
        table = str(refreshed_table() or SHIPPED_TABLE)
    if serving and table not in (SHIPPED_TABLE, NO_TABLE):
        from argoproxy.spend import table_problem  # read here once: a worker would fail its first priced call
        problem = table_problem(table)
        if problem:
            raise BadValue(f"PRICES: {problem}")
    return loaded


def with_bound_port(flags: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Under `gunicorn -b HOST:PORT` the proxy listens on that port, not PORT's: the settings say so, and the
    check of an upstream that is this proxy itself (a loop) compares with it. One TCP port bound; --port wins."""
    from gunicorn.util import parse_address

    binds = [bind for bind in gunicorn_binds_given() if not bind.startswith(("unix:", "fd://"))]
    ports = {int(parse_address(bind)[1]) for bind in binds}
    if len(ports) != 1 or (flags and "port" in flags):
        return flags
    return {**(flags or {}), "port": ports.pop()}


def loaded_or_exit(flags: Mapping[str, Any] | None = None, serving: bool = False) -> Loaded:
    """Load the settings; a bad one ends the process with one line naming it (exit code 2)."""
    try:
        return checked(flags, serving)
    except SettingsError as exc:
        print(f"cot_proxy: bad setting {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def reloaded(flags: Mapping[str, Any] | None = None) -> Loaded:
    """The settings again, for a worker starting or the master re-reading its config on SIGHUP: as they are
    now, or, when the files have gone bad since the master loaded them, the master's with one line saying so
    (a typo in config.yaml followed by a reload, or a worker replaced after one, must not stop the serving).
    With no master's settings to keep (`gunicorn cot_proxy:app` without gunicorn.conf.py), exit 3: Gunicorn
    stops at a worker that cannot boot, where it would start one after another for ever at any other code."""
    global _refusal
    try:
        return checked(flags)
    except SettingsError as exc:
        if _good is None:
            print(f"cot_proxy: bad setting {exc}", file=sys.stderr, flush=True)
            raise SystemExit(WORKER_BOOT_ERROR) from None
        if str(exc) != _refusal:
            print(f"cot_proxy: warning: settings not reloaded, bad setting {exc}; serving on with those in force "
                  "before", file=sys.stderr, flush=True)
            _refusal = str(exc)
        return _good


def startup_options(flags: Mapping[str, Any] | None = None) -> tuple[Settings, dict[str, Any]]:
    """For Gunicorn's master (gunicorn.conf.py, `python cot_proxy.py`, the console scripts): the settings,
    their warnings printed once, and Gunicorn's options (whose start-up line says why this backend)."""
    global _announced, _good, _refusal
    if _announced:  # Gunicorn's master re-reading its config (SIGHUP): the port is its own already
        loaded = reloaded(flags)
        if loaded is not _good:
            _refusal = None
    else:
        loaded = loaded_or_exit(flags, serving=True)
        given = gunicorn_binds_given()
        if given:  # `gunicorn -b ADDRESS` (its command line wins over this file's bind): that is what must be free
            binds_free_or_exit(given)
        else:
            port_free_or_exit(loaded.settings, port_label(loaded.settings, flags),
                              setting_label(loaded.settings, flags, "host", "HOST", "--host"))
        socket_free_or_exit(loaded.settings, setting_label(loaded.settings, flags, "socket", "SOCKET", "--socket"))
    if loaded is not _good:  # Gunicorn's configuration reads them again after run() did: what was said, once
        print_warnings(loaded, _good.warnings if _good is not None else ())
        print_free_upstreams(loaded.settings, reasked=_good is not None and loaded.settings != _good.settings)
    _announced, _good = True, loaded
    return loaded.settings, gunicorn_options(loaded.settings, loaded.backend_reason)


def port_label(settings: Settings, flags: Mapping[str, Any] | None = None) -> str:
    """Where the port in force came from, as a user would set another: the flag, PORT, or the config's key."""
    return setting_label(settings, flags, "port", "PORT", "--port")


def setting_label(settings: Settings, flags: Mapping[str, Any] | None, key: str, env: str, flag: str) -> str:
    """Where a listening setting in force came from: its flag, its variable, or the config's key."""
    if flags and key in flags:
        return flag
    if env in os.environ or settings.config_path in ("", os.devnull):  # the demo reads /dev/null: no config
        return env
    return f"{key} (in {settings.config_path})"


def port_free_or_exit(settings: Settings, label: str = "PORT", host_label: str = "HOST") -> None:
    """A port in use, a host this machine has no address for or cannot resolve, a port that needs root: one
    line and exit code 2, at once (Gunicorn would try five times over five seconds and print ten ERROR lines).
    Not when Gunicorn is handed its sockets (USR2 upgrade, systemd activation)."""
    if "GUNICORN_FD" in os.environ or "LISTEN_FDS" in os.environ or settings.socket:
        return
    address_free_or_exit(settings.host, settings.port, label, host_label)


def binds_free_or_exit(binds: list[str]) -> None:
    """Each TCP address of Gunicorn's -b as port_free_or_exit checks the settings' (a Unix socket or a
    descriptor: Gunicorn's own check)."""
    from gunicorn.util import parse_address
    if "GUNICORN_FD" in os.environ or "LISTEN_FDS" in os.environ:
        return
    for bind in binds:
        address = parse_address(bind) if not bind.startswith(("unix:", "fd://")) else None
        if isinstance(address, tuple):
            address_free_or_exit(address[0], int(address[1]), f"-b {bind}", f"-b {bind}")


def address_free_or_exit(host: str, port: int, label: str, host_label: str) -> None:
    """One line and exit 2 for an address that cannot be listened on (label: the setting or flag that named it)."""
    shown = host
    host = host.strip("[]")  # an IPv6 literal as a URL writes it ([::1]) or bare
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Gunicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except socket.gaierror:
            _exit(f"{host_label}: `{shown}` is neither an address nor a host name this machine can resolve")
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                _exit(f"{label}: port {port} on {shown} is already in use (another server, or this "
                      "proxy started twice): stop it or choose another port")
            if exc.errno == errno.EADDRNOTAVAIL:
                _exit(f"{host_label}: this machine has no address {shown} to listen on (127.0.0.1: this "
                      "machine only; 0.0.0.0: every interface)")
            if exc.errno == errno.EACCES:
                _exit(f"{label}: port {port} needs privileges this user does not have: choose one above 1023")
            # anything else: Gunicorn's own error says it


def socket_free_or_exit(settings: Settings, label: str = "SOCKET") -> None:
    """SOCKET's path: free, or a socket nobody answers on (left by a proxy that was killed; Gunicorn replaces
    it). Gunicorn replaced a live one too, so a second start took the first one's clients, and it stopped on
    a file or a directory with a traceback."""
    if not settings.socket or "GUNICORN_FD" in os.environ or "LISTEN_FDS" in os.environ:
        return
    path = Path(settings.socket).expanduser().absolute()
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        _exit(f"{label}: cannot use {path}: {exc.strerror}")
    if not stat.S_ISSOCK(mode):
        _exit(f"{label}: {path} exists and is not a socket: remove it or choose another path")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except OSError:
            return  # nobody listens there
    _exit(f"{label}: {path} is in use (another server, or this proxy started twice): stop it or choose another path")


def _exit(message: str) -> NoReturn:
    print(f"cot_proxy: bad setting {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def print_warnings(loaded: Loaded, said: tuple[str, ...] = ()) -> None:
    for warning in loaded.warnings:
        if warning not in said:
            print(f"cot_proxy: warning: {warning}", file=sys.stderr, flush=True)


def print_free_upstreams(settings: Settings, reasked: bool = False) -> None:
    """Which upstreams cost nothing and why, and those at a private address that do not say what they are
    (serve/free_upstreams.py: asked here, before the workers are forked; again when the settings changed). What
    was said is not said again (Gunicorn's configuration reads the settings again after run() did)."""
    from argoproxy.serve.free_upstreams import report
    lines = report(settings, reasked)
    for line in lines:
        if line not in _free_said:
            print(line, file=sys.stderr, flush=True)
    _free_said[:] = lines


_free_said: list[str] = []


def worker_settings() -> Settings:
    """The settings of a worker building the app. Started as `gunicorn cot_proxy:app` where no gunicorn.conf.py
    is read, no master said where requests go: each worker says it (with the warnings), Gunicorn's own
    options being in force rather than the settings' workers and worker class."""
    loaded = reloaded()
    if not _announced:
        print_warnings(loaded)
        print_free_upstreams(loaded.settings)
        for warning in listener.bind_warnings(loaded.settings, _command_line_binds(), os.environ):
            print(f"cot_proxy: warning: {warning}", file=sys.stderr, flush=True)
        mode = describe_mode(loaded.settings)
        if loaded.backend_reason and not loaded.settings.models:
            mode += f"; {loaded.settings.backend} backend: {loaded.backend_reason}"
        if _default_url(loaded.settings):
            mode += ", the default URL: TARGET_BASE_URL sets another"
        print(f"cot_proxy worker {os.getpid()} serving ({mode}; started without gunicorn.conf.py: Gunicorn's "
              "own options apply)", file=sys.stderr, flush=True)
    return loaded.settings


def gunicorn_binds_given() -> list[str]:
    """The binds Gunicorn's own command line gives (-b, --bind; else GUNICORN_CMD_ARGS'), which win over
    gunicorn.conf.py's: none when it gives none, or outside a Gunicorn process."""
    if "gunicorn" not in Path(sys.argv[0]).as_posix():
        return []
    from gunicorn.config import Config

    cfg = Config()
    parser = cfg.parser()
    try:
        given = [args.bind for args in (parser.parse_known_args()[0],
                                        parser.parse_known_args(cfg.get_cmd_args_from_env())[0]) if args.bind]
    except SystemExit:  # Gunicorn parsed the same words already: it would have stopped on them
        return []
    return list(given[0]) if given else []


def _command_line_binds() -> list[str]:
    """What a Gunicorn started without gunicorn.conf.py binds, read as it reads it: its command line over
    GUNICORN_CMD_ARGS over its default (0.0.0.0:$PORT when PORT is set, which the proxy's users often do).
    Nothing outside a Gunicorn process (an app built in-process)."""
    if "gunicorn" not in Path(sys.argv[0]).as_posix():
        return []
    from gunicorn.config import Config

    cfg = Config()
    parser = cfg.parser()
    try:
        for args in (parser.parse_known_args(cfg.get_cmd_args_from_env())[0], parser.parse_known_args()[0]):
            if args.config is not None:
                return []  # a config file of the user's own may bind elsewhere: not read here, not guessed
            if args.bind is not None:
                cfg.set("bind", args.bind)
    except SystemExit:  # Gunicorn's master parsed the same words already: it would have stopped on them
        return []
    return list(cfg.bind)


def read_dotenv(directory: Path | None = None) -> Path | None:
    """`.env` in the working directory, read with python-dotenv: each variable it sets joins the environment
    unless the environment already has it. So: config.yaml < .env < environment < flags. A variable that loads
    code (LD_PRELOAD, PYTHONPATH...: config/code_loaders.py) is never taken from it, and is named on stderr."""
    from dotenv import dotenv_values

    path = (directory or Path.cwd()) / ".env"
    if not path.is_file():
        return None
    values = dotenv_values(stream=io.StringIO(dotenv_text(path)))
    skipped = sorted(name for name in values if loads_code(name))
    if skipped:
        print(f"warning: {path} sets {', '.join(skipped)}, which load code: left out (set them in the environment "
              "if you mean them)", file=sys.stderr)
    for name, value in values.items():
        if value is not None and name not in os.environ and not loads_code(name):
            os.environ[name] = value
    return path


def dotenv_text(path: Path, label: str = ".env") -> str:
    """An env file's text once every line of it reads as NAME=value (BadValue naming the line otherwise)."""
    from dotenv.parser import parse_stream

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadValue(f"{label}: cannot read {path}: {exc}") from None
    for binding in parse_stream(io.StringIO(text)):  # python-dotenv logs and skips such a line, in every process
        if binding.error:
            raise BadValue(f"{label}: line {binding.original.line} of {path} is not NAME=value (its setting would "
                           "be left out)")
    return text


# Lines ./run_app.sh hands over its exec (a request to paste, the agent line): printed once the server listens,
# as the start's last lines, and taken out of the environment before any worker is forked.
READY_LINES_ENV = "COT_PROXY_READY_LINES"


def _when_ready(settings: Settings, backend_reason: str):
    def when_ready(server) -> None:
        # Gunicorn's own command line (-b, -w, -k) wins over the settings: say what it really serves.
        line = startup_line(settings, backend_reason, server.cfg)
        print(line, file=sys.stderr, flush=True)
        warnings = [f"cot_proxy: warning: {w}" for w in listener.bind_warnings(settings, list(server.cfg.bind), os.environ)]
        for warning in warnings:
            print(warning, file=sys.stderr, flush=True)
        if settings.log_dir:  # the system log says what started, as stderr does (it stayed empty without DEBUG)
            said = [f"cot_proxy: warning: {w}" for w in (_good.warnings if _good else ())]
            log_lines(settings.log_dir, [line, *said, *warnings], configured_secrets(settings))
        # ./run_app.sh's last lines (argoproxy/firstrun.py): a request to paste and the agent line, once it listens
        ready = os.environ.pop(READY_LINES_ENV, "")
        if ready:
            print(ready, flush=True)
    return when_ready


def startup_line(settings: Settings, backend_reason: str = "", cfg: Any = None) -> str:
    """"cot_proxy listening on URL (mode[; why this backend][, the default URL], N workers)". `cfg`: Gunicorn's
    configuration in force, when known (its bind, workers and worker class may come from its own flags)."""
    parts = [describe_mode(settings)]
    if backend_reason and not settings.models:  # routing: the top-level backend serves no model by itself
        parts[0] += f"; {settings.backend} backend: {backend_reason}"
    if _default_url(settings):
        parts.append("the default URL: TARGET_BASE_URL sets another")
    workers, worker_class, where = settings.workers, settings.worker_class, listen_address(settings)
    if cfg is not None:
        workers, where = cfg.workers, ", ".join(map(_bind_address, cfg.bind))
        if cfg.worker_class_str in ("gevent", "gthread", "sync"):
            worker_class = cfg.worker_class_str  # else the settings' class (or its fast-path version)
    parts.append(plural(workers, f"{worker_class} worker"))
    if tracing_on(settings.tracing, os.environ):  # where the spans go: one line to check before the first arrives
        parts.append(f"spans to {mask_url(endpoint(os.environ))}")
    return f"cot_proxy listening on {where} ({', '.join(parts)})"


def listen_address(settings: Settings) -> str:
    if settings.socket:
        return f"unix:{settings.socket}"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def bind_options(settings: Settings) -> dict[str, Any]:
    """Gunicorn's bind: HOST:PORT, or the Unix socket (its directory made private, the socket mode 0600)."""
    if not settings.socket:
        host = settings.host
        if ":" in host and not host.startswith("["):  # an IPv6 literal: Gunicorn splits host:port at the last ':'
            host = f"[{host}]"
        return {"bind": f"{host}:{settings.port}"}
    return {"bind": f"unix:{listener.private_socket_path(settings.socket)}", "umask": listener.SOCKET_UMASK}


def _bind_address(bind: str) -> str:
    return bind if bind.startswith(("unix:", "fd://")) else f"http://{bind}"


def _default_url(settings: Settings) -> bool:
    return not settings.models and not target_unused_by(settings.backend) and \
        settings.target_base_url == providers.DEFAULT_TARGET_URLS.get(settings.backend)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def describe_mode(settings: Settings) -> str:
    """What the proxy serves and where it sends requests (URL credentials masked)."""
    if settings.models:
        return describe_routing(settings)
    return providers.get(settings.backend).startup_line(settings)


def describe_routing(settings: Settings, shown: int = 6) -> str:
    """Routing mode (`models`): the names it serves and the upstreams they go to, e.g. "routing 2 models
    (gemma, claude-*) -> openai at http://127.0.0.1:8080/v1/, argo at https://...". The top-level backend and
    TARGET_BASE_URL serve nothing here unless an entry uses them."""
    from argoproxy.redaction import mask_url
    from argoproxy.config.routing_settings import entry_url
    names = list(dict.fromkeys(e.name for e in settings.models))
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    upstreams = dict.fromkeys(f"{e.backend} at {mask_url(entry_url(settings, e))}" for e in settings.models)
    return f"routing {plural(len(names), 'model')} ({', '.join(names[:shown])}{more}) -> {', '.join(upstreams)}"


def gunicorn_options(settings: Settings, backend_reason: str = "") -> dict[str, Any]:
    from argoproxy.serve import gunicorn_errors
    gunicorn_errors.install()  # read by the master: every forked worker answers its own errors as JSON
    options: dict[str, Any] = {
        **bind_options(settings),
        "workers": settings.workers,
        "worker_class": settings.worker_class,
        "timeout": settings.gunicorn_timeout,
        "graceful_timeout": settings.graceful_timeout,
        "keepalive": KEEPALIVE_SECONDS,
        **HEAD_LIMITS,
        "accesslog": None,  # DEBUG: the proxy's own line per request (observe/logs.py), which covers every route
        "errorlog": "-",
        "loglevel": "info" if settings.debug else "warning",
        "when_ready": _when_ready(settings, backend_reason),
        # Gunicorn's control socket (~/.gunicorn/gunicorn.ctl) serves nothing here: it failed with an ERROR where
        # HOME is not writable (the Docker image) and instances on one host replaced each other's.
        "control_socket_disable": True,
    }
    if settings.worker_class == "gthread":
        options["threads"] = settings.threads
    if settings.worker_class == "gevent":
        options["worker_connections"] = settings.worker_connections
        if settings.workers > 1 and settings.fast_path == "on":
            from argoproxy import fastpath  # Gunicorn's gevent worker, spreading connections evenly
            options["worker_class"] = fastpath.BALANCED_GEVENT_WORKER
    options.update(_hook_options(settings))
    options["post_worker_init"] = _ignoring_terminal_interrupt(options.get("post_worker_init"))
    options["worker_int"] = _quit_now
    return options


def _ignoring_terminal_interrupt(inner: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """Ctrl+C in a terminal sends SIGINT to every process of its group: the master stops the workers itself
    (SIGQUIT), so workers leave SIGINT to it instead of quitting a second time on their own.

    SIGQUIT itself goes straight to the quick stop (_quit_now). Gunicorn's gthread worker first shuts its thread
    pool down from the signal handler, which takes the pool's lock; when the signal lands while the main thread
    is inside the pool's submit (accepting a connection), that lock is already held by the same thread and the
    worker hangs until the master kills it at graceful_timeout (30 s after Ctrl+C; seen in CI, reproduced under
    load). Before this hook no request has been accepted, so Gunicorn's own handler is safe until here."""
    def post_worker_init(worker: Any) -> None:
        from argoproxy.serve.websocket_upgrade import watch_worker  # in the worker: its WebSockets close with 1001
        watch_worker(worker)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, lambda signum, frame: _quit_now(worker))
        if inner is not None:
            inner(worker)
    return post_worker_init


def _quit_now(worker: Any) -> None:
    """Gunicorn's quick stop (SIGQUIT to a worker; Ctrl+C or SIGINT to the master) calls this first: leave
    now. Gunicorn itself would wait 0.1 s and raise SystemExit into whatever the worker was doing, which
    printed tracebacks (a request cut mid-write; a gevent worker whose main loop ended first). Nothing is
    lost: journals are written unbuffered, metrics files are cleaned by the master, and what is held unwritten
    (the stored responses a gevent worker holds in memory, answered already; the keys' usage counted since its
    last write) is written first by the hooks of argoproxy/leaving.py (no atexit runs after os._exit)."""
    worker.alive = False
    leave_at_once(_exit_now)


def _exit_now() -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, RuntimeError, ValueError):  # a write this signal interrupted, a closed stream: leave anyway
            pass
    os._exit(0)


def _hook_options(settings: Settings) -> dict[str, Any]:
    """Process hooks contributed by features that span workers (metrics, generated keys)."""
    hooks: dict[str, Any] = {}
    try:
        from argoproxy.serve import gunicorn_hooks
    except ImportError:
        return hooks
    return gunicorn_hooks.gunicorn_hooks(settings)


def run(flags: Mapping[str, Any]) -> None:
    """Serve under Gunicorn with these flags; workers rebuild the settings (so SIGHUP re-reads config.yaml)."""
    from gunicorn.app.base import BaseApplication

    startup_options(flags)  # the settings checked, once, before Gunicorn starts
    if os.environ.get("GUNICORN_CMD_ARGS"):  # read by Gunicorn's own command (gunicorn -c gunicorn.conf.py) only
        print("cot_proxy: warning: GUNICORN_CMD_ARGS is not read when the proxy starts itself; set WORKER_CLASS, "
              "WORKERS, THREADS, HOST and PORT instead (or start it as `gunicorn -c gunicorn.conf.py "
              "cot_proxy:app`)", file=sys.stderr, flush=True)

    class ProxyApplication(BaseApplication):
        def load_config(self) -> None:
            # Read again on SIGHUP (the files may have changed; bad ones keep the settings in force)
            for key, value in startup_options(flags)[1].items():
                self.cfg.set(key, value)

        def load(self):
            from argoproxy.serve.flask_app import create_app
            return create_app(reloaded(flags).settings)

    logging.getLogger("gunicorn.error").propagate = False
    ProxyApplication().run()
