"""What is this process's own: its pid, read once and again in a forked child (os.getpid is a system call each
time, and a request asked for it a dozen times: prometheus_client's value files, the watchers below); and one
instance per process, made when first asked for: a watcher thread started in a Gunicorn worker, never in the
master whose forked workers would inherit the object but not its thread."""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T", bound="PerProcess")

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


# Python's os.fork (Gunicorn's, multiprocessing's, gevent's) runs this in the child before anything else.
os.register_at_fork(after_in_child=_forked)


def pid() -> int:
    """This process's id, without a system call."""
    return _pid


class PerProcess:
    _instance: PerProcess | None = None
    pid: int

    def __init__(self) -> None:
        self.pid = _pid

    @classmethod
    def get(cls: type[T]) -> T:
        instance = cls._instance
        if not isinstance(instance, cls) or instance.pid != _pid:
            instance = cls._instance = cls()
        return instance
