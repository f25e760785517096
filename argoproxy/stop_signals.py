"""The stop signals the first run holds blocked across its exec into the server (argoproxy/firstrun.py's
hold_stop_signals), and their release, the server's first step (argoproxy/cli.py). Apart from firstrun.py so
that a command line releases them without importing the first run's checks (the settings, Gunicorn's)."""

from __future__ import annotations

import signal

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def release_stop_signals() -> None:
    """Unblock the stop signals the first run held across its exec: one sent meanwhile (a Ctrl+C just as the
    checks ended) is delivered now and ends the start quietly, where it used to be lost with the exec'd
    interpreter and the server then ran on."""
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        check_interrupt()
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def check_interrupt() -> None:
    """A Python call: a KeyboardInterrupt the signal handler flagged is raised on entering it."""
