"""Waiting for something to happen in another process: poll a condition until a deadline, never sleep a guess."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call check until it returns something truthy or the deadline passes; its last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
