"""The journal writer's side of the request log: a row queued per journal line (a tuple appended under a lock: no
store call on the request's path), written in batches every FLUSH_SECONDS by a thread of its own, the oldest rows
past REQUEST_LOG_ROWS removed every PRUNE_SHARE of them written. A batch the store refuses is kept for the next
flush, at most PENDING_MOST rows (then the oldest are dropped: the journal still holds their lines)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

from argoproxy.requestlog.query import Index, index_of
from argoproxy.requestlog.rows import LogRow

log = logging.getLogger("cot_proxy")

FLUSH_SECONDS = 2.0  # a person reading the log sees a request within this; fewer, larger batches cost the worker less
PENDING_MOST = 100_000
PRUNE_SHARE = 20  # prune once every most/PRUNE_SHARE rows written (a prune reads up to `most` of the index)


class RequestIndex:
    """One worker's writer of request log rows into the key store's index."""

    def __init__(self, store: Any, most: int) -> None:
        self.store = store
        self.most = most
        self._index: Index | None = None
        self._pending: list[LogRow] = []
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._since_prune = 0
        self._failing = False

    def add(self, row: LogRow) -> None:
        with self._lock:
            self._pending.append(row)
        if self._flusher is None:
            self._start()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        self._since_prune += len(batch)
        prune = self._since_prune >= max(1, self.most // PRUNE_SHARE)
        try:
            if self._index is None:
                self._index = index_of(self.store)
            self._index.add(batch, self.most, prune)
        except Exception as exc:  # noqa: BLE001 - the log must never end the worker: kept for the next flush
            if not self._failing:
                log.warning("request log: rows not written yet (%s); kept and tried again", type(exc).__name__)
            self._failing = True
            with self._lock:
                self._pending[:0] = batch[-PENDING_MOST:]
                del self._pending[:max(0, len(self._pending) - PENDING_MOST)]
            return
        self._failing = False
        if prune:
            self._since_prune = 0

    def _start(self) -> None:
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(target=self._loop, name="request-log", daemon=True)
        self._flusher.start()
        atexit.register(self.flush)  # a worker stopping gracefully writes what it queued

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()
