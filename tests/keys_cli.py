"""`cot-proxy keys ...` run in the test's own process: the command's real parser, commands and store, its output
captured, without a process of its own. For tests whose subject is what the proxy counts (budgets under a crowd),
which read a key's usage many times while they poll: as a process, each reading cost 0.4 s of CPU with Redis
(the interpreter's start and redis-py's import, which pulls in asyncio and OpenTelemetry's metrics SDK). The
command itself, as users run it, is tested as a process (test_team_keys, test_shared_redis)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

from argoproxy.teamkeys.cli import main

_output = threading.Lock()  # the captured streams are the process's: one command at a time


def run_keys(*args: str, keys_db: Path | None = None, redis_url: str = "") -> subprocess.CompletedProcess:
    """`keys --keys-db DB ARGS` or, with redis_url, `keys ARGS` with REDIS_URL set: its exit status and output."""
    argv = ["--keys-db", str(keys_db), *args] if keys_db is not None else list(args)
    settings = SimpleNamespace(redis_url=redis_url, keys_db="", enable_auth=True)
    out, err = io.StringIO(), io.StringIO()
    with _output, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv, lambda flags: settings)
        except SystemExit as exc:  # argparse's refusal
            status = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["keys", *argv], status, out.getvalue(), err.getvalue())
