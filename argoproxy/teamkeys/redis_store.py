"""The team key store in Redis (REDIS_URL): key records, rate windows, budgets and usage shared by every
replica, so N instances behind a load balancer enforce one budget (as the LiteLLM proxy and Envoy's global
rate limit service do). The same interface and the same counting (argoproxy/teamkeys/windows.py) as the
SQLite store; each read-modify-write is an optimistic transaction (WATCH ... MULTI/EXEC, retried when
another replica changed the same key's window meanwhile).

Layout, under PREFIX: key:<digest> (hash: the record), name:<name> (the digest of the active key of that name),
win:<name> (hash: the counting state), usage (hash: "<day>\\x1f<name>\\x1f<model>" -> "requests input output"
is three fields, one per number).
"""

from __future__ import annotations

import time
from typing import Any

from argoproxy.teamkeys import windows
from argoproxy.teamkeys.records import Budget, KeyRecord
from argoproxy.teamkeys.store import KeyExists, usage_day

PREFIX = "cot_proxy:"
SEP = "\x1f"
STATE_FIELDS = ("start", "req", "prev_req", "tok", "prev_tok", "budget_start", "budget_used")
RECORD_FIELDS = ("name", "digest", "prefix", "models", "rpm", "tpm", "budget_tokens", "budget_period", "expires",
                 "created", "revoked")
TIMEOUT = 0.5  # seconds for a connect or a reply: a stalled Redis must not stall the requests behind it


def connect(url: str) -> Any:
    import redis
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True)


class RedisKeyStore:
    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self.redis = client if client is not None else connect(url)
        self.path = url  # where the keys are, for messages (credentials are masked by the caller)

    def available(self) -> bool:
        return True

    # ------------------------------------------------------------ records
    def create(self, record: KeyRecord) -> None:
        name_key = PREFIX + "name:" + record.name

        def write(pipe: Any) -> None:
            old = pipe.get(name_key)
            if old and pipe.hget(PREFIX + "key:" + old, "revoked") in ("0", "0.0"):
                raise KeyExists(f"a key named {record.name!r} is active: revoke it first, or choose another name")
            pipe.multi()
            if old:
                pipe.delete(PREFIX + "key:" + old)
            pipe.hset(PREFIX + "key:" + record.digest, mapping=_fields_of(record))
            pipe.set(name_key, record.digest)
            pipe.delete(PREFIX + "win:" + record.name)
        self.redis.transaction(write, name_key)

    def revoke(self, name: str, now: float | None = None) -> bool:
        digest = self.redis.get(PREFIX + "name:" + name)
        if not digest or self.redis.hget(PREFIX + "key:" + digest, "revoked") not in ("0", "0.0"):
            return False
        self.redis.hset(PREFIX + "key:" + digest, "revoked", repr(now or time.time()))
        return True

    def find(self, key_digest: str) -> KeyRecord | None:
        fields = self.redis.hgetall(PREFIX + "key:" + key_digest)
        return _record_of(fields) if fields else None

    def records(self) -> list[KeyRecord]:
        digests = [self.redis.get(name) for name in self.redis.scan_iter(PREFIX + "name:*", count=500)]
        found = [self.find(d) for d in digests if d]
        return sorted((r for r in found if r is not None), key=lambda r: r.name)

    # ------------------------------------------------------------ counting
    def admit(self, record: KeyRecord, now: float) -> tuple[float, str]:
        return self._update(record.name, lambda state: windows.admit(state, record.rpm, record.tpm, record.budget,
                                                                     now))

    def record_usage(self, name: str, model: str, input_tokens: int, output_tokens: int, now: float,
                     budget: Budget | None, requests: int = 1) -> None:
        field = SEP.join((usage_day(now), name, model))
        self._update(name, lambda state: windows.add_tokens(state, input_tokens + output_tokens, budget, now),
                     extra=lambda pipe: (pipe.hincrby(PREFIX + "usage", field + SEP + "requests", requests),
                                         pipe.hincrby(PREFIX + "usage", field + SEP + "input", input_tokens),
                                         pipe.hincrby(PREFIX + "usage", field + SEP + "output", output_tokens)))

    def usage(self, since: str = "") -> list[tuple[str, str, str, int, int, int]]:
        totals: dict[tuple[str, str, str], dict[str, int]] = {}
        for field, value in self.redis.hgetall(PREFIX + "usage").items():
            day, name, model, what = field.split(SEP)
            if day >= since:
                totals.setdefault((day, name, model), {})[what] = int(value)
        return [(name, model, day, t.get("requests", 0), t.get("input", 0), t.get("output", 0))
                for (day, name, model), t in sorted(totals.items())]

    def _update(self, name: str, change: Any, extra: Any = None) -> Any:
        """Read a key's counting state, change it, write it back, unless another replica wrote it between."""
        win = PREFIX + "win:" + name
        result: list[Any] = []

        def step(pipe: Any) -> None:
            raw = pipe.hmget(win, STATE_FIELDS)
            state = list(windows.NEW_STATE) if raw[0] is None else [float(v) if "." in v else int(v) for v in raw]
            result[:] = [change(state)]
            pipe.multi()
            pipe.hset(win, mapping=dict(zip(STATE_FIELDS, map(repr, state))))
            pipe.expire(win, 40 * 86400)  # an unused key's state goes (a month's budget fits)
            if extra is not None:
                extra(pipe)
        self.redis.transaction(step, win)
        return result[0]


def _fields_of(r: KeyRecord) -> dict[str, str]:
    return {"name": r.name, "digest": r.digest, "prefix": r.prefix, "models": ",".join(r.models),
            "rpm": str(r.rpm), "tpm": str(r.tpm), "budget_tokens": str(r.budget.tokens if r.budget else 0),
            "budget_period": r.budget.period if r.budget else "", "expires": repr(r.expires),
            "created": repr(r.created), "revoked": repr(r.revoked)}


def _record_of(f: dict[str, str]) -> KeyRecord:
    tokens = int(f.get("budget_tokens") or 0)
    return KeyRecord(f["name"], f["digest"], f["prefix"], tuple(m for m in f.get("models", "").split(",") if m),
                     int(f.get("rpm") or 0), int(f.get("tpm") or 0),
                     Budget(tokens, f.get("budget_period", "day")) if tokens else None,
                     float(f.get("expires") or 0), float(f.get("created") or 0), float(f.get("revoked") or 0))
