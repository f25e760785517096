"""What the proxy does with team keys on each request: recognise a presented key, refuse a revoked or expired
one, hold it to its model globs, rate limits and budget (429 with Retry-After), and count what it used.

A looked-up key is remembered for CACHE_SECONDS, so `cot-proxy keys revoke` (or a changed limit) takes effect on
every worker within that time. While the store cannot be reached (Redis away or too slow, keys.db locked,
unreadable or read-only), a key looked up before is served from the cache for at most KEY_CACHE_SECONDS after its
last successful look-up, then refused with a 503: a revoked key cannot live on in a replica cut off from the
store. With REDIS_OUTAGE=refuse every team-key request is refused while Redis is away. Known and unknown keys are
cached apart, each bounded (LRU), so random keys cannot push out the keys in use nor make every request a read.
"""

from __future__ import annotations

import atexit
import logging
import math
import sqlite3
import threading
import time
from typing import Any, Callable, Iterable

from argoproxy.errors import ProxyError
from argoproxy.teamkeys.failover import FailoverStore, StoreDown
from argoproxy.teamkeys.lookup_cache import LRU
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.edge.request_models import key_model_refused
from argoproxy.edge.validation import model_allowed
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.stream_usage import OutputCount, prompt_tokens, usage_counts

log = logging.getLogger("cot_proxy")

CACHE_SECONDS = 0.5  # a looked-up key is read again after this (revocations and changed limits reach workers)
KEY_CACHE_SECONDS = 30.0  # the most a cached key is served while the store cannot be reached (KEY_CACHE_SECONDS)
FLUSH_SECONDS = 0.5  # usage is written this often (and at FLUSH_MAX answers), off the requests' path
FLUSH_MAX = 256
CACHE_ENTRIES = 4096  # known keys kept per worker (LRU); as many unknown keys, apart
STORE_ERRORS = (StoreDown, sqlite3.Error, OSError)  # the store cannot answer now (FailoverStore turns Redis's into StoreDown)
WHAT = {"requests": "{rpm} requests per minute", "tokens": "{tpm} tokens per minute",
        "budget": "{budget} tokens"}


