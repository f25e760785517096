"""What a worker leaving at once runs first (Gunicorn's quick stop: its signal handler ends the process with
os._exit, so no atexit hook runs): the hooks of what holds work answered but not yet written, registered by what
holds it (the stored responses a gevent worker writes just after their answers: state/write_behind.py) and run by
serve/gunicorn_app.py, which knows none of them."""

from __future__ import annotations

from typing import Callable

HOOKS: list[Callable[[], None]] = []  # this process's (a forked worker registers its own)


def at_quick_exit(hook: Callable[[], None]) -> None:
    """Run `hook` before this process leaves at once (once, however often it is registered)."""
    if hook not in HOOKS:
        HOOKS.append(hook)


def run_quick_exit_hooks() -> None:
    for hook in list(HOOKS):
        hook()
