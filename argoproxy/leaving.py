"""What a worker leaving at once runs first (Gunicorn's quick stop: the process ends with os._exit, so no atexit
hook runs): the hooks of what holds work answered but not yet written, registered by what holds it (the stored
responses a gevent worker writes just after their answers: state/write_behind.py; the keys' usage a worker writes
every half second: teamkeys/service.py) and run by serve/gunicorn_app.py, which knows none of them, through
leave_at_once. A hook bounds its own work with in_time (or sqlite_files.within)."""

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


LEAVE_WITHIN = 8.0  # seconds a quick stop waits for its hooks (each bounds its own work) before it leaves anyway


def leave_at_once(leave: Callable[[], None]) -> None:
    """The hooks, then `leave` (which ends the process), called from a quick stop's signal handler. In a
    gevent-patched worker the handler runs wherever the signal landed, often in the hub, where nothing may wait:
    the hooks run in a greenlet of their own (as Gunicorn's gevent worker runs its own quick stop), and a real
    thread calls `leave` after LEAVE_WITHIN seconds whatever they do."""
    if not _gevent_patched():
        _hooks_then(leave)
        return
    import gevent
    from gevent.monkey import get_original
    sleep, start = get_original("time", "sleep"), get_original("_thread", "start_new_thread")

    def deadline() -> None:
        sleep(LEAVE_WITHIN)
        leave()
    start(deadline, ())
    gevent.spawn(_hooks_then, leave)


def _hooks_then(leave: Callable[[], None]) -> None:
    try:
        run_quick_exit_hooks()
    finally:
        leave()


def in_time(seconds: float, work: Callable[[], object]) -> bool:
    """`work` from a quick stop's hook, for `seconds` at most (False: it had not finished). In a gevent worker the
    hooks run in a greenlet (leave_at_once): there the loop runs, and gevent's sockets (a Redis connection), bound
    to it, work only there. Elsewhere (a signal handler: the gthread and sync workers), in a real thread of its
    own, as the code the signal interrupted may hold a lock the work needs."""
    if _in_a_greenlet():
        import gevent
        try:
            with gevent.Timeout(seconds):
                work()
        except gevent.Timeout:
            return False
        return True
    from argoproxy.sqlite_files import within
    return within(seconds, work)


def _in_a_greenlet() -> bool:
    """In a gevent-patched process, off the hub (whose callbacks must not block)."""
    if not _gevent_patched():
        return False
    from gevent import getcurrent, get_hub
    return bool(getcurrent() is not get_hub())


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket"))
