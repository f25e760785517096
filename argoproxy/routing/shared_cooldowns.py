"""Cooldowns shared by replicas through Redis (REDIS_URL): a deployment one instance saw fail (or answer 429)
is avoided by the others too. Each instance's router keeps its cooldown board in shared memory
(argoproxy/shared_cells.py) and the hot path reads only that; this module publishes each new cooldown to
Redis, with an expiry at its end, and a thread in each worker copies the others' into the board every
SYNC_SECONDS. Redis down: each instance keeps its own board (and a warning), as before Redis.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

log = logging.getLogger("cot_proxy")

SYNC_SECONDS = 0.25
PREFIX = "cot_proxy:cooldown:"


class SharedCooldowns:
    def __init__(self, router: Any, redis_url: str, client: Any = None) -> None:
        from argoproxy.teamkeys.redis_store import connect
        self.router = router
        self.redis = client if client is not None else connect(redis_url)
        # Replicas share cooldowns only for the same deployment (name, backend and URL, not its position).
        self.names = [PREFIX + hashlib.sha1(f"{d.entry.name} {d.entry.backend} {d.entry.base_url} {d.index}"
                                            .encode()).hexdigest()[:16] for d in router.deployments]
        self._failing = False
        router.on_cool_down = self.publish

    def publish(self, index: int, until_ms: int, reason: int) -> None:
        try:
            self.redis.set(self.names[index], f"{until_ms} {reason}", pxat=max(until_ms, int(time.time() * 1000) + 1))
            self._ok()
        except Exception as exc:  # noqa: BLE001 - a cooldown stays local when Redis is away
            self._failed(exc)

    def sync(self) -> None:
        """Copy the other replicas' cooldowns into this worker's board (a later end wins)."""
        try:
            values = self.redis.mget(self.names)
            self._ok()
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            return
        for dep, value in zip(self.router.deployments, values):
            if value:
                until, reason = map(int, value.split())
                self.router.adopt_cooldown(dep, until, reason)

    def start(self) -> threading.Thread:
        def loop() -> None:
            while True:
                self.sync()
                time.sleep(SYNC_SECONDS)
        thread = threading.Thread(target=loop, name="shared-cooldowns", daemon=True)
        thread.start()
        return thread

    def _ok(self) -> None:
        if self._failing:
            log.warning("routing: Redis is back; cooldowns are shared again")
            self._failing = False

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            log.warning("routing: Redis is unavailable (%s): cooldowns stay per instance until it is back",
                        type(exc).__name__)
            self._failing = True
