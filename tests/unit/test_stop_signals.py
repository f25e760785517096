"""A Ctrl+C (or SIGTERM) that reaches run_app.sh's first-run process just as it execs into the server is not
lost (argoproxy.firstrun.hold_stop_signals and release_stop_signals): caught by Python just before the
exec, it was only flagged for the next Python call, the exec came first, and the server started and ran on
(CI, under load: test_run_app's SIGINT after "Starting cot_proxy" waited 15 s for an exit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from argoproxy import firstrun
from argoproxy.firstrun import STOP_SIGNALS, release_stop_signals


def test_the_stop_signals_are_blocked_across_the_exec(monkeypatch) -> None:
    seen: list[set[int]] = []

    def execv(path: str, args: list[str]) -> None:
        seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))  # the mask the new process inherits

    monkeypatch.setattr(os, "execv", execv)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        firstrun.serve([], {})
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    assert seen and STOP_SIGNALS <= seen[0]


def test_a_held_interrupt_is_delivered_when_released_and_ends_the_start_quietly() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        # to this thread, where it is blocked (a signal to the process would go to any other thread)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        with pytest.raises(SystemExit) as stop:
            release_stop_signals()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    assert stop.value.code == 130


def test_a_signal_held_across_the_exec_stops_the_server_start() -> None:
    """The new process unblocks what was held: a pending SIGINT ends it with 130 before it serves (here
    `--show`, which would otherwise print the settings and exit 0)."""
    held = ("import os, signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}); "
            "os.kill(os.getpid(), signal.SIGINT); "
            "os.execv(sys.executable, [sys.executable, '-m', 'argoproxy.cli', '--show'])")
    done = subprocess.run([sys.executable, "-c", held], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TARGET_BASE_URL": "http://127.0.0.1:9/v1"})
    assert done.returncode == 130, (done.returncode, done.stdout[-300:], done.stderr[-300:])
    assert "Traceback" not in done.stderr
