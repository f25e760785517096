"""One instance per process, made when first asked for: a watcher thread started in a Gunicorn worker, never in
the master whose forked workers would inherit the object but not its thread."""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T", bound="PerProcess")


class PerProcess:
    _instance: PerProcess | None = None
    pid: int

    def __init__(self) -> None:
        self.pid = os.getpid()

    @classmethod
    def get(cls: type[T]) -> T:
        instance = cls._instance
        if not isinstance(instance, cls) or instance.pid != os.getpid():
            instance = cls._instance = cls()
        return instance