class TeamKeys:
    def __init__(self, store: Any, clock: Callable[[], float] = time.time,
                 cache_seconds: float = KEY_CACHE_SECONDS) -> None:
        self.store = store
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._known: LRU[tuple[KeyRecord, float]] = LRU(CACHE_ENTRIES)  # digest -> (record, when read)
        self._unknown: LRU[float] = LRU(CACHE_ENTRIES)  # digest -> when the store said it has no such key
        self._store_failing = False
        self._pending: list[tuple] = []
        self._pending_lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    def lookup(self, presented: Iterable[str]) -> KeyRecord | None:
        """The record of the first presented key the store knows (revoked and expired ones included); a 503 when
        the store cannot say and no look-up of the key within KEY_CACHE_SECONDS can stand in for it."""
        if not self.store.available():
            return None
        now = time.monotonic()
        for key in presented:
            record = self._record(digest(key), now)
            if record is not None:
                return record
        return None

    def _record(self, key_digest: str, now: float) -> KeyRecord | None:
        known = self._known.get(key_digest)
        unknown = self._unknown.get(key_digest) if known is None else None
        read_at = known[1] if known is not None else unknown
        refusing = getattr(self.store, "refusing", None)
        if read_at is not None and now - read_at <= CACHE_SECONDS and not (refusing is not None and refusing()):
            return known[0] if known is not None else None
        try:
            record = self.store.find(key_digest)
        except STORE_ERRORS as exc:
            self._failed(exc)
            if read_at is not None and now - read_at <= self.cache_seconds and not (refusing is not None and refusing()):
                return known[0] if known is not None else None  # fail closed after KEY_CACHE_SECONDS
            raise ProxyError(503, "The key store is unavailable; try again shortly.", code="key_store_unavailable",
                             headers={"Retry-After": "1"}) from None
        if self._store_failing:
            self._store_failing = False
            log.warning("team keys: the key store answers again")
        if record is None:
            self._known.pop(key_digest)
            self._unknown.put(key_digest, now)
        else:
            self._unknown.pop(key_digest)
            self._known.put(key_digest, (record, now))
        return record

    def _failed(self, exc: BaseException) -> None:
        """One log line per outage (Redis's own are said by the failover store; SQLite's here)."""
        if self._store_failing:
            return
        self._store_failing = True
        if not isinstance(exc, StoreDown):
            from argoproxy.redaction import mask_url
            log.warning("team keys: the key store %s cannot be read (%s: %s): keys looked up within %g s are "
                        "served, others refused with 503", mask_url(str(getattr(self.store, "path", ""))),
                        type(exc).__name__, exc, self.cache_seconds)

    def refusal(self, record: KeyRecord) -> str | None:
        return record.refusal(self.clock())

    def admit_call(self, call: Call, record: KeyRecord, model_required: bool = False) -> None:
        """The key's model globs (on the model the request names; an API request must name one, or the upstream's
        default would serve it), then its limits; 429 over them."""
        model = call.plan.model
        call.plan.key_name = record.name  # a refusal below is this key's too
        if record.models and (model is not None or model_required) and not model_allowed(record.models, model):
            raise key_model_refused(model)
        if not (record.rpm or record.tpm or record.budget):
            call.plan.team_key = record  # nothing to count before the answer: no store write
            return
        waiting, by = self.store.admit(record, self.clock())
        if by:
            seconds = max(1, math.ceil(waiting))
            what = WHAT[by].format(rpm=record.rpm, tpm=record.tpm, budget=record.budget)
            raise ProxyError(429, f"This API key is over its budget of {what}; retry in {seconds} s.",
                             code="rate_limit_exceeded", headers={"Retry-After": str(seconds)})
        call.plan.team_key = record  # admitted: its usage is counted when the answer ends

    def observe(self, call: Call) -> None:
        """Observer: an admitted call's tokens (its usage) count against its key, by model and day. A key with
        token limits has them counted where admission reads them as the answer ends, so the next request sees
        them (counted later, a client sending back to back got its budget many times over): in the workers'
        shared cells (SQLite), or written at once (Redis: a socket, which lets the worker's other requests run).
        Usage rows are written in batches (at most FLUSH_SECONDS late), not by the request: a database write
        per answer cost more than the rest of the request, and SQLite's wait for its lock stops a gevent
        worker."""
        record = call.plan.team_key
        if record is None:
            return
        prompt, completion = answer_tokens(call)
        model = call.plan.model if isinstance(call.plan.model, str) else "-"
        now = self.clock()
        counted = False
        if record.tpm or record.budget is not None:
            counted = self._count_now(record, prompt + completion, now)
            if not counted:
                self._write(record.name, model[:200], prompt, completion, now, record.budget, 1)
                return
        with self._pending_lock:
            self._pending.append((record.name, model[:200], prompt, completion, now, record.budget, counted))
            due = len(self._pending) >= FLUSH_MAX
        if self._flusher is None:
            self._start_flusher()
        if due:
            self.flush()

    def flush(self) -> None:
        """The pending answers, summed by key and model: one store write per pair; and what expired leases left
        unused, given back."""
        try:
            self.store.release_leases()
        except Exception:  # noqa: BLE001 - counting must never end the worker
            log.exception("team keys: unused leases not given back")
        with self._pending_lock:
            batch, self._pending = self._pending, []
        groups: dict[tuple[str, str, bool], list] = {}
        for name, model, prompt, completion, now, budget, counted in batch:
            group = groups.setdefault((name, model, counted), [0, 0, now, budget, 0])
            group[0] += prompt
            group[1] += completion
            group[2], group[3] = now, budget
            group[4] += 1
        for (name, model, counted), (prompt, completion, now, budget, requests) in groups.items():
            self._write(name, model, prompt, completion, now, budget, requests, counted)

    def _count_now(self, record: KeyRecord, tokens: int, now: float) -> bool:
        """The answer's tokens where admission reads them, now, when the store can without a write that would
        stop the worker (SQLite's shared cells); False: record_usage must be called now (Redis: a socket)."""
        count_now = getattr(self.store, "count_now", None)
        if count_now is None:
            return False
        try:
            return bool(count_now(record, tokens, now))
        except Exception:  # noqa: BLE001 - counting must never end the worker
            log.exception("team keys: tokens of key %s not counted", record.name)
            return False

    def _write(self, name: str, model: str, prompt: int, completion: int, now: float, budget: Any,
               requests: int, counted: bool = False) -> None:
        try:
            if counted:
                self.store.record_usage(name, model, prompt, completion, now, budget, requests, counted=True)
            else:
                self.store.record_usage(name, model, prompt, completion, now, budget, requests)
        except Exception:  # noqa: BLE001 - counting must never end the worker
            log.exception("team keys: usage of key %s not recorded", name)

    def _start_flusher(self) -> None:
        def loop() -> None:
            while True:
                time.sleep(FLUSH_SECONDS)
                self.flush()
        self._flusher = threading.Thread(target=loop, name="team-keys-usage", daemon=True)
        self._flusher.start()
        atexit.register(self.flush)  # a worker stopping gracefully writes what it counted
        atexit.register(self.store.release_leases, False)  # and gives back what it reserved


def answer_tokens(call: Call) -> tuple[int, int]:
    """(input, output) tokens of an answer: its usage (OpenAI's or Anthropic's names), else, for an answer the
    upstream gave (a client that left mid-stream, an upstream that sends no usage), the count_tokens estimate
    of the request and of what was answered: an answer is never free."""
    usage = call.outcome.usage
    if isinstance(usage, dict):
        prompt, completion = usage_counts(usage)
        return (prompt if isinstance(prompt, int) else 0), (completion if isinstance(completion, int) else 0)
    status = call.outcome.upstream_status
    if status is None or not 200 <= status < 300 or not isinstance(call.plan.body, dict):
        return 0, 0
    if call.plan.meter is not None:  # a chat stream: what it relayed so far
        settled, _ = call.plan.meter.settled(call.plan.body)
        if settled is not None:
            return settled.get("prompt_tokens", 0), settled.get("completion_tokens", 0)
    output = OutputCount()
    answer = call.outcome.output
    for choice in (answer.get("choices") if isinstance(answer, dict) else None) or ():
        if isinstance(choice, dict):
            output.add_delta(choice.get("message") or choice)
    return prompt_tokens(call.plan.body), output.total()


def open_store(keys_db: str, redis_url: str = "", outage: str = "local") -> Any:
    """Redis when REDIS_URL is set (shared by every replica, with the outage policy), else the SQLite file."""
    if redis_url:
        from argoproxy.teamkeys.redis_store import RedisKeyStore
        return FailoverStore(RedisKeyStore(redis_url), outage)
    from argoproxy.teamkeys.store import SQLiteKeyStore
    return SQLiteKeyStore(keys_db)
