"""JSONL interaction journals (openai-forward's client/server logs) and the ``log.log`` file handler.

Owns: ``<log_dir>/client_interaction.jsonl`` (what the client sent and got back),
``<log_dir>/server_interaction.jsonl`` (what went upstream and what came back), the redaction of
secrets in both (argoproxy.redaction does the work), and ``setup_log_file`` for ``<log_dir>/log.log``.

Why the write path looks the way it does:

* Every record is serialised to one complete line and written with ONE ``os.write`` on a file
  descriptor opened ``O_APPEND``. With ``O_APPEND`` the kernel moves to end-of-file and writes as
  one step, and Linux serialises writes to a regular file (inode lock), so lines from several
  Gunicorn worker processes (and threads) never interleave or tear. No Python-level buffering or
  lock is involved, so forked workers sharing an inherited descriptor are just as safe.
  (Not guaranteed on NFS or other network file systems: keep ``log_dir`` local.)
* It does not hold the response back noticeably: the pipeline writes one small line per request
  after the response is done, without ``fsync``; a write into the page cache costs microseconds.
  Large payloads are bounded by truncating base64 data URLs (inline images).
* A body longer than JOURNAL_BODY_BYTES (a request, a whole answer, a stream of any size) is recorded as its
  first JOURNAL_BODY_BYTES bytes, its length and its sha256 (argoproxy.upstream.body_tap), never held whole: a stream's
  answer is assembled for the journal only while it is shorter than that.
* A failing disk never fails a request: write errors are logged and swallowed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Callable

from argoproxy.pipeline.call_records import CallEnd, CallStart
from argoproxy.requestlog import LogRow, RequestIndex
from argoproxy.upstream.body_tap import BodyTap
from argoproxy.redaction import LogFilter, Redactor, Secrets

log = logging.getLogger(__name__)

CLIENT_FILE = "client_interaction.jsonl"
SERVER_FILE = "server_interaction.jsonl"
LOG_FILE = "log.log"
JOURNAL_FILES = (CLIENT_FILE, SERVER_FILE, LOG_FILE)
# A new log directory and its files are its owner's only: on a shared host the journals hold every prompt and
# answer, log.log every path and model (an existing directory or file keeps the mode it was given).
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
TOO_DEEP = {"not_journaled": "nested too deeply"}
# Line breaks json.dumps(ensure_ascii=False) leaves raw (it escapes only ASCII controls).
_UNICODE_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


# Liveness probes (a load balancer's or Kubernetes' /health every few seconds, clients' HEAD /): not
# interactions; journaled, they were most of a quiet proxy's journal.
PROBES = frozenset({"health", "root"})


class Journal:
    """Appends one JSON line per interaction to the client and server JSONL files in ``log_dir``."""

    def __init__(self, log_dir: str | os.PathLike[str], secrets: Iterable[str] = (),
                 body_bytes: int = 1024 * 1024) -> None:
        os.makedirs(log_dir, mode=PRIVATE_DIR, exist_ok=True)
        self.log_dir = os.fspath(log_dir)
        self.body_bytes = body_bytes  # JOURNAL_BODY_BYTES: longer bodies are recorded as a BodyTap summary
        self.redactor = Redactor(secrets)
        self.paths = {"client": os.path.abspath(os.path.join(self.log_dir, CLIENT_FILE)),
                      "server": os.path.abspath(os.path.join(self.log_dir, SERVER_FILE))}
        self._open()
        self._at_lock = threading.Lock()  # a line's write and the reading of where it ended, together

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fds = {name: os.open(path, flags, PRIVATE_FILE) for name, path in self.paths.items()}
        self._pid = os.getpid()

    def add_secret(self, secret: str | None) -> None:
        """Register a value to redact from now on (e.g. the client's own upstream key)."""
        self.redactor.add(secret)

    def record(self, file: str, logging_id: str, input: Any, output: Any, send_mode: str | None = None,
               return_mode: str | None = None, status: int | None = None, latency_ms: float | None = None,
               extra: dict[str, Any] | None = None) -> None:
        """Write one record to the ``"client"`` or ``"server"`` journal (never raises on I/O errors)."""
        self._write(file, self.record_line(file, logging_id, input, output, send_mode, return_mode, status,
                                           latency_ms, extra))

    def record_at(self, file: str, *args: Any, **kwargs: Any) -> tuple[int, int]:
        """`record`, and the line's offset and length in its file (the request log's index); (-1, 0) when it was
        not written."""
        line = self.record_line(file, *args, **kwargs)
        return self._write_at(file, line), len(line)

    def record_line(self, file: str, logging_id: str, input: Any, output: Any, send_mode: str | None = None,
                    return_mode: str | None = None, status: int | None = None, latency_ms: float | None = None,
                    extra: dict[str, Any] | None = None) -> bytes:
        """One record's line, redacted."""
        if file not in self._fds:
            raise ValueError(f"journal file must be 'client' or 'server', not {file!r}")
        entry: dict[str, Any] = {
            "timestamp": datetime.now().astimezone().isoformat(),
            "logging_id": logging_id,
            "input": input,
            "output": output,
            "send_mode": send_mode,
            "return_mode": return_mode,
            "status": status,
            "latency_ms": None if latency_ms is None else round(latency_ms, 3),
        }
        for key, value in (extra or {}).items():
            entry.setdefault(key, value)  # extras never overwrite the core fields
        return self.line(entry)

    def body(self, data: Any, tap: BodyTap | None = None) -> Any:
        """A body as a journal records it: parsed JSON when it is short, else its prefix, length and sha256
        (`tap`: what passed of a streamed or whole answer; bytes are measured here)."""
        if tap is None and isinstance(data, (bytes, bytearray)) and len(data) > self.body_bytes:
            tap = BodyTap.of(bytes(data), self.body_bytes)
        if tap is not None and tap.over:
            summary = tap.summary()
            summary["prefix"] = self.redactor.cut_partial(summary["prefix"])
            return summary
        if isinstance(data, (bytes, bytearray)):
            try:
                return json.loads(data) if data else None
            except (ValueError, UnicodeDecodeError):
                return {"non_json_bytes": len(data)}
            except RecursionError:
                return TOO_DEEP
        return data

    def line(self, entry: dict[str, Any]) -> bytes:
        """The redacted, newline-terminated JSON encoding of one record. A body nested too deeply to walk (an
        upstream's answer: requests are refused past MAX_DEPTH) is noted instead, so the line is still written."""
        try:
            text = json.dumps(self.redactor.value(entry), ensure_ascii=False, separators=(",", ":"), default=str)
        except RecursionError:
            shallow = {k: self._walkable(v) if k in ("input", "output") else v for k, v in entry.items()}
            text = json.dumps(self.redactor.value(shallow), ensure_ascii=False, separators=(",", ":"), default=str)
        # json.dumps escapes ASCII control characters; the Unicode line breaks it leaves raw would
        # split the line for readers using str.splitlines(), so escape them too.
        text = text.translate(_UNICODE_LINE_BREAKS)
        return (text + "\n").encode("utf-8", "backslashreplace")  # a lone surrogate is written as \udXXX

    def _walkable(self, value: Any) -> Any:
        try:
            json.dumps(self.redactor.value(value), default=str)
        except RecursionError:
            return TOO_DEEP
        return value

    def _write(self, file: str, data: bytes) -> bool:
        try:
            written = os.write(self._fds[file], data)
            if written < len(data):
                # Only on a full disk / quota: finish the line rather than leave half of it.
                os.write(self._fds[file], data[written:])
        except OSError as exc:
            log.warning("journal write to %s failed: %s", file, exc)
            return False
        return True

    def _write_at(self, file: str, data: bytes) -> int:
        """_write, and where the line starts (-1: not written). O_APPEND leaves this process's descriptor at the
        end of its own write whatever the other workers append meanwhile; a descriptor inherited from another
        process shares its offset, so one is opened here first."""
        with self._at_lock:
            if self._pid != os.getpid():
                self._open()
            if not self._write(file, data):
                return -1
            try:
                return os.lseek(self._fds[file], 0, os.SEEK_CUR) - len(data)
            except OSError:
                return -1

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = {}

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def setup_log_file(
    log_dir: str | os.PathLike[str],
    *,
    level: int = logging.INFO,
    logger: logging.Logger | None = None,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """Attach a FileHandler for ``<log_dir>/log.log`` to ``logger`` (root by default); idempotent per path."""
    os.makedirs(log_dir, mode=PRIVATE_DIR, exist_ok=True)
    path = os.path.abspath(os.path.join(log_dir, LOG_FILE))
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == path:
            return handler
    # FileHandler opens in append mode and flushes per record, so ordinary-sized lines from
    # several workers land whole; log.log is for people, the JSONL journals are for machines.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE))  # made private if new
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(LogFilter(Secrets(secrets)))
    target.addHandler(handler)
    if target.level == logging.NOTSET or target.level > level:
        target.setLevel(level)
    return handler


def log_lines(log_dir: str | os.PathLike[str], lines: Iterable[str], secrets: Iterable[str] = ()) -> None:
    """Write lines to ``<log_dir>/log.log`` from a process without a handler on it (Gunicorn's master: the
    start-up line and its warnings, which seed 004's system log holds), formatted as the workers' lines."""
    logger = logging.getLogger("cot_proxy.start")
    logger.propagate = False  # stderr had these lines already
    handler = setup_log_file(log_dir, logger=logger, secrets=secrets)
    try:
        for line in lines:
            logger.info("%s", line)
    finally:
        logger.removeHandler(handler)  # forked workers attach their own (with DEBUG's level when on)
        handler.close()


def _served(start: CallStart, out: CallEnd) -> dict[str, Any]:
    """Which deployment served a routed call (argoproxy/routing/dispatch.py) and what capability adaptation
    changed in the request (and whether a stream that ended before its first event was asked for whole, and
    whether the client left before the answer's end), for the journal."""
    adapted: dict[str, Any] = {"adapted_params": list(start.adapted)} if start.adapted else {}
    if out.asked_whole:
        adapted["asked_whole"] = True
    if out.client_left:
        adapted["client_left"] = True
    if out.deployment is None:
        return adapted
    return {"deployment": out.deployment, "served_model": out.served_model or "", **adapted}


def _client_id(start: CallStart) -> dict[str, str]:
    """The client's X-Request-ID beside the proxy's own request_id, when it sent one, and its agent session."""
    client = start.client.client_request_id
    named = {"client_request_id": client} if client else {}
    session = start.client.session
    return {**named, "session": session} if session else named


def log_row(start: CallStart, end: CallEnd, file: str, offset: int, length: int) -> LogRow:
    """The request log's row for a client record (argoproxy/requestlog/). The key's owner is a person's id, or ""
    (a service key, or no team key)."""
    client, used, cost = start.client, end.used, end.cost
    owner = start.team_key.owner if start.team_key is not None else ""
    return LogRow(time.time(), client.request_id, start.key_name or "", owner, (start.model or "")[:200],
                  end.status, client.front, client.session, used.input if used is not None else 0,
                  used.output if used is not None else 0, cost.nanos if cost is not None and cost.priced else 0,
                  file, offset, length)


def journal_observer(journal: Journal, index: RequestIndex | None = None) -> Callable[[CallStart, CallEnd], None]:
    """Pipeline observer writing one client record per finished request (every route: API, forwarded, backend
    and the proxy's own), and one server record for each that went upstream; with `index`, a request log row
    for each client record."""
    import uuid

    def observe(start: CallStart, end: CallEnd) -> None:
        if start.kind in PROBES:
            return
        logging_id = uuid.uuid4().hex
        client = start.client
        latency = (time.perf_counter() - client.started) * 1000
        common: dict[str, Any] = dict(send_mode=start.send_mode, return_mode=start.return_mode, latency_ms=latency,
                      extra={"request_id": client.request_id, **_client_id(start), "path": "/" + client.path,
                             "front": client.front, "model": start.model, **_served(start, end),
                             **({"usage_estimated": True} if end.usage_estimated else {})})
        client_body, answer = journal.body(start.raw_body), journal.body(end.output, end.output_tap)
        if index is None:
            journal.record("client", logging_id, client_body, answer, status=end.status, **common)
        else:
            offset, length = journal.record_at("client", logging_id, client_body, answer, status=end.status, **common)
            if offset >= 0:
                index.add(log_row(start, end, journal.paths["client"], offset, length))
        request = end.upstream_request
        if request is None and end.upstream_status is None:
            return
        journal.record("server", logging_id, journal.body(request.body) if request is not None else None,
                       journal.body(end.upstream_output, end.upstream_tap), status=end.upstream_status, **common)
    return observe
