"""What a stored Responses turn costs (docs/performance.md, "Stored responses"): the store's part of one request
in a 20-turn previous_response_id chain, in-process, CPU time, SQLite and (when redis-server is installed) Redis.

    .venv/bin/python bench/state_cost.py

Per turn: the chain's history read (the previous response and its ancestors in one read), the key's room
checked, the new response written (its input items and a 600-character answer). The chat translation of the
longer history is the door's cost, not counted here. Five chains of 20 turns per store, after one to warm up.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argoproxy.config.settings import load_settings  # noqa: E402
from argoproxy.fronts.responses.kept import KeptResponses  # noqa: E402
from argoproxy.state.keeper import Keeper  # noqa: E402
from argoproxy.ids import new_id  # noqa: E402
from argoproxy.state.service import StateService  # noqa: E402

TURNS, CHAINS = 20, 5
QUESTION = "Please go on with the analysis of the previous step, and say what changes. " * 3
ANSWER = "The next step reads the figures again and compares them with the last ones. " * 8
# The proxy's own settings (a stand-in misses any setting the store reads later): defaults, room for every chain,
# and an empty config file, so that a config.yaml in the directory the bench is started from changes nothing.
SETTINGS = load_settings({"responses_max_bytes_per_key": 1 << 40, "responses_max_bytes": 1 << 40},
                         environ={"CONFIG_PATH": os.devnull})


def response_object(resp_id: str, prev: str | None) -> dict[str, Any]:
    return {"id": resp_id, "object": "response", "created_at": int(time.time()), "status": "completed",
            "model": "bench", "previous_response_id": prev, "store": True, "output": [
                {"type": "message", "id": new_id("msg_"), "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": ANSWER, "annotations": [], "logprobs": []}]}],
            "usage": {"input_tokens": 100, "output_tokens": 120, "total_tokens": 220}}


def chain(kept: KeptResponses) -> list[tuple[float, float]]:
    """(CPU seconds, wall seconds) of each turn of one chain."""
    prev: str | None = None
    costs = []
    for turn in range(TURNS):
        body = {"model": "bench", "input": f"{turn}: {QUESTION}", "previous_response_id": prev}
        cpu, wall = time.process_time(), time.perf_counter()
        history = kept.history("anonymous", body)
        kept.state.check_room("anonymous")
        resp_id = new_id("resp_")
        Keeper(kept.state, kept.shapes, "anonymous", history, {"id": resp_id}, True).save(
            response_object(resp_id, prev))
        costs.append((time.process_time() - cpu, time.perf_counter() - wall))
        prev = resp_id
    return costs


def measure(store: Any) -> dict[str, float]:
    kept = KeptResponses(StateService(SETTINGS, store, offload=False), lambda event: b"")
    chain(kept)  # warm up
    runs = [chain(kept) for _ in range(CHAINS)]
    mean_cpu = sum(c for run in runs for c, _ in run) / (CHAINS * TURNS)
    mean_wall = sum(w for run in runs for _, w in run) / (CHAINS * TURNS)
    last = sorted(run[-1][0] for run in runs)[CHAINS // 2]
    return {"mean_cpu": mean_cpu, "mean_wall": mean_wall, "turn20_cpu": last}


def stores(directory: str, redis_url: str | None) -> dict[str, Any]:
    from argoproxy.state.store import SQLiteResponseStore
    found: dict[str, Any] = {"SQLite": SQLiteResponseStore(os.path.join(directory, "responses.db"), 86400.0,
                                                           1 << 40, 1 << 40)}
    if redis_url:
        from argoproxy.state.redis_store import RedisResponseStore
        found["Redis"] = RedisResponseStore(redis_url, 86400.0, 1 << 40, 1 << 40)
    return found


def state_in_process(directory: str, redis_url: str | None) -> dict[str, dict[str, float]]:
    return {name: measure(store) for name, store in stores(directory, redis_url).items()}


def state_report(rows: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"Stored responses: the store's part of a turn in a {TURNS}-turn previous_response_id chain (history "
             f"read, room checked, response written; in-process, {CHAINS} chains):", "",
             "| store | CPU µs per turn (mean of 20) | CPU µs at turn 20 (median) | wall µs per turn (mean) |",
             "| --- | --- | --- | --- |"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['mean_cpu'] * 1e6:.0f} | {row['turn20_cpu'] * 1e6:.0f} | "
                     f"{row['mean_wall'] * 1e6:.0f} |")
    return lines + [""]


def proxy_cpu(proxy: Any) -> float:
    """CPU seconds the proxy's master and workers have used."""
    import psutil
    master = psutil.Process(proxy.proc.pid)
    total = 0.0
    for proc in [master, *master.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def chained_requests(proxy: Any, stored: bool) -> float:
    """Proxy CPU seconds per request over CHAINS chains of TURNS turns: chained by previous_response_id (stored),
    or the stateless client's way (store: false, the whole history sent each turn)."""
    import requests
    session = requests.Session()
    from targets import HOST
    url = f"http://{HOST}:{proxy.port}/v1/responses"
    start, count = proxy_cpu(proxy), 0
    for _ in range(CHAINS):
        prev, history = None, []
        for turn in range(TURNS):
            ask = {"role": "user", "content": f"{turn}: {QUESTION}"}
            body: dict[str, Any] = {"model": "bench", "max_output_tokens": 16}
            if stored:
                body.update(input=[ask], previous_response_id=prev)
            else:
                history.append(ask)
                body.update(input=list(history), store=False)
            answer = session.post(url, json=body, timeout=30)
            answer.raise_for_status()
            data = answer.json()
            prev = data["id"]
            if not stored:
                history.extend(data["output"])
            count += 1
    return (proxy_cpu(proxy) - start) / count


def state_through_proxy(upstream_port: int, redis_url: str | None) -> dict[str, float]:
    """CPU per request of a 20-turn chain through the proxy (Gunicorn, its default workers): stored in SQLite, in
    Redis, and the stateless way for comparison."""
    from targets import Proxy
    runs: list[tuple[str, dict[str, str], bool]] = [("stateless (store: false, whole history)", {}, False),
                                                    ("SQLite (previous_response_id)", {}, True)]
    if redis_url:
        runs.append(("Redis (previous_response_id)", {"REDIS_URL": redis_url}, True))
    out = {}
    for name, settings, stored in runs:
        proxy = Proxy.start(upstream_port, name=name, **settings)
        try:
            chained_requests(proxy, stored)  # warm up
            out[name] = chained_requests(proxy, stored)
        finally:
            proxy.stop()
    return out


def through_proxy_report(rows: dict[str, float]) -> list[str]:
    lines = [f"A {TURNS}-turn chain through the proxy (POST /v1/responses one after another, proxy CPU per request, "
             f"{CHAINS} chains):", "", "| how the history travels | proxy CPU ms per request |", "| --- | --- |"]
    lines += [f"| {name} | {cpu * 1e3:.2f} |" for name, cpu in rows.items()]
    return lines + [""]


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from targets import Upstream, start_redis
    directory = tempfile.mkdtemp(prefix="cot_proxy_bench_state_")
    redis = start_redis(directory)
    upstream = Upstream.start()
    try:
        url = redis[1] if redis else None
        print("\n".join(state_report(state_in_process(directory, url))))
        print("\n".join(through_proxy_report(state_through_proxy(upstream.port, url))))
    finally:
        upstream.stop()
        if redis is not None:
            redis[0].terminate()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
