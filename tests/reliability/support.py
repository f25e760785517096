"""Helpers shared by the reliability suite: process inspection (worker PIDs, RSS, fds) and SSE reading."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import psutil
import requests

MSG = [{"role": "user", "content": "hi"}]


def chat(model: str = "m", stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MSG, "stream": stream, **extra}


def workers(proxy) -> list[psutil.Process]:
    """The Gunicorn worker processes (children of the master)."""
    return psutil.Process(proxy.proc.pid).children()


def worker_pids(proxy) -> set[int]:
    return {p.pid for p in workers(proxy)}


def wait_for_workers(proxy, count: int, timeout: float = 10.0, exclude: set[int] = frozenset()) -> set[int]:
    """Wait until `count` worker processes run (none of them in `exclude`); return their PIDs. A worker found here
    may still be loading the app: what needs it serving must wait for that too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(proxy) - set(exclude)
        if len(pids) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"expected {count} workers, have {worker_pids(proxy)}")


def status_bytes(pid: int, field: str) -> int:
    """A size line of /proc/PID/status (VmRSS, VmHWM...) in bytes."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field + ":"))


def peak_growth(proxy, run: Callable[[], Any]) -> tuple[int, Any]:
    """Run `run()` and return how far the (one) worker's peak resident memory rose above its size just before
    (VmHWM, reset first through /proc/PID/clear_refs), with what run() returned."""
    (worker,) = workers(proxy)
    with open(f"/proc/{worker.pid}/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current resident size
    idle = status_bytes(worker.pid, "VmRSS")
    result = run()
    return status_bytes(worker.pid, "VmHWM") - idle, result


def tree_rss(proxy) -> int:
    procs = [psutil.Process(proxy.proc.pid), *workers(proxy)]
    return sum(p.memory_info().rss for p in procs)


def sse_events(text: str) -> list[Any]:
    """The data of each SSE event ("[DONE]" stays a string)."""
    out = []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                data = line[6:]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


def quick_ok(proxy, timeout: float = 2.0) -> float:
    """A plain request the proxy should answer at once; returns how long it took."""
    start = time.monotonic()
    r = requests.get(proxy.url + "/v1/models", timeout=timeout)
    assert r.status_code == 200, r.text
    return time.monotonic() - start


def assert_error(r: requests.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"} and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err
